"""Scored jobs: validators post scores, the contract settles the stake-weighted median,
pays trainers by it and validators near it, and keeps each trainer's reputation."""

from __future__ import annotations

import pytest
from coordinator_harness import h, names, only
from eth_utils import keccak

from fedledger.chain.contracts import SCORE_ONE, pack_scores, unpack_scores
from fedledger.errors import TransactionReverted

SCORED = dict(scored=True, validator_fee_bps=1_000, score_tolerance=500)


def _commit(world, job_id, n=3, examples=10):
    for t in world.trainers[:n]:
        world.commit(job_id, t, examples)


def _propose(world, job_id, v, scores, excluded=(), flagged=(), aggregate=None):
    rnd = world.coord.job_state(job_id).round
    return world.coord.propose(
        v, job_id, rnd, aggregate or h(f"agg:{job_id}:{rnd}"), list(excluded), list(flagged), scores
    )


def test_pack_scores_round_trips_and_refuses_out_of_range():
    scores = [0, 1, SCORE_ONE, 1234] * 5
    words = pack_scores(scores)
    assert len(words) == 2 and unpack_scores(words, len(scores)) == scores
    with pytest.raises(ValueError, match="outside"):
        pack_scores([SCORE_ONE + 1])


def test_reward_follows_the_median_of_the_quorums_scores(world):
    job_id = world.job(n_trainers=3, quorum=3, reward_per_round=10_000, **SCORED)
    _commit(world, job_id)
    v0, v1, v2 = world.validators
    _propose(world, job_id, v0, [10_000, 6_000, 0])
    _propose(world, job_id, v1, [10_000, 6_200, 0])
    r = _propose(world, job_id, v2, [10_000, 5_900, 100])
    assert "ScoresSettled" in names(world.d, r)
    settled = only(world.d, r, "ScoresSettled")
    assert unpack_scores(settled["scores"], 3) == [10_000, 6_000, 0]
    assert settled["total"] == 16_000
    fin = only(world.d, r, "RoundFinalized")
    # 10% fee to validators, 9,000 shared by consensus score
    assert (fin["accepted_weight"], fin["reward"]) == (16_000, 9_000)
    t0, t1, t2 = (t.address for t in world.trainers[:3])
    assert [world.coord.consensus_score(job_id, 1, s) for s in range(3)] == [10_000, 6_000, 0]
    assert world.coord.claimable(job_id, t0) == 9_000 * 10_000 // 16_000
    assert world.coord.claimable(job_id, t1) == 9_000 * 6_000 // 16_000
    assert world.coord.claimable(job_id, t2) == 0  # the free rider earns nothing
    # every validator was within 500 of the median on every trainer: the fee is split three ways
    paid = [a for n, a in _events(world, r) if n == "ValidatorRewarded"]
    assert [(p["validator"], p["amount"]) for p in paid] == [(v.address, 333) for v in (v0, v1, v2)]
    assert world.coord.fees_of(job_id, v1.address) == 333
    assert world.coord.pool(job_id) == 2 * 10_000 - 9_000 - 999  # two rounds funded, one paid


def _events(world, r):
    from coordinator_harness import events

    return events(world.d, r)


def test_a_lying_minority_cannot_move_the_median_and_earns_no_fee(world):
    job_id = world.job(n_trainers=3, quorum=3, reward_per_round=10_000, **SCORED)
    _commit(world, job_id)
    v0, v1, v2 = world.validators
    _propose(world, job_id, v0, [2_000, 10_000, 5_000])
    _propose(world, job_id, v1, [2_100, 10_000, 5_000])
    r = _propose(world, job_id, v2, [10_000, 0, 10_000])  # the liar: pay me (t0), not t1
    assert unpack_scores(only(world.d, r, "ScoresSettled")["scores"], 3) == [2_100, 10_000, 5_000]
    paid = {p["validator"]: p["amount"] for n, p in _events(world, r) if n == "ValidatorRewarded"}
    assert paid == {v0.address: 500, v1.address: 500}
    assert world.coord.fees_of(job_id, v2.address) == 0


