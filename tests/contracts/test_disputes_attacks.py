"""Attacks on the one-chunk fraud proofs (issue 13): each test is one adversary's move.

Challengers who lie (forged proofs, another round's blobs, updates repeated, dropped or
reordered, witnesses one off, a split challenge replayed or stepped out of order) must never
strike an honest claim; a proposer's lie at the int64 edges must still be provable. The
attacks the code withstood are regression tests; one succeeded and was fixed: anyone could
step someone else's split challenge with junk and so void it (docs/design.md, "Fraud proofs
over one chunk").
"""

from __future__ import annotations

import random
from typing import Any

import boa
import numpy as np
import pytest
import test_disputes_reverts
from dispute_harness import RULES, Round, challenge, propose, random_round

from fedledger.aggregation.chunk import ChunkRule, apply_rule
from fedledger.aggregation.chunk_proof import Entry, first_piece, piece
from fedledger.codec.blob import encode_tensors
from fedledger.codec.commitment import num_chunks
from fedledger.errors import FedledgerError

RIGHT = "disputes: the proposed value is right"
BAD_PROOF = "disputes: bad proof"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# the same fixtures as the revert tests: one contract per module, a snapshot per test
disputes, d = test_disputes_reverts.disputes, test_disputes_reverts.d


@pytest.fixture(scope="module")
def r() -> Round:
    # 900 parameters: every blob spans two chunks, so chunk indices can be swapped
    return random_round(random.Random(11), RULES["fedavg"], n=3, num_params=900)


def _args(liar: Round, c: int) -> tuple[Any, ...]:
    return tuple(liar.claim.as_tuple()), *liar.opening(c)


def test_a_forged_merkle_proof_is_refused(d: Any, r: Round) -> None:
    liar = r.flipped(700, 1)  # coordinate 700 lives in chunk 1
    claim_id = propose(d, liar)
    claim, c, prev, agg, low, high = _args(liar, 700)
    chunk, proof = agg
    forged_value = bytearray(chunk)
    forged_value[0] ^= 1
    for bad in [
        (chunk, [bytes(32), *proof[1:]]),  # a sibling replaced
        (chunk, proof[:-1]),  # a sibling dropped
        (chunk, [*proof, bytes(32)]),  # a sibling added
        (bytes(forged_value), proof),  # the chunk edited, its proof kept
        (chunk + b"\x00" * 8, proof),  # a short last chunk padded
        piece(liar.aggregate, 0),  # chunk 0 offered for a coordinate of chunk 1
    ]:
        with boa.reverts(BAD_PROOF):
            d.challenge(claim_id, claim, c, prev, bad, low, high, liar.inputs(700))
    d.challenge(claim_id, claim, c, prev, agg, low, high, liar.inputs(700))
    assert d.struck(claim_id)


def test_another_rounds_blobs_prove_nothing(d: Any, r: Round) -> None:
    other = random_round(random.Random(12), RULES["fedavg"], n=3, num_params=900)
    claim_id = propose(d, r)  # honest
    claim, c, prev, agg, low, high = _args(r, 5)
    with boa.reverts(BAD_PROOF):  # the other round's aggregate at the same coordinate
        d.challenge(claim_id, claim, c, prev, piece(other.aggregate, 5), low, high, r.inputs(5))
    with boa.reverts(BAD_PROOF):  # the other round's previous model
        d.challenge(claim_id, claim, c, piece(other.previous, 5), agg, low, high, r.inputs(5))
    mixed = r.inputs(5)
    mixed[1] = (mixed[1][0], other.inputs(5)[1][1])  # the right entry, another round's chunk
    with boa.reverts(BAD_PROOF):
        d.challenge(claim_id, claim, c, prev, agg, low, high, mixed)
    # the other round's updates under their own (true) entries: not the claim's hash chain
    with boa.reverts("disputes: updates do not match the claim"):
        d.challenge(claim_id, claim, c, prev, agg, low, high, other.inputs(5))
    assert not d.struck(claim_id)


def test_a_coordinate_past_the_end_is_refused(d: Any, r: Round) -> None:
    claim_id = propose(d, r.flipped(899, 1))
    claim = r.flipped(899, 1).claim.as_tuple()
    last = r.opening(899)
    for c in (900, 2**64, 2**256 - 1):
        with boa.reverts("disputes: coordinate out of range"):
            d.challenge(claim_id, claim, c, *last[1:], r.inputs(899))


def test_an_update_supplied_twice_omitted_or_reordered_is_refused(d: Any, r: Round) -> None:
    liar = r.flipped(3, -1)
    claim_id = propose(d, liar)
    claim, *opening = _args(liar, 3)
    inputs = liar.inputs(3)
    for bad, reason in [
        ([inputs[0], inputs[0], inputs[2]], "disputes: updates do not match the claim"),
        ([inputs[0], inputs[1], inputs[1]], "disputes: updates do not match the claim"),
        ([*inputs, inputs[2]], "disputes: updates missing"),
        (inputs[1:], "disputes: updates missing"),
        ([inputs[2], inputs[1], inputs[0]], "disputes: updates do not match the claim"),
    ]:
        with boa.reverts(reason):
            d.challenge(claim_id, claim, *opening, bad)
    d.challenge(claim_id, claim, *opening, inputs)
    assert d.struck(claim_id)


