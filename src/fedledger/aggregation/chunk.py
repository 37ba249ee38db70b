"""One chunk of an aggregate recomputed from chunks of its inputs: the fraud proof's reference.

Optimistic verification (issue 13) lets anyone challenge a proposed aggregate by showing that
one 4 KiB Merkle leaf of it is wrong. This module recomputes a chunk of the proposed aggregate
from chunks of the blobs the round read (the previous global model and every accepted update),
byte for byte as the full rule would, so a watcher knows which chunk, and which coordinate in it,
to challenge. `chunk_witness.py` is the per-coordinate arithmetic that contracts/disputes.vy
mirrors; tests hold all three against each other and against the full rules.

How blob bytes map to values (codec/blob.py): [8-byte header length][JSON header padded to a
multiple of 8][int64 LE values, tensors back to back in sorted-name order]. The data section
starts at H = 8 + header length, a multiple of 8, and chunks are 4096 bytes, also a multiple of
8, so no int64 ever straddles two chunks: coordinate c of the flattened model is the 8 bytes at
H + 8c, in chunk (H + 8c) // 4096. Every chunk-local rule (FedAvg, clipped FedAvg given the
norms, median, trimmed mean) treats coordinates alike whatever tensor they belong to, so the flat
coordinate is all a proof needs. H differs between blobs (an update's metadata names its trainer,
a model's its version), so one chunk index covers different coordinates in different blobs, and
a chunk of the aggregate needs one or two chunks of each input. A chunk alone is therefore not
self-describing: its blob's H is, read from the blob's first 8 bytes. The proposal states H for
every blob, and one chunk 0 refutes a false H (docs/design.md, "Fraud proofs over one chunk").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np

from fedledger.aggregation.base import apply_delta
from fedledger.aggregation.clipped import clipped_fedavg, scale_to_bound
from fedledger.aggregation.fedavg import fedavg
from fedledger.aggregation.stats import coordinate_median
from fedledger.aggregation.trimmed_mean import trimmed_mean
from fedledger.codec.blob import ITEMSIZE, data_offset
from fedledger.codec.commitment import CHUNK_SIZE, chunk_at, num_chunks
from fedledger.errors import CodecError, SpecError

#: The rules whose every output coordinate depends only on the inputs' same coordinate.
CHUNK_RULES = ("fedavg", "clipped_fedavg", "median", "trimmed_mean")


@dataclass(frozen=True)
class BlobChunks:
    """Some chunks of one committed blob, by index, and where its data section starts."""

    offset: int
    chunks: Mapping[int, bytes]

    @classmethod
    def of(cls, blob: bytes, indices: Iterable[int]) -> BlobChunks:
        """The chunks `indices` of a whole blob, as a watcher holding the blob would supply them."""
        return cls(data_offset(blob[:8]), {i: chunk_at(blob, i) for i in indices})


@dataclass(frozen=True, kw_only=True)
class ChunkRule:
    """A chunk-local rule and its parameters, as the job spec fixes them.

    Clipped FedAvg is chunk-local only with a fixed bound (`clip_norm_q` > 0) and with each
    update's squared norm given: the adaptive bound is a median over whole-vector norms.
    """

    name: str
    trim_fraction: Fraction = Fraction(0)
    clip_norm_q: int = 0

    def __post_init__(self) -> None:
        if self.name not in CHUNK_RULES:
            raise SpecError(
                "aggregation", f"rule '{self.name}' is not chunk-local (known: {', '.join(CHUNK_RULES)})"
            )
        if self.name == "clipped_fedavg" and self.clip_norm_q <= 0:
            raise SpecError(
                "clip_norm_q", "a fraud proof needs a fixed clip bound (> 0), not the adaptive one"
            )
        if not 0 <= self.trim_fraction < Fraction(1, 2):
            raise SpecError("trim_fraction", f"{float(self.trim_fraction):g} must be in [0, 0.5)")


@dataclass(frozen=True, kw_only=True)
class Contributor:
    """One accepted update as a proof sees it: its chunks and the scalars the rule needs."""

    blob: BlobChunks
    weight: int
    squared_norm: int = 0


@dataclass(frozen=True)
class ChunkVerdict:
    """Whether a proposed chunk is right and, if not, what a challenge can name."""

    wrong: Literal["none", "value", "header", "length"]
    #: the first wrong coordinate (flat index over the sorted tensors), for `wrong == "value"`
    coordinate: int | None
    expected: bytes

    @property
    def ok(self) -> bool:
        return self.wrong == "none"


def blob_size(offset: int, num_params: int) -> int:
    """Bytes of a canonical blob whose data starts at `offset` and holds `num_params` int64s."""
    return offset + ITEMSIZE * num_params


def coordinate_span(index: int, offset: int, num_params: int) -> range:
    """The coordinates whose bytes lie in chunk `index` of a blob with data offset `offset`."""
    lo = max(0, index * CHUNK_SIZE - offset) // ITEMSIZE
    hi = min(num_params, max(0, (index + 1) * CHUNK_SIZE - offset) // ITEMSIZE)
    return range(lo, max(lo, hi))


def locate(coordinate: int, offset: int) -> tuple[int, int]:
    """(chunk index, byte position in it) of `coordinate` in a blob with data offset `offset`."""
    position = offset + ITEMSIZE * coordinate
    return position // CHUNK_SIZE, position % CHUNK_SIZE


def chunks_holding(span: range, offset: int) -> range:
    """The chunk indices of a blob (data offset `offset`) that hold every coordinate of `span`."""
    if not span:
        return range(0)
    return range(locate(span.start, offset)[0], locate(span.stop - 1, offset)[0] + 1)


def read_values(blob: BlobChunks, span: range) -> np.ndarray:
    """The int64 values of coordinates `span` read from the chunks `blob` holds, shape (len(span),)."""
    out = np.empty(len(span), dtype=np.int64)
    for index in chunks_holding(span, blob.offset):
        chunk = blob.chunks.get(index)
        if chunk is None:
            raise CodecError(
                f"chunk {index} is needed for coordinates {span.start}..{span.stop - 1} but missing"
            )
        inside = coordinate_span(index, blob.offset, span.stop)
        first, last = max(span.start, inside.start), inside.stop
        at = blob.offset + ITEMSIZE * first - index * CHUNK_SIZE
        if at + ITEMSIZE * (last - first) > len(chunk):
            raise CodecError(f"chunk {index} is {len(chunk)} bytes, too short for coordinate {last - 1}")
        values = np.frombuffer(chunk, dtype="<i8", count=last - first, offset=at)
        out[first - span.start : last - span.start] = values
    return out


def combine_columns(
    rule: ChunkRule, columns: Sequence[np.ndarray], contributors: Sequence[Contributor]
) -> np.ndarray:
    """The aggregate delta of equal-length coordinate slices, one per contributor, by `rule`.

    Calls the full rules' own functions on the slices, so a chunk cannot round differently
    from the whole model: every rule here treats each coordinate on its own.
    """
    weights = [c.weight for c in contributors]
    if rule.name == "clipped_fedavg":
        norms = [math.isqrt(c.squared_norm) for c in contributors]
        columns = [
            scale_to_bound(col, norm, rule.clip_norm_q) for col, norm in zip(columns, norms, strict=True)
        ]
    named = [{"v": col} for col in columns]
    if rule.name in ("fedavg", "clipped_fedavg"):
        return fedavg(named, weights)["v"]
    if rule.name == "median":
        return coordinate_median(named)["v"]
    return trimmed_mean(named, weights, rule.trim_fraction)["v"]


def apply_rule(
    rule: ChunkRule,
    global_model: Mapping[str, np.ndarray],
    deltas: Sequence[Mapping[str, np.ndarray]],
    weights: Sequence[int],
) -> dict[str, np.ndarray]:
    """The whole new model by the full rule (deltas in the claim's order): what every chunk
    recomputed here must add up to, byte for byte."""
    if rule.name == "fedavg":
        delta = fedavg(deltas, weights)
    elif rule.name == "clipped_fedavg":
        delta = clipped_fedavg(deltas, weights, rule.clip_norm_q)
    elif rule.name == "median":
        delta = coordinate_median(deltas)
    else:
        delta = trimmed_mean(deltas, weights, rule.trim_fraction)
    return apply_delta(global_model, delta)


def recompute_chunk(
    index: int,
    *,
    rule: ChunkRule,
    num_params: int,
    previous: BlobChunks,
    updates: Sequence[Contributor],
    aggregate_header: bytes,
) -> bytes:
    """The bytes chunk `index` of the correct aggregate blob must hold.

    `aggregate_header` is the aggregate's first H bytes (`codec.blob.encode_header` of the
    model's shapes and its metadata): header bytes are copied, values recomputed as
    previous + rule(updates), refusing int64 overflow as `apply_delta` does.
    """
    offset = len(aggregate_header)
    size = blob_size(offset, num_params)
    if not 0 <= index < num_chunks(size):
        raise CodecError(f"chunk index {index} out of range for {num_chunks(size)} chunks")
    start, end = index * CHUNK_SIZE, min((index + 1) * CHUNK_SIZE, size)
    head = aggregate_header[start : min(end, offset)]
    span = coordinate_span(index, offset, num_params)
    if not span:
        return head
    columns = [read_values(u.blob, span) for u in updates]
    delta = combine_columns(rule, columns, updates)
    model = apply_delta({"v": read_values(previous, span)}, {"v": delta})["v"]
    return head + model.astype("<i8").tobytes()


def check_chunk(
    index: int,
    proposed: bytes,
    *,
    rule: ChunkRule,
    num_params: int,
    previous: BlobChunks,
    updates: Sequence[Contributor],
    aggregate_header: bytes,
) -> ChunkVerdict:
    """Whether `proposed` is chunk `index` of the right aggregate; if not, the first wrong thing.

    A wrong value names its coordinate, which a one-coordinate challenge proves on chain; a
    wrong header or length is not a value, and escalates to the committee.
    """
    expected = recompute_chunk(
        index,
        rule=rule,
        num_params=num_params,
        previous=previous,
        updates=updates,
        aggregate_header=aggregate_header,
    )
    if proposed == expected:
        return ChunkVerdict("none", None, expected)
    common = min(len(proposed), len(expected))
    diff = next((i for i in range(common) if proposed[i] != expected[i]), common)
    absolute = index * CHUNK_SIZE + diff
    offset = len(aggregate_header)
    if absolute < offset:
        return ChunkVerdict("header", None, expected)
    if diff == common:
        return ChunkVerdict("length", None, expected)
    return ChunkVerdict("value", (absolute - offset) // ITEMSIZE, expected)