def test_median_is_weighted_by_stake(world):
    """A validator slashed to nothing for dissent no longer weighs in the median."""
    job_id = world.job(
        n_trainers=3, quorum=2, min_commits=1, rounds=3, stake=1_000, slash_bps=10_000, **SCORED
    )
    v0, v1, v2 = world.validators
    _commit(world, job_id)
    _propose(world, job_id, v0, [10_000, 10_000, 10_000], aggregate=h("other"))  # dissents
    _propose(world, job_id, v1, [10_000, 10_000, 10_000])
    _propose(world, job_id, v2, [10_000, 10_000, 10_000])
    world.coord.report_dissent(world.outsider, job_id, 1, v0.address)
    assert world.coord.stake_of(job_id, v0.address) == 0
    # round 2: all three agree on the model; v0 (no stake) holds the middle score
    job2 = world.coord.job_config(job_id)  # quorum 2: v0 and v1 finalise
    assert job2["quorum"] == 2
    _commit(world, job_id)
    _propose(world, job_id, v0, [5_000, 5_000, 5_000])
    r = _propose(world, job_id, v1, [1_000, 9_000, 1_000])
    # equal weights would give the lower median 1,000 / 5,000; v0's zero stake leaves v1 alone
    assert unpack_scores(only(world.d, r, "ScoresSettled")["scores"], 3) == [1_000, 9_000, 1_000]


def test_a_round_where_nobody_scored_pays_no_trainer(world):
    job_id = world.job(n_trainers=3, quorum=2, reward_per_round=10_000, **SCORED)
    _commit(world, job_id)
    pool = world.coord.pool(job_id)
    r = world.finalize(job_id, scores=[0, 0, 0])
    fin = only(world.d, r, "RoundFinalized")
    assert (fin["accepted_weight"], fin["reward"]) == (0, 0)
    assert world.coord.pool(job_id) == pool - 2 * 500  # only the two validators' fees left
    assert all(world.coord.claimable(job_id, t.address) == 0 for t in world.trainers[:3])


def test_a_validator_that_never_posts_does_not_block_settlement(world):
    job_id = world.job(n_trainers=3, quorum=2, reward_per_round=10_000, **SCORED)
    _commit(world, job_id)
    r = world.finalize(job_id, validators=world.validators[1:], scores=[10_000, 5_000, 5_000])
    assert "RoundFinalized" in names(world.d, r)
    assert world.coord.claimable(job_id, world.trainers[0].address) == 9_000 * 10_000 // 20_000
    assert world.coord.fees_of(job_id, world.validators[0].address) == 0


def test_flagged_and_excluded_updates_score_zero(world):
    job_id = world.job(n_trainers=3, quorum=2, reward_per_round=10_000, **SCORED)
    _commit(world, job_id)
    bad = world.trainers[1].address
    with pytest.raises(TransactionReverted) as e:
        _propose(world, job_id, world.validators[0], [10_000, 10, 8_000], excluded=[bad], flagged=[bad])
    assert e.value.reason == "coordinator: score for an excluded update"
    world.finalize(job_id, excluded=[bad], flagged=[bad], scores=[10_000, 0, 8_000])
    assert world.coord.claimable(job_id, bad) == 0
    assert world.coord.claimable(job_id, world.trainers[2].address) == 9_000 * 8_000 // 18_000


def test_score_reverts(world):
    job_id = world.job(n_trainers=3, quorum=2, **SCORED)
    plain = world.job(n_trainers=3, quorum=2)
    _commit(world, job_id)
    _commit(world, plain)
    v0 = world.validators[0]
    agg = h("A")
    cases = [
        ((job_id, 1, agg, [], 0, []), "coordinator: wrong number of scores"),
        ((job_id, 1, agg, [], 0, [0, 0]), "coordinator: wrong number of scores"),
        ((job_id, 1, agg, [], 0, pack_scores([1, 2, 3, 4])), "coordinator: score for a non-committer"),
        ((job_id, 1, agg, [], 0, [SCORE_ONE + 1]), "coordinator: score out of range"),
        ((job_id, 1, agg, [], 0, [(SCORE_ONE + 1) << 32]), "coordinator: score out of range"),
        ((plain, 1, agg, [], 0, pack_scores([1, 2, 3])), "coordinator: job is not scored"),
        # scores for the wrong round are refused like any proposal for it
        ((job_id, 2, agg, [], 0, pack_scores([1, 2, 3])), "coordinator: wrong round"),
    ]
    for args, reason in cases:
        with pytest.raises(TransactionReverted) as e:
            world.coord.transact(v0, "propose", *args, 0, 0)
        assert e.value.reason == reason, args
    with pytest.raises(TransactionReverted) as e:  # from a non-validator
        world.coord.propose(world.trainers[0], job_id, 1, agg, [], [], [1, 2, 3])
    assert e.value.reason == "coordinator: not a registered validator"


