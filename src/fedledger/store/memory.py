"""In-memory BlobStore for tests and single-process simulations."""

from __future__ import annotations

from collections.abc import Iterator

from fedledger.store.base import BlobStore


class MemoryStore(BlobStore):
    """A dict from commitment to bytes; `get` still re-hashes, so tamper tests mean something."""

    def __init__(self) -> None:
        self._blobs: dict[bytes, bytes] = {}

    def _read(self, commitment: bytes) -> bytes | None:
        return self._blobs.get(commitment)

    def _write(self, commitment: bytes, data: bytes) -> None:
        self._blobs[commitment] = data

    def _remove(self, commitment: bytes) -> bool:
        return self._blobs.pop(commitment, None) is not None

    def _list(self) -> Iterator[bytes]:
        return iter(list(self._blobs))

    def __len__(self) -> int:
        return len(self._blobs)
