"""VerifiedCache: verify once per process, never cache what was not verified."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.codec.commitment import merkle_root
from fedledger.errors import BlobIntegrityError, BlobNotFound
from fedledger.store.cached import VerifiedCache
from fedledger.store.local import LocalStore


def test_first_read_verifies_later_reads_are_served_verified(tmp_path: Path) -> None:
    disk = LocalStore(tmp_path)
    store = VerifiedCache(disk)
    c = store.put(b"update bytes")
    assert (store.hits, store.misses) == (0, 0)  # put does not fill the cache
    assert store.get(c) == b"update bytes"
    assert store.get(c) == b"update bytes"
    assert (store.hits, store.misses) == (1, 1)


def test_corruption_before_the_first_read_is_caught(tmp_path: Path) -> None:
    disk = LocalStore(tmp_path)
    store = VerifiedCache(disk)
    c = store.put(b"honest update")
    disk.path_for(c).write_bytes(b"h0nest update")
    for _ in range(2):  # and nothing unverified was cached
        with pytest.raises(BlobIntegrityError):
            store.get(c)
    assert store.hits == 0


def test_missing_blob_and_delete(tmp_path: Path) -> None:
    store = VerifiedCache(LocalStore(tmp_path))
    c = store.put(b"x")
    store.get(c)
    store.delete(c)
    assert not store.has(c)
    with pytest.raises(BlobNotFound):
        store.get(c)


def test_budget_evicts_least_recently_used(tmp_path: Path) -> None:
    store = VerifiedCache(LocalStore(tmp_path), max_bytes=250)
    blobs = [bytes([i]) * 100 for i in range(3)]
    cs = [store.put(b) for b in blobs]
    for c in cs:
        store.get(c)
    assert store.get(cs[0]) == blobs[0]  # evicted (3 x 100 > 250): read and verified again
    assert store.misses == 4
    assert store.get(cs[2]) == blobs[2] and store.hits == 1
    assert cs[0] == merkle_root(blobs[0])


def test_kept_bytes_are_stored_and_served_without_a_read(tmp_path: Path) -> None:
    disk = LocalStore(tmp_path)
    store = VerifiedCache(disk)
    c = store.keep(b"aggregate this process computed")
    assert c == merkle_root(b"aggregate this process computed")
    assert disk.get(c) == b"aggregate this process computed"  # stored for everyone else
    disk.path_for(c).write_bytes(b"tampered after the write")
    assert store.has(c) and store.get(c) == b"aggregate this process computed"
    assert (store.hits, store.misses) == (1, 0)  # its own bytes, never the store's copy
