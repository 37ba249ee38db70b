"""An organisation's view of the consortium's stores: write to its own, read from anyone's.

Each organisation serves its own blobs; a validator needs every trainer's. Reads try the
own store, then each peer in order; every read is re-hashed by `BlobStore.get`, so a peer
that serves wrong bytes is caught there, and trying the next peer is up to the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fedledger.errors import ReadRefused, StoreError
from fedledger.store.base import BlobStore


class PeerStore(BlobStore):
    def __init__(self, own: BlobStore, peers: Sequence[BlobStore] = ()) -> None:
        self.own = own
        self.peers = list(peers)

    def _read(self, commitment: bytes) -> bytes | None:
        refused: ReadRefused | None = None
        for store in (self.own, *self.peers):
            try:
                data = store._read(commitment)
            except ReadRefused as exc:
                refused = refused or exc
                continue
            except StoreError:
                continue  # an unreachable peer is skipped; if no one has it, it is absent
            if data is not None:
                return data
        if refused is not None:
            raise refused  # not "absent": a server that may hold it would not serve it to us
        return None

    def _contains(self, commitment: bytes) -> bool:
        # asks each store without downloading; a store that claims a blob but serves wrong
        # bytes is caught by the hash check of the read that follows
        for store in (self.own, *self.peers):
            try:
                if store._contains(commitment):
                    return True
            except StoreError:
                continue
        return False

    def _write(self, commitment: bytes, data: bytes) -> None:
        self.own._write(commitment, data)

    def _remove(self, commitment: bytes) -> bool:
        return self.own._remove(commitment)

    def _list(self) -> Iterator[bytes]:
        return self.own._list()
