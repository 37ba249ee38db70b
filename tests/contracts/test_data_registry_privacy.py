"""data_registry.spend_privacy: a trainer's record-level ε, bound to its commits, never decreasing."""

from __future__ import annotations

import pytest

from fedledger.chain.contracts import Phase
from fedledger.errors import TransactionReverted


def spend(world, trainer, job_id, round, micro):
    return world.d.data_registry.spend_privacy(trainer, job_id, round, micro)


def reason_of(fn, *args) -> str:
    with pytest.raises(TransactionReverted) as e:
        fn(*args)
    return e.value.reason


def test_spend_after_commit_emits_and_reads_back(world):
    job_id = world.job(n_trainers=2)
    t = world.trainers[0]
    reg = world.d.data_registry
    assert reg.privacy_spent(job_id, t.address) == (0, 0)
    world.commit(job_id, t)
    r = spend(world, t, job_id, 1, 1_234_567)
    evs = reg.events_in(r)
    assert [(e.name, e.args) for e in evs] == [
        (
            "TrainerPrivacySpent",
            {"job_id": job_id, "trainer": t.address, "round": 1, "micro_epsilon": 1_234_567},
        )
    ]
    assert evs[0].address == reg.address
    assert reg.privacy_spent(job_id, t.address) == (1, 1_234_567)
    assert reg.privacy_spent(job_id, world.trainers[1].address) == (0, 0)


def test_spend_while_aggregating_and_in_the_next_round(world):
    job_id = world.job(n_trainers=2, rounds=3)
    a, b = world.trainers[:2]
    world.commit(job_id, a)
    world.commit(job_id, b)
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING
    spend(world, a, job_id, 1, 100)
    world.finalize(job_id)
    assert world.coord.job_state(job_id).round == 2
    # b's spend for round 1 lands after the round finalised: its last commit is still round 1
    spend(world, b, job_id, 1, 100)
    world.commit(job_id, a)
    spend(world, a, job_id, 2, 100)  # equal is allowed: a spend never decreases
    assert world.d.data_registry.privacy_spent(job_id, a.address) == (2, 100)


def test_zero_epsilon(world):
    job_id = world.job(n_trainers=2)
    world.commit(job_id, world.trainers[0])
    assert reason_of(spend, world, world.trainers[0], job_id, 1, 0) == "data_registry: epsilon is zero"


def test_job_not_running(world):
    assert reason_of(spend, world, world.trainers[0], 99, 1, 5) == "data_registry: job not running"
    job_id = world.job(n_trainers=2, rounds=1)
    for t in world.trainers[:2]:
        world.commit(job_id, t)
    world.finalize(job_id)
    assert world.coord.job_state(job_id).phase == Phase.DONE
    assert reason_of(spend, world, world.trainers[0], job_id, 1, 5) == "data_registry: job not running"


def test_outsider_and_validator_are_not_trainers(world):
    job_id = world.job(n_trainers=2, n_validators=3)
    for who in (world.outsider, world.validators[0]):
        assert reason_of(spend, world, who, job_id, 1, 5) == "data_registry: not a registered trainer"


def test_round_must_be_the_last_committed(world):
    job_id = world.job(n_trainers=2)
    t = world.trainers[0]
    # nothing committed yet: no round to spend for
    assert reason_of(spend, world, t, job_id, 1, 5) == "data_registry: round not committed"
    world.commit(job_id, t)
    assert reason_of(spend, world, t, job_id, 2, 5) == "data_registry: round not committed"
    assert reason_of(spend, world, t, job_id, 0, 5) == "data_registry: round not committed"


def test_one_spend_per_round(world):
    job_id = world.job(n_trainers=2)
    t = world.trainers[0]
    world.commit(job_id, t)
    spend(world, t, job_id, 1, 5)
    assert reason_of(spend, world, t, job_id, 1, 9) == "data_registry: round already spent"
    assert world.d.data_registry.privacy_spent(job_id, t.address) == (1, 5)


def test_epsilon_never_decreases(world):
    job_id = world.job(n_trainers=2, rounds=3)
    a, b = world.trainers[:2]
    world.commit(job_id, a)
    world.commit(job_id, b)
    spend(world, a, job_id, 1, 500)
    world.finalize(job_id)
    world.commit(job_id, a)
    assert reason_of(spend, world, a, job_id, 2, 499) == "data_registry: epsilon decreased"
    assert world.d.data_registry.privacy_spent(job_id, a.address) == (1, 500)


def test_spends_are_per_job(world):
    x = world.job(n_trainers=2)
    y = world.job(n_trainers=2)
    t = world.trainers[0]
    world.commit(x, t)
    world.commit(y, t)
    spend(world, t, x, 1, 700)
    spend(world, t, y, 1, 3)  # lower than in job x: each job's records are spent on their own
    assert world.d.data_registry.privacy_spent(x, t.address) == (1, 700)
    assert world.d.data_registry.privacy_spent(y, t.address) == (1, 3)
