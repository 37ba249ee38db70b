"""One-chunk recomputation against the full rules: every chunk, byte for byte, on random rounds.

Blobs get metadata of random lengths so the data offset differs between the previous model, the
aggregate and every update: a chunk index then covers different coordinates in each blob, which
is the layout case the recomputation must get right. Values reach 2**61 so the rules' Python-int
fallbacks run too.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedledger.aggregation.chunk import (
    BlobChunks,
    ChunkRule,
    Contributor,
    apply_rule,
    check_chunk,
    chunks_holding,
    coordinate_span,
    locate,
    read_values,
    recompute_chunk,
)
from fedledger.aggregation.chunk_witness import coordinate_delta, witnesses
from fedledger.aggregation.stats import squared_norm
from fedledger.codec.blob import data_offset, encode_header, encode_tensors
from fedledger.codec.commitment import CHUNK_SIZE, chunk_at, num_chunks
from fedledger.errors import CodecError, InvalidUpdate, SpecError

RULES = [
    ChunkRule(name="fedavg"),
    ChunkRule(name="clipped_fedavg", clip_norm_q=1 << 20),
    ChunkRule(name="clipped_fedavg", clip_norm_q=1 << 62),
    ChunkRule(name="median"),
    ChunkRule(name="trimmed_mean", trim_fraction=Fraction(1, 5)),
    ChunkRule(name="trimmed_mean", trim_fraction=Fraction(2, 5)),
    ChunkRule(name="trimmed_mean"),
]


@dataclass
class Round:
    rule: ChunkRule
    num_params: int
    previous: bytes
    aggregate: bytes
    updates: list[bytes]
    weights: list[int]
    norms: list[int]
    shapes: dict[str, tuple[int, ...]]
    metadata: dict[str, str]

    def contributors(self, span: range) -> list[Contributor]:
        """Each update with only the chunks `span` needs: proves nothing else is read."""
        return [
            Contributor(blob=_only(blob, span), weight=w, squared_norm=s)
            for blob, w, s in zip(self.updates, self.weights, self.norms, strict=True)
        ]

    def recompute(self, index: int) -> bytes:
        span = coordinate_span(index, data_offset(self.aggregate[:8]), self.num_params)
        return recompute_chunk(
            index,
            rule=self.rule,
            num_params=self.num_params,
            previous=_only(self.previous, span),
            updates=self.contributors(span),
            aggregate_header=encode_header(self.shapes, self.metadata),
        )


def _only(blob: bytes, span: range) -> BlobChunks:
    offset = data_offset(blob[:8])
    return BlobChunks.of(blob, chunks_holding(span, offset))


@st.composite
def rounds(draw: st.DrawFn) -> Round:
    rule = draw(st.sampled_from(RULES))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=3, unique=True))
    shapes = {
        n: draw(st.sampled_from([(0,), (1,), (37,), (512,), (700,), (3, 170), (2, 2, 300)])) for n in names
    }
    n = draw(st.integers(1, 6))
    bound = draw(st.sampled_from([2**8, 2**40, 2**61]))

    def tensors() -> dict[str, np.ndarray]:
        return {k: rng.integers(-bound, bound, size=s, dtype=np.int64) for k, s in shapes.items()}

    def meta() -> dict[str, str]:
        return {"who": "x" * int(rng.integers(0, 80))}

    previous = tensors()
    deltas = [tensors() for _ in range(n)]
    weights = [int(w) for w in rng.integers(0 if n > 1 else 1, 1000, size=n)]
    if sum(weights) == 0:
        weights[0] = 1
    metadata = meta()
    model = apply_rule(rule, previous, deltas, weights)
    return Round(
        rule=rule,
        num_params=sum(int(np.prod(s)) for s in shapes.values()),
        previous=encode_tensors(previous, meta()),
        aggregate=encode_tensors(model, metadata),
        updates=[encode_tensors(d, meta()) for d in deltas],
        weights=weights,
        norms=[squared_norm(d) for d in deltas],
        shapes=shapes,
        metadata=metadata,
    )


@settings(max_examples=60, deadline=None)
@given(rounds())
def test_every_chunk_recomputed_alone_rebuilds_the_full_rules_blob(r: Round) -> None:
    chunks = [r.recompute(i) for i in range(num_chunks(len(r.aggregate)))]
    assert b"".join(chunks) == r.aggregate


@settings(max_examples=60, deadline=None)
@given(rounds(), st.data())
def test_a_flipped_value_is_caught_in_its_chunk_and_named(r: Round, data: st.DataObject) -> None:
    if r.num_params == 0:
        return
    c = data.draw(st.integers(0, r.num_params - 1))
    bit = data.draw(st.integers(0, 63))
    offset = data_offset(r.aggregate[:8])
    at = offset + 8 * c + bit // 8
    bad = bytearray(r.aggregate)
    bad[at] ^= 1 << (bit % 8)
    index, _ = locate(c, offset)
    verdict = check_chunk(
        index,
        chunk_at(bytes(bad), index),
        rule=r.rule,
        num_params=r.num_params,
        previous=BlobChunks.of(r.previous, range(num_chunks(len(r.previous)))),
        updates=r.contributors(range(r.num_params)),
        aggregate_header=encode_header(r.shapes, r.metadata),
    )
    assert (verdict.wrong, verdict.coordinate) == ("value", c)
    assert verdict.expected == chunk_at(r.aggregate, index)


@settings(max_examples=40, deadline=None)
@given(rounds(), st.data())
def test_the_contracts_per_coordinate_arithmetic_gives_the_rules_value(r: Round, data: st.DataObject) -> None:
    if r.num_params == 0:
        return
    c = data.draw(st.integers(0, r.num_params - 1))
    values = [int(read_values(_only(u, range(c, c + 1)), range(c, c + 1))[0]) for u in r.updates]
    low, high = witnesses(r.rule, values)
    delta = coordinate_delta(r.rule, values, r.weights, r.norms, low, high)
    before = int(read_values(_only(r.previous, range(c, c + 1)), range(c, c + 1))[0])
    after = int(read_values(_only(r.aggregate, range(c, c + 1)), range(c, c + 1))[0])
    assert before + delta == after


def test_a_header_byte_or_a_short_chunk_is_not_a_value() -> None:
    shapes = {"w": (600,)}
    model = {"w": np.arange(600, dtype=np.int64)}
    blob = encode_tensors(model, {"kind": "model"})
    zero = {"w": np.zeros(600, dtype=np.int64)}
    kwargs = {
        "rule": ChunkRule(name="fedavg"),
        "num_params": 600,
        "previous": BlobChunks.of(blob, range(2)),
        "updates": [Contributor(blob=BlobChunks.of(encode_tensors(zero), range(2)), weight=3)],
        "aggregate_header": encode_header(shapes, {"kind": "model"}),
    }
    header = bytearray(chunk_at(blob, 0))
    header[12] ^= 0x20
    assert check_chunk(0, bytes(header), **kwargs).wrong == "header"
    assert check_chunk(1, chunk_at(blob, 1)[:-8], **kwargs).wrong == "length"
    assert check_chunk(1, chunk_at(blob, 1), **kwargs).ok


def test_witnesses_that_are_not_the_order_statistics_are_refused() -> None:
    rule = ChunkRule(name="median")
    assert coordinate_delta(rule, [5, 1, 9, 3], [1] * 4, [0] * 4, 3, 5) == 4
    with pytest.raises(InvalidUpdate, match="disputes: witnesses are not the order statistics"):
        coordinate_delta(rule, [5, 1, 9, 3], [1] * 4, [0] * 4, 1, 5)
    with pytest.raises(InvalidUpdate, match="disputes: witnesses are not the order statistics"):
        coordinate_delta(rule, [5, 1, 9, 3], [1] * 4, [0] * 4, 3, 4)


def test_every_coordinate_lies_in_exactly_one_chunk() -> None:
    for offset in (16, 208, 4088, 4096, 4104):
        seen = [c for i in range(num_chunks(offset + 8 * 2000)) for c in coordinate_span(i, offset, 2000)]
        assert seen == list(range(2000))
        assert all(c in coordinate_span(locate(c, offset)[0], offset, 2000) for c in (0, 1, 511, 512, 1999))


def test_a_missing_chunk_or_a_rule_that_is_not_chunk_local_is_one_clear_error() -> None:
    blob = encode_tensors({"w": np.zeros(1000, dtype=np.int64)})
    with pytest.raises(CodecError, match=r"chunk 1 is needed for coordinates 0\.\.999 but missing"):
        read_values(BlobChunks.of(blob, [0]), range(1000))
    with pytest.raises(SpecError, match="rule 'krum' is not chunk-local"):
        ChunkRule(name="krum")
    with pytest.raises(SpecError, match="fixed clip bound"):
        ChunkRule(name="clipped_fedavg")
    assert CHUNK_SIZE == 4096
