"""One conformance suite for every BlobStore backend: same contract, same tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from fedledger.chain.base import dev_accounts
from fedledger.codec.commitment import commitment_hex, merkle_root
from fedledger.errors import BlobIntegrityError, BlobNotFound, MalformedBlob, StoreError
from fedledger.store.base import BlobStore
from fedledger.store.http import BlobServer, HttpStore
from fedledger.store.local import LocalStore
from fedledger.store.memory import MemoryStore

Tamper = Callable[[bytes, bytes], None]


WRITER = dev_accounts(1)[0]


@pytest.fixture(params=["memory", "local", "http"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[BlobStore, Tamper]]:
    """A fresh store and a function that overwrites a blob's raw bytes behind its back."""
    if request.param == "memory":
        mem = MemoryStore()

        def tamper_memory(c: bytes, data: bytes) -> None:
            mem._blobs[c] = data

        yield mem, tamper_memory
    elif request.param == "local":
        local = LocalStore(tmp_path / "blobs" / "nested")

        def tamper_disk(c: bytes, data: bytes) -> None:
            local.path_for(c).write_bytes(data)

        yield local, tamper_disk
    else:  # a real HTTP server on loopback; the operator tampers with its disk
        server = BlobServer(tmp_path / "served", writers=[WRITER.address]).start()

        def tamper_server(c: bytes, data: bytes) -> None:
            server.store.path_for(c).write_bytes(data)

        try:
            yield HttpStore(server.url, WRITER), tamper_server
        finally:
            server.stop()


@pytest.fixture
def store(backend: tuple[BlobStore, Tamper]) -> BlobStore:
    return backend[0]


def test_roundtrip(store: BlobStore) -> None:
    data = b"federated" * 1000
    c = store.put(data)
    assert c == merkle_root(data)
    assert store.has(c)
    assert store.get(c) == data


def test_empty_blob(store: BlobStore) -> None:
    assert store.get(store.put(b"")) == b""


def test_put_is_idempotent(store: BlobStore) -> None:
    first = store.put(b"same bytes")
    second = store.put(b"same bytes")
    assert first == second
    assert list(store.commitments()) == [first]


def test_missing_blob(store: BlobStore) -> None:
    absent = merkle_root(b"never stored")
    assert not store.has(absent)
    with pytest.raises(BlobNotFound, match=commitment_hex(absent)):
        store.get(absent)
    with pytest.raises(BlobNotFound, match=commitment_hex(absent)):
        store.delete(absent)


def test_tampered_bytes_detected(backend: tuple[BlobStore, Tamper]) -> None:
    store, tamper = backend
    c = store.put(b"honest update")
    tamper(c, b"h0nest update")
    with pytest.raises(BlobIntegrityError, match=commitment_hex(c)) as info:
        store.get(c)
    assert "is corrupt" in str(info.value)
    assert store.has(c)  # present but unusable: the reader, not the store, decides
    store.put(b"honest update")  # putting the true bytes repairs it
    assert store.get(c) == b"honest update"


def test_tampered_tensors_detected(backend: tuple[BlobStore, Tamper]) -> None:
    store, tamper = backend
    c = store.put_tensors({"w": np.arange(4, dtype=np.int64)})
    raw = bytearray(store.get(c))
    raw[-1] ^= 0x01
    tamper(c, bytes(raw))
    with pytest.raises(BlobIntegrityError, match=commitment_hex(c)):
        store.get_tensors(c)


def test_listing_and_delete(store: BlobStore) -> None:
    assert list(store.commitments()) == []
    cs = [store.put(bytes([i]) * 10) for i in range(5)]
    assert list(store.commitments()) == sorted(cs)
    store.delete(cs[2])
    assert not store.has(cs[2])
    assert list(store.commitments()) == sorted(cs[:2] + cs[3:])


def test_tensor_helpers(store: BlobStore) -> None:
    tensors = {"b": np.array([-1, 2], dtype=np.int64), "a": np.zeros((2, 2), dtype=np.int64)}
    c = store.put_tensors(tensors, {"round": "1"})
    back = store.get_tensors(c)
    assert list(back) == ["a", "b"]
    for name, arr in tensors.items():
        np.testing.assert_array_equal(back[name], arr)


def test_non_blob_bytes_fail_decoding_not_integrity(store: BlobStore) -> None:
    c = store.put(b"not a tensor blob")
    with pytest.raises(MalformedBlob):
        store.get_tensors(c)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, "0x" + "00" * 32])
def test_bad_commitment(store: BlobStore, bad: bytes) -> None:
    with pytest.raises(StoreError, match="commitment must be 32 bytes"):
        store.get(bad)
    with pytest.raises(StoreError, match="commitment must be 32 bytes"):
        store.has(bad)


def test_local_layout(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "x")
    c = store.put(b"abc")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [f"{c.hex()}.safetensors"]
    (tmp_path / "x" / ".tmp-leftover.safetensors").write_bytes(b"junk")
    (tmp_path / "x" / "README").write_text("not a blob")
    assert list(store.commitments()) == [c]
    assert LocalStore(tmp_path / "x").get(c) == b"abc"  # a second handle sees the same blobs


def test_local_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create blob directory"):
        LocalStore(tmp_path / "file")
