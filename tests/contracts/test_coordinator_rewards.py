"""Rewards: split by examples with floor rounding, exclusion, lazy settlement, withdraw, reclaim."""

from __future__ import annotations

import pytest
from coordinator_harness import events, h, names, only

from fedledger.chain.contracts import Phase
from fedledger.errors import TransactionReverted


def _round(world, job_id, examples, excluded=(), aggregate=None):
    for t, ex in zip(world.trainers, examples, strict=False):
        world.commit(job_id, t, ex)
    return world.finalize(job_id, aggregate, [world.trainers[i].address for i in excluded])


def test_reward_split_by_examples_with_floor_rounding(world):
    job_id = world.job(n_trainers=3, reward_per_round=10_000)
    _round(world, job_id, (10, 20, 30))
    t0, t1, t2 = (t.address for t in world.trainers[:3])
    # floor(10000*10/60), floor(10000*20/60), floor(10000*30/60): 1 wei of dust stays
    assert [world.coord.claimable(job_id, a) for a in (t0, t1, t2)] == [1666, 3333, 5000]
    # lazy: nothing has been written to the trainer words yet
    ts = world.coord.trainer_state(job_id, t0)
    assert (ts.accrued, ts.settled) == (0, False)
    assert world.coord.pool(job_id) == 10_000
    assert (
        world.token.balance_of(world.coord.address) == 10_000 + 10_000 + 6 * 1_000 - 0
    )  # pool+paid round+stakes


def test_settlement_on_next_commit(world):
    job_id = world.job(n_trainers=3, reward_per_round=10_000, rounds=3)
    _round(world, job_id, (10, 20, 30))
    t0 = world.trainers[0]
    world.commit(job_id, t0, 7)
    ts = world.coord.trainer_state(job_id, t0.address)
    assert (ts.accrued, ts.settled, ts.last_round, ts.examples) == (1666, False, 2, 7)
    assert world.coord.claimable(job_id, t0.address) == 1666  # round 2 still pending
    world.commit(job_id, world.trainers[1], 7)
    world.commit(job_id, world.trainers[2], 14)
    world.finalize(job_id)
    assert world.coord.claimable(job_id, t0.address) == 1666 + 2500
    assert world.coord.claimable(job_id, world.trainers[2].address) == 5000 + 5000


def test_excluded_trainer_gets_nothing_and_others_share_the_round(world):
    job_id = world.job(n_trainers=3, reward_per_round=10_000)
    r = _round(world, job_id, (10, 20, 30), excluded=(1,))
    fin = only(world.d, r, "RoundFinalized")
    assert (fin["accepted_commits"], fin["accepted_weight"], fin["reward"]) == (2, 40, 10_000)
    t0, t1, t2 = (t.address for t in world.trainers[:3])
    assert world.coord.claimable(job_id, t1) == 0
    assert world.coord.claimable(job_id, t0) == 2500
    assert world.coord.claimable(job_id, t2) == 7500
    with pytest.raises(TransactionReverted) as e:
        world.coord.withdraw(world.trainers[1], job_id)
    assert e.value.reason == "coordinator: nothing to withdraw"
    # the exclusion is per round: the next round pays it again
    world.commit(job_id, world.trainers[0], 1)
    world.commit(job_id, world.trainers[1], 1)
    world.commit(job_id, world.trainers[2], 2)
    world.finalize(job_id)
    assert world.coord.claimable(job_id, t1) == 2500
    assert world.coord.trainer_state(job_id, t1).excluded is False


def test_failed_round_pays_nothing(world):
    job_id = world.job(n_trainers=3, min_commits=2, max_failures=2)
    world.commit(job_id, world.trainers[0], 10)
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)  # too few commits
    assert world.coord.claimable(job_id, world.trainers[0].address) == 0
    _round(world, job_id, (10, 20, 30))  # round 2 is finalised, not counted to the trainers of round 1
    world.expire(job_id)
    assert world.coord.claimable(job_id, world.trainers[0].address) == 1666
    assert world.coord.pool(job_id) == 10_000


def test_withdraw_mid_job_pays_reward_keeps_stake(world):
    job_id = world.job(n_trainers=3, reward_per_round=10_000, rounds=2)
    _round(world, job_id, (10, 20, 30))
    t2 = world.trainers[2]
    before = world.token.balance_of(t2.address)
    r = world.coord.withdraw(t2, job_id)
    assert names(world.d, r) == ["Transfer", "Withdrawn"]
    evs = events(world.d, r)
    assert evs[0][1] == {"sender": world.coord.address, "receiver": t2.address, "value": 5000}
    assert evs[1][1] == {"job_id": job_id, "account": t2.address, "reward": 5000, "fees": 0, "stake": 0}
    assert world.token.balance_of(t2.address) == before + 5000
    assert world.coord.stake_of(job_id, t2.address) == 1_000
    assert world.coord.claimable(job_id, t2.address) == 0
    ts = world.coord.trainer_state(job_id, t2.address)
    assert (ts.accrued, ts.settled) == (0, True)
    with pytest.raises(TransactionReverted) as e:  # no double payout
        world.coord.withdraw(t2, job_id)
    assert e.value.reason == "coordinator: nothing to withdraw"
    # a later commit does not settle round 1 a second time
    world.commit(job_id, t2, 5)
    assert world.coord.trainer_state(job_id, t2.address).accrued == 0


