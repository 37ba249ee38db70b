"""disputes.vy against the Python reference: random rounds, every rule, one and several transactions.

An honest aggregate survives a challenge at any coordinate ("disputes: the proposed value is
right"); an aggregate one value off, by a rounding step or a flipped bit, is struck by a challenge
at that coordinate, and the contract's expected value is the Python rule's.
"""

from __future__ import annotations

import random

import boa
import pytest
from dispute_harness import RULES, challenge, deploy, propose, random_round
from hypothesis import given, settings
from hypothesis import strategies as st

from fedledger.aggregation.chunk_proof import value_at
from fedledger.aggregation.chunk_witness import coordinate_delta
from fedledger.codec.commitment import merkle_proof, merkle_root, verify_proof

RIGHT = "disputes: the proposed value is right"


@pytest.fixture(scope="module")
def disputes():
    return deploy()


@pytest.fixture(scope="module")
def merkle():
    return boa.load("tests/contracts/merkle_harness.vy")


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=5 * 4096 + 77), st.data())
def test_merkle_module_agrees_with_the_codec(merkle, data: bytes, draw: st.DataObject) -> None:
    n = max(1, -(-len(data) // 4096))
    index = draw.draw(st.integers(0, n - 1))
    chunk, proof, root = data[index * 4096 : (index + 1) * 4096], merkle_proof(data, index), merkle_root(data)
    assert merkle.verify(root, chunk, index, n, proof) is True
    wrong_count = draw.draw(st.integers(1, n + 3))
    for args in [(root, chunk + b"x", index, n, proof), (root, chunk, index, wrong_count, proof)]:
        assert merkle.verify(*args) == verify_proof(args[0], args[1], args[2], args[3], list(args[4]))
    if proof:
        assert merkle.verify(root, chunk, index, n, proof[:-1]) is False


@pytest.mark.parametrize("rule", sorted(RULES))
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 9), by=st.sampled_from([1, -1, 2**40, -(2**62)]))
def test_a_wrong_value_is_struck_and_a_right_one_stands(
    disputes, rule: str, seed: int, n: int, by: int
) -> None:
    rng = random.Random(seed)
    honest = random_round(rng, RULES[rule], n=n, num_params=rng.randrange(1, 1400))
    c = rng.randrange(honest.num_params)
    with boa.env.anchor():
        claim_id = propose(disputes, honest)
        with boa.reverts(RIGHT):
            challenge(disputes, claim_id, honest, c)
        assert disputes.struck(claim_id) is False
    liar = honest.flipped(c, by)
    with boa.env.anchor():
        claim_id = propose(disputes, liar)
        challenge(disputes, claim_id, liar, c)
        (event,) = [e for e in disputes.get_logs() if type(e).__name__ == "FraudProven"]
        assert disputes.struck(claim_id) is True
        previous = value_at(honest.previous, c)
        entries = honest.entries
        delta = coordinate_delta(
            honest.rule,
            honest.values(c),
            [e.weight for e in entries],
            [e.squared_norm for e in entries],
            *honest.opening(c)[3:],
        )
        assert (event.coordinate, event.proposed, event.expected) == (
            c,
            value_at(liar.aggregate, c),
            previous + delta,
        )
        assert event.expected == value_at(honest.aggregate, c)


@pytest.mark.parametrize("rule", sorted(RULES))
def test_a_challenge_split_over_transactions_reaches_the_same_verdict(disputes, rule: str) -> None:
    rng = random.Random(rule)
    honest = random_round(rng, RULES[rule], n=7, num_params=900)
    for r, struck in [(honest, False), (honest.flipped(611, 1), True)]:
        with boa.env.anchor():
            claim_id = propose(disputes, r)
            assert disputes.claim_hash(claim_id) == r.claim.digest()  # the Python encoding is the contract's
            challenge_id, tally = disputes.open_challenge(claim_id, r.claim.as_tuple(), *r.opening(611))
            for lo, hi in [(0, 3), (3, 3), (3, 7)]:
                tally = disputes.add_updates(challenge_id, tally, r.inputs(611, lo, hi))
            if struck:
                disputes.close_challenge(challenge_id, tally, r.claim.as_tuple())
            else:
                with boa.reverts(RIGHT):
                    disputes.close_challenge(challenge_id, tally, r.claim.as_tuple())
            assert disputes.struck(claim_id) is struck


def _watch(r, header: bytes) -> tuple[str, int | None]:
    """What a watcher holding every blob finds: the first wrong chunk's verdict."""
    from fedledger.aggregation.chunk import BlobChunks, Contributor, check_chunk
    from fedledger.codec.commitment import chunk_at, num_chunks

    def whole(blob: bytes) -> BlobChunks:
        return BlobChunks.of(blob, range(num_chunks(len(blob))))

    updates = [
        Contributor(blob=whole(b), weight=e.weight, squared_norm=e.squared_norm)
        for b, e in zip(r.updates, r.entries, strict=True)
    ]
    for index in range(num_chunks(len(r.aggregate))):
        verdict = check_chunk(
            index,
            chunk_at(r.aggregate, index),
            rule=r.rule,
            num_params=r.num_params,
            previous=whole(r.previous),
            updates=updates,
            aggregate_header=header,
        )
        if not verdict.ok:
            return verdict.wrong, verdict.coordinate
    return "none", None


def test_a_watcher_finds_the_wrong_chunk_and_its_challenge_strikes(disputes) -> None:
    rng = random.Random("watcher")
    honest = random_round(rng, RULES["trimmed_mean"], n=6, num_params=1500)
    header = honest.aggregate[: 8 + int.from_bytes(honest.aggregate[:8], "little")]
    assert _watch(honest, header) == ("none", None)
    liar = honest.flipped(1337, -1).flipped(1400, 5)
    wrong, c = _watch(liar, header)
    assert (wrong, c) == ("value", 1337)
    with boa.env.anchor():
        claim_id = propose(disputes, liar)
        challenge(disputes, claim_id, liar, c)
        assert disputes.struck(claim_id) is True


def test_a_wrong_header_is_seen_but_no_value_challenge_can_strike_it(disputes) -> None:
    """The limit stated in docs/design.md: header bytes escalate to the committee."""
    honest = random_round(random.Random("header"), RULES["fedavg"], n=3, num_params=800)
    n = int.from_bytes(honest.aggregate[:8], "little")
    header = honest.aggregate[: 8 + n]
    at = header.rindex(b"x")  # a metadata byte: same length, other content
    liar = honest.with_aggregate(honest.aggregate[:at] + b"y" + honest.aggregate[at + 1 :])
    assert _watch(liar, header) == ("header", None)
    with boa.env.anchor():
        claim_id = propose(disputes, liar)
        for c in (0, 799):
            with boa.reverts(RIGHT):
                challenge(disputes, claim_id, liar, c)
