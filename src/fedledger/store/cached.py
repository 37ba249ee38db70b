"""A store wrapper that keeps verified copies, for many readers in one process.

Content addressing makes a verified copy valid forever: bytes that once hashed to
their commitment always will. So a process in which many parties read the same
blobs (the simulator, where every validator fetches every update) can verify
each blob once and hand the verified bytes to every later reader, as each
validator on its own machine would keep its own verified download.

Only a read that passed the hash check fills the cache, never a `put`: a blob
corrupted in the store after upload is still caught by its first reader. An
auditor uses a plain store and re-hashes everything.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from fedledger.store.base import BlobStore, WrappingStore, check_commitment

DEFAULT_BUDGET = 256 * 1024 * 1024


class VerifiedCache(WrappingStore):
    """Wraps a store; `get` returns a verified copy from memory when it has one (LRU by bytes)."""

    def __init__(self, inner: BlobStore, *, max_bytes: int = DEFAULT_BUDGET) -> None:
        super().__init__(inner)
        self.max_bytes = max_bytes
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._size = 0
        # a simulation's courier thread fills the cache while training reads it (sim/courier.py)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, commitment: bytes) -> bytes:
        commitment = check_commitment(commitment)
        with self._lock:
            cached = self._cache.get(commitment)
            if cached is not None:
                self._cache.move_to_end(commitment)
                self.hits += 1
                return cached
        data = self.inner.get(commitment)  # raises unless the bytes hash to the commitment
        with self._lock:
            self.misses += 1
            self._remember(commitment, data)
        return data

    def _remember(self, commitment: bytes, data: bytes) -> None:
        """Caches verified bytes; the caller holds the lock."""
        if len(data) <= self.max_bytes and commitment not in self._cache:
            self._cache[commitment] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, evicted = self._cache.popitem(last=False)
                self._size -= len(evicted)

    def put(self, data: bytes, *, root: bytes | None = None) -> bytes:
        return self.inner.put(data, root=root)

    def keep(self, data: bytes) -> bytes:
        """Stores bytes this process produced itself (a validator's aggregate) and keeps them.

        Unlike a `put`, they enter the cache: they were not read back from a store that could
        have altered them, and their commitment is computed from them here, so there is
        nothing to verify. The node's next reads of the model it computed (training the next
        round on it, validating against it) then cost no download.
        """
        commitment = self.inner.put(data)
        with self._lock:
            self._remember(commitment, bytes(data))
        return commitment

    def hold(self, commitment: bytes, data: bytes) -> bool:
        """Caches bytes this process produced under their commitment, without storing them yet;
        False (nothing held) when they exceed the cache's budget.

        For a node that trains on its aggregate at once and uploads it beside that training
        (`keep` later): the training reads it from here, not from a store it is not in yet.
        """
        if len(data) > self.max_bytes:
            return False
        with self._lock:
            self._remember(check_commitment(commitment), bytes(data))
        return True

    def confirm(self, commitment: bytes, data: bytes) -> bool:
        """Reads the stored copy of an upload this process made and caches it if it is intact.

        `commitment` must be what this process computed from `data` when it uploaded them (the
        caller's own `put`). Stored bytes equal to `data` hash to `commitment`, so comparing them
        verifies the copy as a re-hash would, without hashing again; a copy that differs (altered
        after upload) is not cached, and its first `get` re-hashes it and fails.
        """
        stored = self.inner._read(check_commitment(commitment))
        if stored is None or stored != data:
            return False
        with self._lock:
            self._remember(commitment, stored)
        return True

    def has(self, commitment: bytes) -> bool:
        return commitment in self._cache or self.inner.has(commitment)

    def delete(self, commitment: bytes) -> None:
        self._forget(commitment)
        self.inner.delete(commitment)

    def _forget(self, commitment: bytes) -> None:
        with self._lock:
            dropped = self._cache.pop(commitment, None)
            if dropped is not None:
                self._size -= len(dropped)

    # the other raw primitives delegate (WrappingStore), so the base class's helpers work unchanged
    def _remove(self, commitment: bytes) -> bool:
        self._forget(commitment)
        return self.inner._remove(commitment)