def test_a_split_challenge_cannot_be_replayed_or_stepped_out_of_order(d: Any, r: Round) -> None:
    liar = r.flipped(9, 2)
    claim_id = propose(d, liar)
    claim, *opening = _args(liar, 9)
    cid, t0 = d.open_challenge(claim_id, claim, *opening)
    t1 = d.add_updates(cid, t0, liar.inputs(9, 0, 1))
    with boa.reverts("disputes: tally does not match"):  # the first step replayed
        d.add_updates(cid, t0, liar.inputs(9, 0, 1))
    with boa.reverts("disputes: tally does not match"):
        d.close_challenge(cid, t0, claim)
    # the last update before the middle one: folded in, but the chain no longer matches
    t2 = d.add_updates(cid, t1, liar.inputs(9, 2, 3))
    t3 = d.add_updates(cid, t2, liar.inputs(9, 1, 2))
    with boa.reverts("disputes: updates do not match the claim"):
        d.close_challenge(cid, t3, claim)
    # an honest claim split the same way stands
    honest_id = propose(d, r)
    hid, h0 = d.open_challenge(honest_id, tuple(r.claim.as_tuple()), *r.opening(9))
    h1 = d.add_updates(hid, h0, r.inputs(9))
    with boa.reverts(RIGHT):
        d.close_challenge(hid, h1, r.claim.as_tuple())
    assert not d.struck(honest_id) and not d.struck(claim_id)


def test_a_stranger_cannot_step_someone_elses_split_challenge(d: Any, r: Round) -> None:
    """ATTACK that succeeded: `add_updates` took any sender, so the proposer (or anyone) could
    fold one junk update of its own into a challenger's open tally. The stored tally then no
    longer matched the challenger's, the challenge was void and had to be reopened; repeated
    until the window closed, a wrong aggregate stood."""
    liar = r.flipped(9, 2)
    claim_id = propose(d, liar)
    claim, *opening = _args(liar, 9)
    cid, t0 = d.open_challenge(claim_id, claim, *opening)
    junk_blob = encode_tensors({"w": np.zeros(900, dtype=np.int64)})
    junk = [(Entry.of(junk_blob, 1).as_tuple(), piece(junk_blob, 9))]
    griefer = boa.env.generate_address()
    with boa.env.prank(griefer), boa.reverts("disputes: caller is not the challenger"):
        d.add_updates(cid, t0, junk)
    with boa.env.prank(griefer), boa.reverts("disputes: caller is not the challenger"):
        d.add_updates(cid, t0, liar.inputs(9))
    t = d.add_updates(cid, t0, liar.inputs(9))
    with boa.env.prank(griefer):  # closing stays open to anyone: it can only decide, and credits the opener
        d.close_challenge(cid, t, claim)
    assert d.struck(claim_id)


def _one_coordinate(rule: ChunkRule, values: list[int], weights: list[int], previous: int = 0) -> Round:
    """One coordinate, honestly aggregated by the full Python rule (which refuses an overflow)."""
    deltas = [{"w": np.array([v], dtype=np.int64)} for v in values]
    blobs = [encode_tensors(x, {"t": str(i)}) for i, x in enumerate(deltas)]
    entries = [Entry.of(b, w, v * v) for b, w, v in zip(blobs, weights, values, strict=True)]
    prev = {"w": np.array([previous], dtype=np.int64)}
    model = apply_rule(rule, prev, deltas, weights)
    return Round(
        rule=rule,
        num_params=1,
        previous=encode_tensors(prev),
        aggregate=encode_tensors(model, {"kind": "model"}),
        updates=blobs,
        entries=entries,
    )


TIES = [
    ("median", [2, 2, 2, 5]),
    ("median", [-1, 3, 3, 3, 3]),
    ("median", [7, 7]),
    ("median", [4]),
    ("trimmed_mean", [0, 0, 1, 1, 1, 9, 9, 9, -9, -9]),
    ("trimmed_mean", [5, 5, 5, 5, 5]),
    ("trimmed_mean", [-3, 4, 4, 100, -100, 4]),
]


@pytest.mark.parametrize(("rule", "values"), TIES)
def test_no_witness_pair_strikes_an_honest_order_statistic(d: Any, rule: str, values: list[int]) -> None:
    # every (low, high) among the values and their neighbours (one off either way): the true
    # pair says "right", every other pair reverts
    honest = _one_coordinate(RULES[rule], values, [1] * len(values))
    claim_id = propose(d, honest)
    claim, c, prev, agg, true_low, true_high = _args(honest, 0)
    span = sorted({v + off for v in values for off in (-1, 0, 1)})
    for low in span:
        for high in span:
            with boa.reverts():
                d.challenge(claim_id, claim, c, prev, agg, low, high, honest.inputs(0))
    assert not d.struck(claim_id)
    for off in (-1, 1):  # the honest value one off is struck with the true witnesses
        liar = _one_coordinate(RULES[rule], values, [1] * len(values))
        liar = liar.flipped(0, off)
        lid = propose(d, liar)
        d.challenge(lid, liar.claim.as_tuple(), c, prev, piece(liar.aggregate, 0), true_low, true_high,
                    liar.inputs(0))  # fmt: skip
        assert d.struck(lid)