def test_stake_returned_only_after_job_ends(world):
    job_id = world.job(n_trainers=2, n_validators=3, rounds=1, stake=1_000, reward_per_round=999)
    v = world.validators[0]
    with pytest.raises(TransactionReverted) as e:
        world.coord.withdraw(v, job_id)
    assert e.value.reason == "coordinator: nothing to withdraw"
    _round(world, job_id, (1, 2))
    assert world.coord.job_state(job_id).phase == Phase.DONE
    before = world.token.balance_of(v.address)
    r = world.coord.withdraw(v, job_id)
    assert only(world.d, r, "Withdrawn") == {
        "job_id": job_id,
        "account": v.address,
        "reward": 0,
        "fees": 0,
        "stake": 1_000,
    }
    assert world.token.balance_of(v.address) == before + 1_000
    assert world.coord.stake_of(job_id, v.address) == 0
    t1 = world.trainers[1]
    r = world.coord.withdraw(t1, job_id)  # reward (settled lazily here) and stake in one transfer
    assert names(world.d, r) == ["ReputationUpdated", "Transfer", "Withdrawn"]
    assert events(world.d, r)[1][1]["value"] == 666 + 1_000
    assert only(world.d, r, "Withdrawn") == {
        "job_id": job_id,
        "account": t1.address,
        "reward": 666,
        "fees": 0,
        "stake": 1_000,
    }
    for who in (v, t1):
        with pytest.raises(TransactionReverted) as e:
            world.coord.withdraw(who, job_id)
        assert e.value.reason == "coordinator: nothing to withdraw"
    # 999 * 1 // 3 = 333 to trainer 0, 666 to trainer 1: no dust here
    world.coord.withdraw(world.trainers[0], job_id)
    for a in world.validators[1:]:
        world.coord.withdraw(a, job_id)
    assert world.token.balance_of(world.coord.address) == 0


def test_outsider_has_nothing_to_withdraw(world):
    job_id = world.job()
    with pytest.raises(TransactionReverted) as e:
        world.coord.withdraw(world.outsider, job_id)
    assert e.value.reason == "coordinator: nothing to withdraw"
    assert world.coord.claimable(job_id, world.outsider.address) == 0


def test_reclaim_after_abort(world):
    job_id = world.job(n_trainers=2, rounds=3, max_failures=0, reward_per_round=10_000)
    _round(world, job_id, (1, 1))
    with pytest.raises(TransactionReverted) as e:
        world.coord.reclaim(world.sponsor, job_id)
    assert e.value.reason == "coordinator: job not ended"
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)
    assert world.coord.job_state(job_id).phase == Phase.ABORTED
    with pytest.raises(TransactionReverted) as e:
        world.coord.reclaim(world.trainers[0], job_id)
    assert e.value.reason == "coordinator: caller is not the sponsor"
    before = world.token.balance_of(world.sponsor.address)
    r = world.coord.reclaim(world.sponsor, job_id)
    assert names(world.d, r) == ["Transfer", "PoolReclaimed"]
    assert only(world.d, r, "PoolReclaimed") == {
        "job_id": job_id,
        "sponsor": world.sponsor.address,
        "amount": 20_000,
    }
    assert world.token.balance_of(world.sponsor.address) == before + 20_000
    assert world.coord.pool(job_id) == 0
    with pytest.raises(TransactionReverted) as e:
        world.coord.reclaim(world.sponsor, job_id)
    assert e.value.reason == "coordinator: pool is empty"
    # trainers keep what round 1 earned, and get their stakes back
    r = world.coord.withdraw(world.trainers[0], job_id)
    assert only(world.d, r, "Withdrawn")["reward"] == 5_000
    assert only(world.d, r, "Withdrawn")["stake"] == 1_000


def test_reclaim_after_completion_has_nothing_left(world):
    job_id = world.job(n_trainers=2, rounds=1)
    _round(world, job_id, (3, 4), excluded=())
    with pytest.raises(TransactionReverted) as e:
        world.coord.reclaim(world.sponsor, job_id)
    assert e.value.reason == "coordinator: pool is empty"


def test_reclaim_unknown_job(world):
    with pytest.raises(TransactionReverted) as e:
        world.coord.reclaim(world.sponsor, 42)
    assert e.value.reason == "coordinator: caller is not the sponsor"


def test_jobs_sharing_a_token_are_accounted_separately(world):
    a = world.job(n_trainers=2, rounds=1, reward_per_round=1_000)
    b = world.job(n_trainers=2, rounds=1, reward_per_round=5_000, max_failures=0)
    _round(world, a, (1, 1), aggregate=h("a"))
    world.expire(b)
    world.coord.advance(world.outsider, b)
    assert world.coord.claimable(a, world.trainers[0].address) == 500
    assert world.coord.claimable(b, world.trainers[0].address) == 0
    world.coord.reclaim(world.sponsor, b)
    with pytest.raises(TransactionReverted) as e:
        world.coord.reclaim(world.sponsor, a)
    assert e.value.reason == "coordinator: pool is empty"
    for t in world.trainers[:2]:
        world.coord.withdraw(t, a)
        world.coord.withdraw(t, b)
    for v in world.validators:
        world.coord.withdraw(v, a)
        world.coord.withdraw(v, b)
    assert world.token.balance_of(world.coord.address) == 0
