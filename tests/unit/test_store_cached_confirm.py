"""`VerifiedCache.confirm`: an upload's stored copy enters the cache only if it is the bytes uploaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.errors import BlobIntegrityError
from fedledger.store.cached import VerifiedCache
from fedledger.store.local import LocalStore


def test_an_intact_copy_is_cached_without_a_second_read(tmp_path: Path) -> None:
    disk = LocalStore(tmp_path)
    cache = VerifiedCache(disk)
    data = bytes(range(256)) * 40
    commitment = cache.put(data)
    assert cache.confirm(commitment, data)
    disk.path_for(commitment).write_bytes(b"gone")  # served from memory from here on
    assert cache.get(commitment) == data and cache.hits == 1 and cache.misses == 0


def test_a_copy_altered_after_upload_is_not_cached_and_fails_its_first_read(tmp_path: Path) -> None:
    disk = LocalStore(tmp_path)
    cache = VerifiedCache(disk)
    data = bytes(range(256)) * 40
    commitment = cache.put(data)
    path = disk.path_for(commitment)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    assert not cache.confirm(commitment, data)
    with pytest.raises(BlobIntegrityError, match="is corrupt"):
        cache.get(commitment)
    path.unlink()
    assert not cache.confirm(commitment, data)  # nothing stored: nothing confirmed
