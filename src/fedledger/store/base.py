"""BlobStore: content-addressed storage that never hands back bytes it cannot vouch for.

The store operator is untrusted (DESIGN, trust model), so the commitment is the address and
every read re-hashes: a tampered blob surfaces as `BlobIntegrityError` at the reader, never as
a silently wrong model. Backends implement four raw primitives; the checking lives here once,
so no backend can forget it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping

import numpy as np

from fedledger.codec.blob import decode_tensors, encode_tensors
from fedledger.codec.commitment import HASH_SIZE, commitment_hex, merkle_root
from fedledger.errors import BlobIntegrityError, BlobNotFound, StoreError


def check_commitment(commitment: bytes) -> bytes:
    """The commitment as bytes, or StoreError if it cannot be one (wrong type or length)."""
    if not isinstance(commitment, bytes | bytearray) or len(commitment) != HASH_SIZE:
        raise StoreError(f"commitment must be {HASH_SIZE} bytes, got {commitment!r}")
    return bytes(commitment)


class BlobStore(ABC):
    """Blobs addressed by `merkle_root` of their bytes."""

    # -- raw primitives a backend provides (no hashing, no checks) -------------------------

    @abstractmethod
    def _read(self, commitment: bytes) -> bytes | None:
        """The stored bytes, or None when absent."""

    @abstractmethod
    def _write(self, commitment: bytes, data: bytes) -> None:
        """Stores `data` under `commitment`, replacing what was there, atomically."""

    @abstractmethod
    def _remove(self, commitment: bytes) -> bool:
        """Removes the blob; False when it was absent."""

    @abstractmethod
    def _list(self) -> Iterator[bytes]:
        """Every stored commitment, any order."""

    # -- public API --------------------------------------------------------------------------

    def put(self, data: bytes, *, root: bytes | None = None) -> bytes:
        """Stores `data` and returns its commitment.

        Idempotent, and always rewrites: putting the true bytes repairs a tampered copy.
        `root`: the Merkle root of `data` where the caller has just computed it from these bytes
        (a simulation hashes uploads in a helper process, sim/courier.py); a wrong one files the
        bytes under an address they do not hash to, which every `get` then refuses.
        """
        data = bytes(data)
        commitment = merkle_root(data) if root is None else check_commitment(root)
        self._write(commitment, data)
        return commitment

    def get(self, commitment: bytes) -> bytes:
        """The bytes under `commitment`, re-hashed; BlobIntegrityError if they do not match."""
        commitment = check_commitment(commitment)
        data = self._read(commitment)
        if data is None:
            raise BlobNotFound(f"no blob under commitment {commitment_hex(commitment)}")
        actual = merkle_root(data)
        if actual != commitment:
            raise BlobIntegrityError(
                f"blob {commitment_hex(commitment)} is corrupt: its {len(data)} stored bytes "
                f"hash to {commitment_hex(actual)}"
            )
        return data

    def _contains(self, commitment: bytes) -> bool:
        """Whether a blob is stored; backends override when they can tell without reading it."""
        return self._read(commitment) is not None

    def has(self, commitment: bytes) -> bool:
        """Whether something is stored under `commitment` (not checked; `get` checks)."""
        return self._contains(check_commitment(commitment))

    def commitments(self) -> Iterator[bytes]:
        """Every stored commitment, in sorted order so listings are reproducible."""
        return iter(sorted(self._list()))

    def delete(self, commitment: bytes) -> None:
        """Removes a blob (tests, tamper tools, garbage collection)."""
        commitment = check_commitment(commitment)
        if not self._remove(commitment):
            raise BlobNotFound(f"no blob under commitment {commitment_hex(commitment)}")

    def put_tensors(
        self, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
    ) -> bytes:
        """Encodes int64 tensors as a canonical blob and stores it."""
        return self.put(encode_tensors(tensors, metadata))

    def get_tensors(self, commitment: bytes) -> dict[str, np.ndarray]:
        """Fetches, verifies and strictly decodes a tensor blob."""
        return decode_tensors(self.get(commitment))


class WrappingStore(BlobStore):
    """A store that adds one behaviour to another and hands every raw primitive to it.

    Subclasses override only what they change (sealing writes, opening reads).
    """

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner

    def _read(self, commitment: bytes) -> bytes | None:
        return self.inner._read(commitment)

    def _contains(self, commitment: bytes) -> bool:
        return self.inner._contains(commitment)

    def _write(self, commitment: bytes, data: bytes) -> None:
        self.inner._write(commitment, data)

    def _remove(self, commitment: bytes) -> bool:
        return self.inner._remove(commitment)

    def _list(self) -> Iterator[bytes]:
        return self.inner._list()
