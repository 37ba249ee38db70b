"""disputes.vy: every revert, word for word, the refuted data offset, and the edge cases of rounding.

Each test changes one thing about a valid challenge, so the revert it expects can only come from
that thing.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import boa
import numpy as np
import pytest
from dispute_harness import RULES, Round, challenge, deploy, propose, random_round

from fedledger.aggregation.chunk import ChunkRule
from fedledger.aggregation.chunk_proof import Entry, first_piece, piece, updates_hash
from fedledger.codec.blob import encode_tensors
from fedledger.codec.commitment import num_chunks


@pytest.fixture(scope="module")
def disputes() -> Any:
    return deploy()


@pytest.fixture
def d(disputes: Any) -> Any:
    with boa.env.anchor():
        yield disputes


@pytest.fixture(scope="module")
def r() -> Round:
    return random_round(random.Random(7), RULES["fedavg"], n=3, num_params=700)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"rule": 0}, "disputes: unknown rule"),
        ({"rule": 5}, "disputes: unknown rule"),
        ({"num_updates": 0}, "disputes: bad update count"),
        ({"num_params": 0}, "disputes: no parameters"),
        ({"trim_num": 1, "trim_den": 2}, "disputes: trim fraction not in [0, 1/2)"),
        ({"trim_den": 0}, "disputes: trim fraction not in [0, 1/2)"),
        ({"rule": 2, "clip_q": 0}, "disputes: clip bound not fixed"),
        ({"previous_offset": 20}, "disputes: bad data offset"),
        ({"aggregate_offset": 8}, "disputes: bad data offset"),
    ],
)
def test_a_malformed_claim_is_refused(d: Any, r: Round, change: dict[str, int], reason: str) -> None:
    with boa.reverts(reason):
        d.propose(replace(r.claim, **change).as_tuple())


def test_a_challenge_must_name_a_live_claim_exactly(d: Any, r: Round) -> None:
    liar = r.flipped(5, 1)
    claim_id = propose(d, liar)
    with boa.reverts("disputes: no such claim"):
        challenge(d, claim_id + 1, liar, 5)
    with boa.reverts("disputes: claim does not match"):
        d.challenge(
            claim_id, replace(liar.claim, num_params=701).as_tuple(), *liar.opening(5), liar.inputs(5)
        )
    with boa.reverts("disputes: coordinate out of range"):
        challenge(d, claim_id, liar, 700)
    challenge(d, claim_id, liar, 5)
    with boa.reverts("disputes: claim already struck"):
        challenge(d, claim_id, liar, 5)


def test_every_chunk_must_carry_its_proof(d: Any, r: Round) -> None:
    liar = r.flipped(5, 1)
    claim_id = propose(d, liar)
    c, prev, agg, low, high = liar.opening(5)
    with boa.reverts("disputes: bad proof"):
        d.challenge(claim_id, liar.claim.as_tuple(), c, agg, agg, low, high, liar.inputs(5))
    bad = liar.inputs(5)
    bad[1] = (bad[1][0], bad[0][1])  # update 0's chunk under update 1's root
    with boa.reverts("disputes: bad proof"):
        d.challenge(claim_id, liar.claim.as_tuple(), c, prev, agg, low, high, bad)
    heavy = liar.inputs(5)
    heavy[0] = ((*heavy[0][0][:2], 2**64, heavy[0][0][3]), heavy[0][1])
    with boa.reverts("disputes: weight too large"):
        d.challenge(claim_id, liar.claim.as_tuple(), c, prev, agg, low, high, heavy)
    odd = liar.inputs(5)
    odd[0] = ((odd[0][0][0], 20, *odd[0][0][2:]), odd[0][1])
    with boa.reverts("disputes: bad data offset"):
        d.challenge(claim_id, liar.claim.as_tuple(), c, prev, agg, low, high, odd)


def test_a_claim_longer_than_its_blobs_cannot_be_read_past_their_end(d: Any, r: Round) -> None:
    # one more parameter than the blobs hold, still within their last (short) chunk
    claim = replace(r.claim, num_params=701)
    assert num_chunks(len(r.previous)) == num_chunks(r.claim.previous_offset + 8 * 701)
    claim_id = d.propose(claim.as_tuple())
    last = (r.previous, r.aggregate)
    with boa.reverts("disputes: chunk too short"):
        d.challenge(claim_id, claim.as_tuple(), 700, piece(last[0], 699), piece(last[1], 699), 0, 0, [])


def test_the_updates_must_be_the_claims_in_its_order_and_all_of_them(d: Any, r: Round) -> None:
    liar = r.flipped(5, 1)
    claim_id = propose(d, liar)
    swapped = liar.inputs(5)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with boa.reverts("disputes: updates do not match the claim"):
        d.challenge(claim_id, liar.claim.as_tuple(), *liar.opening(5), swapped)
    with boa.reverts("disputes: updates missing"):
        d.challenge(claim_id, liar.claim.as_tuple(), *liar.opening(5), liar.inputs(5)[:2])


def test_a_split_challenge_checks_its_tally_every_step(d: Any, r: Round) -> None:
    liar = r.flipped(5, 1)
    claim_id = propose(d, liar)
    challenge_id, tally = d.open_challenge(claim_id, liar.claim.as_tuple(), *liar.opening(5))
    with boa.reverts("disputes: no open challenge"):
        d.add_updates(challenge_id + 1, tally, liar.inputs(5, 0, 1))
    forged = (*tuple(tally)[:11], tuple(tally)[11] + 1, *tuple(tally)[12:])
    with boa.reverts("disputes: tally does not match"):
        d.add_updates(challenge_id, forged, liar.inputs(5, 0, 1))
    tally = d.add_updates(challenge_id, tally, liar.inputs(5, 0, 2))
    with boa.reverts("disputes: updates missing"):
        d.close_challenge(challenge_id, tally, liar.claim.as_tuple())
    tally = d.add_updates(challenge_id, tally, liar.inputs(5, 2, 3))
    with boa.env.prank(boa.env.generate_address()):  # anyone may close; the opener is credited
        d.close_challenge(challenge_id, tally, liar.claim.as_tuple())
    (proven,) = [e for e in d.get_logs() if type(e).__name__ == "FraudProven"]
    assert proven.challenger == boa.env.eoa == d.challenger(challenge_id)
    with boa.reverts("disputes: no open challenge"):
        d.close_challenge(challenge_id, tally, liar.claim.as_tuple())


def test_wrong_witnesses_prove_nothing(d: Any) -> None:
    liar = random_round(random.Random(3), RULES["median"], n=5, num_params=300).flipped(9, 1)
    claim_id = propose(d, liar)
    c, prev, agg, low, high = liar.opening(9)
    with boa.reverts("disputes: witnesses are not the order statistics"):
        d.challenge(claim_id, liar.claim.as_tuple(), c, prev, agg, low + 1, high + 1, liar.inputs(9))
    d.challenge(claim_id, liar.claim.as_tuple(), c, prev, agg, low, high, liar.inputs(9))


def _tiny_round(rule: ChunkRule, values: list[int], weights: list[int], proposed: int) -> Round:
    """One coordinate, previous 0, the given update values and a proposed aggregate value."""
    blobs = [
        encode_tensors({"w": np.array([v], dtype=np.int64)}, {"t": str(i)}) for i, v in enumerate(values)
    ]
    entries = [Entry.of(b, w, v * v) for b, w, v in zip(blobs, weights, values, strict=True)]
    zero = encode_tensors({"w": np.zeros(1, dtype=np.int64)})
    aggregate = encode_tensors({"w": np.array([proposed], dtype=np.int64)}, {"kind": "model"})
    return Round(rule=rule, num_params=1, previous=zero, aggregate=aggregate, updates=blobs, entries=entries)


@pytest.mark.parametrize(
    ("rule", "values", "weights", "right", "wrong"),
    [
        (ChunkRule(name="fedavg"), [-3, 0], [1, 1], -1, -2),  # -1.5: halves go up, to -1
        (ChunkRule(name="fedavg"), [3, 0], [1, 1], 2, 1),  # 1.5 -> 2
        (ChunkRule(name="median"), [-4, 1, 9, -8], [1] * 4, -1, -2),  # (-4 + 1) / 2 = -1.5 -> -1
        (ChunkRule(name="clipped_fedavg", clip_norm_q=4), [10, -10, 3], [1, 1, 1], 1, 0),  # (4 - 4 + 3) / 3
    ],
)
def test_halves_round_up_as_in_python(
    d: Any, rule: ChunkRule, values, weights, right: int, wrong: int
) -> None:
    for proposed, struck in [(right, False), (wrong, True)]:
        tiny = _tiny_round(rule, values, weights, proposed)
        claim_id = propose(d, tiny)
        if struck:
            challenge(d, claim_id, tiny, 0)
        else:
            with boa.reverts("disputes: the proposed value is right"):
                challenge(d, claim_id, tiny, 0)
        assert d.struck(claim_id) is struck


def test_no_weight_means_no_right_aggregate(d: Any) -> None:
    tiny = _tiny_round(ChunkRule(name="fedavg"), [1, 2], [0, 0], 0)
    with boa.reverts("disputes: weights sum to 0"):
        challenge(d, propose(d, tiny), tiny, 0)


@pytest.mark.parametrize("which", ["update", "previous", "aggregate"])
def test_a_false_data_offset_is_refuted_from_chunk_0(d: Any, r: Round, which: str) -> None:
    entries = list(r.entries)
    position = {"update": 1, "previous": 3, "aggregate": 4}[which]
    blob = {"update": r.updates[1], "previous": r.previous, "aggregate": r.aggregate}[which]
    n = num_chunks(len(blob))
    honest_id = propose(d, r)
    rows = [e.as_tuple() for e in entries]
    with boa.reverts("disputes: the stated offset is right"):
        d.prove_wrong_offset(honest_id, r.claim.as_tuple(), rows, position, n, first_piece(blob))
    if which == "update":
        entries[1] = replace(entries[1], offset=entries[1].offset + 8)
        claim = replace(r.claim, updates_hash=updates_hash(entries))
    else:
        field = f"{which}_offset"
        claim = replace(r.claim, **{field: getattr(r.claim, field) + 8})
    claim_id = d.propose(claim.as_tuple())
    rows = [e.as_tuple() for e in entries]
    with boa.reverts("disputes: updates do not match the claim"):
        d.prove_wrong_offset(claim_id, claim.as_tuple(), rows[:2], 1, n, first_piece(blob))
    with boa.reverts("disputes: no such blob"):
        d.prove_wrong_offset(claim_id, claim.as_tuple(), rows, 5, n, first_piece(blob))
    with boa.reverts("disputes: bad proof"):
        d.prove_wrong_offset(claim_id, claim.as_tuple(), rows, position, n, first_piece(r.updates[0]))
    d.prove_wrong_offset(claim_id, claim.as_tuple(), rows, position, n, first_piece(blob))
    assert d.struck(claim_id) is True