def test_scored_job_parameters_are_checked(world):
    for overrides, reason in [
        (dict(scored=True, validator_fee_bps=10_001), "coordinator: fee above reward"),
        (dict(scored=False, validator_fee_bps=100), "coordinator: fee needs scores"),
        (dict(min_reputation=SCORE_ONE + 1), "coordinator: reputation above maximum"),
        (dict(reward_per_round=2**128), "coordinator: reward too large"),
    ]:
        with pytest.raises(TransactionReverted) as e:
            world.create(**overrides)
        assert e.value.reason == reason


def test_record_and_reputation_follow_consensus_scores(world):
    job_id = world.job(n_trainers=2, quorum=2, min_commits=2, rounds=3, **SCORED)
    t0, t1 = world.trainers[:2]
    for scores in ([10_000, 2_000], [10_000, 6_000], [10_000, 2_000]):
        _commit(world, job_id, n=2)
        world.finalize(job_id, scores=scores)
    # settled lazily: rounds 1 and 2 by the commits, round 3 at withdrawal
    ts = world.coord.trainer_state(job_id, t1.address)
    assert (ts.rounds, ts.score) == (2, (3 * 2_000 + 6_000) // 4)
    r = world.coord.withdraw(t1, job_id)
    rep = only(world.d, r, "ReputationUpdated")
    score = (3 * 3_000 + 2_000) // 4
    assert (rep["score"], rep["rounds"], rep["scored_rounds"]) == (score, 3, 3)
    assert (rep["flags"], rep["jobs"]) == (0, 1)
    assert world.coord.reputation(t1.address).score == score
    assert world.coord.trainer_state(job_id, t1.address).folded
    # a second withdrawal has nothing to pay and does not count the job twice
    with pytest.raises(TransactionReverted) as e:
        world.coord.withdraw(t1, job_id)
    assert e.value.reason == "coordinator: nothing to withdraw"
    assert world.coord.reputation(t1.address).jobs == 1
    world.coord.withdraw(t0, job_id)
    assert world.coord.reputation(t0.address).score == SCORE_ONE

    # a job that requires reputation admits t0 (10,000) and refuses t1 (2,750) and newcomers
    gated = world.create(min_reputation=5_000)
    world.coord.register(t0, gated, as_trainer=True)
    for who in (t1, world.trainers[3]):
        with pytest.raises(TransactionReverted) as e:
            world.coord.register(who, gated, as_trainer=True)
        assert e.value.reason == "coordinator: reputation too low"


def _set_commits(world, job_id, commits):
    """Writes the job word's commit counter directly (the layout is in packing.vy)."""
    state = world.chain._env.evm.vm.state
    address = bytes.fromhex(world.coord.address[2:])
    slot = int.from_bytes(keccak((2).to_bytes(32, "big") + job_id.to_bytes(32, "big")), "big")
    word = state.get_storage(address, slot)
    assert word & 0xFF == 1  # the slot is right: phase OPEN
    state.set_storage(address, slot, (word & ~((2**32 - 1) << 104)) | (commits << 104))
    assert world.coord.job_state(job_id).commits == commits


def test_a_round_holds_at_most_4096_commits(world):
    """Scores index committers by a 12-bit slot; the 4097th commit of a round is refused."""
    job_id = world.job(n_trainers=2)
    _set_commits(world, job_id, 4_095)
    world.commit(job_id, world.trainers[0])
    assert world.coord.trainer_state(job_id, world.trainers[0].address).slot == 4_095
    with pytest.raises(TransactionReverted) as e:
        world.commit(job_id, world.trainers[1])
    assert e.value.reason == "coordinator: round is full"
