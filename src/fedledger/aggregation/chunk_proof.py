"""Challenge inputs built from whole blobs: the claim a proposer registers, the pieces a challenger sends.

The encodings here are contracts/disputes.vy's, word for word: a claim is hashed as the ABI
encoding of its all-static struct (32-byte words in field order), and the accepted updates are
bound to it by a hash chain `h' = keccak(h || root || offset || weight || squared_norm)` from
h = 0, so a challenge split over transactions can check the updates it received one by one and
compare the end of the chain at its close. Pure functions, no chain access: the coordinator,
watchers, the bench and the tests all build the same bytes from the same blobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass

from Crypto.Hash import keccak

from fedledger.aggregation.chunk import ChunkRule, locate
from fedledger.aggregation.chunk_witness import RULE_IDS
from fedledger.codec.blob import ITEMSIZE, data_offset
from fedledger.codec.commitment import chunk_at, merkle_proof, merkle_root

ZERO = bytes(32)


def keccak256(data: bytes) -> bytes:
    digest: bytes = keccak.new(digest_bits=256, data=data).digest()
    return digest


def _word(value: int | bytes) -> bytes:
    if isinstance(value, bytes):
        return value.rjust(32, b"\0")
    return value.to_bytes(32, "big")


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One accepted update as a claim states it (disputes.vy's `Entry`)."""

    root: bytes
    offset: int
    weight: int
    squared_norm: int = 0

    @classmethod
    def of(cls, blob: bytes, weight: int, squared_norm: int = 0) -> Entry:
        return cls(
            root=merkle_root(blob), offset=data_offset(blob[:8]), weight=weight, squared_norm=squared_norm
        )

    def as_tuple(self) -> tuple[bytes, int, int, int]:
        return (self.root, self.offset, self.weight, self.squared_norm)


def link(previous: bytes, entry: Entry) -> bytes:
    """One step of the updates' hash chain."""
    return keccak256(previous + b"".join(_word(x) for x in entry.as_tuple()))


def updates_hash(entries: Sequence[Entry]) -> bytes:
    """The end of the hash chain over `entries` in order, as the claim stores it."""
    h = ZERO
    for e in entries:
        h = link(h, e)
    return h


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A proposer's statement about a round's aggregate (disputes.vy's `Claim`, field for field)."""

    rule: int
    trim_num: int
    trim_den: int
    clip_q: int
    num_params: int
    num_updates: int
    updates_hash: bytes
    previous_root: bytes
    previous_offset: int
    aggregate_root: bytes
    aggregate_offset: int

    def as_tuple(self) -> tuple[int | bytes, ...]:
        return astuple(self)

    def digest(self) -> bytes:
        """keccak256(abi_encode(claim)): the struct is all static, so its encoding is its words."""
        return keccak256(b"".join(_word(x) for x in self.as_tuple()))


def make_claim(
    rule: ChunkRule, *, num_params: int, previous: bytes, aggregate: bytes, entries: Sequence[Entry]
) -> Claim:
    """The claim for a round that turned `previous` into `aggregate` from `entries` by `rule`."""
    return Claim(
        rule=RULE_IDS[rule.name],
        trim_num=rule.trim_fraction.numerator,
        trim_den=rule.trim_fraction.denominator,
        clip_q=rule.clip_norm_q,
        num_params=num_params,
        num_updates=len(entries),
        updates_hash=updates_hash(entries),
        previous_root=merkle_root(previous),
        previous_offset=data_offset(previous[:8]),
        aggregate_root=merkle_root(aggregate),
        aggregate_offset=data_offset(aggregate[:8]),
    )


def piece(blob: bytes, coordinate: int) -> tuple[bytes, list[bytes]]:
    """(chunk, Merkle proof) of the chunk of `blob` that holds `coordinate` (disputes.vy's `Piece`)."""
    index, _ = locate(coordinate, data_offset(blob[:8]))
    return chunk_at(blob, index), merkle_proof(blob, index)


def first_piece(blob: bytes) -> tuple[bytes, list[bytes]]:
    """Chunk 0 and its proof: what refutes a false data offset."""
    return chunk_at(blob, 0), merkle_proof(blob, 0)


def value_at(blob: bytes, coordinate: int) -> int:
    """The int64 at `coordinate` of a canonical blob."""
    at = data_offset(blob[:8]) + ITEMSIZE * coordinate
    return int.from_bytes(blob[at : at + ITEMSIZE], "little", signed=True)