EDGES = [
    ("fedavg", [INT64_MAX, INT64_MAX], [9_999, 1], 0),
    ("fedavg", [INT64_MIN, INT64_MIN, INT64_MIN], [2**63, 2**63, 1], 0),
    ("fedavg", [INT64_MIN, INT64_MAX], [1, 1], 0),
    ("fedavg", [-1], [1], INT64_MIN + 1),
    ("clipped_fedavg", [INT64_MAX, INT64_MIN], [3, 5], 0),
    ("median", [INT64_MIN, INT64_MAX], [1, 1], 0),
    ("median", [INT64_MIN, INT64_MIN, INT64_MAX, INT64_MAX], [1, 1, 1, 1], 0),
    ("median", [INT64_MAX, INT64_MAX - 1], [1, 1], -5),
    ("trimmed_mean", [INT64_MAX] * 5 + [INT64_MIN] * 5, [1] * 10, 0),
    ("trimmed_mean", [INT64_MAX] * 6, [1] * 6, 0),
]


@pytest.mark.parametrize(("rule", "values", "weights", "previous"), EDGES)
def test_int64_boundaries_keep_honest_claims_and_strike_wrong_ones(
    d: Any, rule: str, values: list[int], weights: list[int], previous: int
) -> None:
    honest = _one_coordinate(RULES[rule], values, weights, previous)
    claim_id = propose(d, honest)
    with boa.reverts(RIGHT):
        challenge(d, claim_id, honest, 0)
    proposed = int(np.frombuffer(honest.aggregate[-8:], dtype="<i8")[0])
    for off in (-1, 1):
        if INT64_MIN <= proposed + off <= INT64_MAX:
            liar = honest.flipped(0, off)
            lid = propose(d, liar)
            challenge(d, lid, liar, 0)
            assert d.struck(lid)


@pytest.mark.parametrize(
    ("rule", "values", "previous"),
    [
        ("fedavg", [1, 1], INT64_MAX),
        ("median", [-2, -2, -2], INT64_MIN),
        ("trimmed_mean", [3] * 5, INT64_MAX - 2),
    ],
)
def test_a_true_value_past_int64_makes_every_claim_provably_wrong(
    d: Any, rule: str, values: list[int], previous: int
) -> None:
    # Python refuses the round; a proposer who states the wrapped or the saturated value is struck
    with pytest.raises(FedledgerError, match="overflows int64"):
        _one_coordinate(RULES[rule], values, [1] * len(values), previous)
    zero = _one_coordinate(RULES[rule], values, [1] * len(values), 0)
    prev_blob = encode_tensors({"w": np.array([previous], dtype=np.int64)})
    for stated in (INT64_MAX, INT64_MIN, previous):
        agg = encode_tensors({"w": np.array([stated], dtype=np.int64)}, {"kind": "model"})
        liar = Round(rule=zero.rule, num_params=1, previous=prev_blob, aggregate=agg,
                     updates=zero.updates, entries=zero.entries)  # fmt: skip
        lid = propose(d, liar)
        challenge(d, lid, liar, 0)
        assert d.struck(lid)


def test_no_chunk_count_refutes_an_honest_offset(d: Any) -> None:
    r = random_round(random.Random(5), RULES["median"], n=3, num_params=2_500)  # 5 chunks
    claim_id = propose(d, r)
    rows = [e.as_tuple() for e in r.entries]
    blobs = [*r.updates, r.previous, r.aggregate]
    for position, blob in enumerate(blobs):
        true = num_chunks(len(blob))
        for n in range(1, 2 * true + 2):
            with boa.reverts():
                d.prove_wrong_offset(claim_id, r.claim.as_tuple(), rows, position, n, first_piece(blob))
        # nor does the chunk 0 of another of the claim's blobs
        other = blobs[(position + 1) % len(blobs)]
        with boa.reverts():
            d.prove_wrong_offset(claim_id, r.claim.as_tuple(), rows, position, true, first_piece(other))
    assert not d.struck(claim_id)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_an_honest_claim_stands_at_every_chunk_edge(d: Any, rule: str) -> None:
    r = random_round(random.Random(rule), RULES[rule], n=6, num_params=1_100, bound=2**62)
    claim_id = propose(d, r)
    offset = r.claim.aggregate_offset
    edges = {0, 1_099, (4096 - offset) // 8 - 1, (4096 - offset) // 8, (8192 - offset) // 8}
    for c in sorted(e for e in edges if 0 <= e < 1_100):
        with boa.reverts(RIGHT):
            challenge(d, claim_id, r, c)
    assert not d.struck(claim_id)
