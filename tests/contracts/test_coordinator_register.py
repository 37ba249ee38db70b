"""register: roles, stake, allowlist, Registered events, every register revert."""

from __future__ import annotations

import pytest
from coordinator_harness import events, names, only

from fedledger.chain.contracts import Phase
from fedledger.errors import TransactionReverted


def test_trainer_registers_with_stake(world):
    job_id = world.create(stake=1_000)
    t = world.trainers[0]
    before = world.token.balance_of(t.address)
    r = world.coord.register(t, job_id, as_trainer=True)
    assert names(world.d, r) == ["Transfer", "Registered"]
    assert events(world.d, r)[0][1] == {
        "sender": t.address,
        "receiver": world.coord.address,
        "value": 1_000,
    }
    assert only(world.d, r, "Registered") == {
        "job_id": job_id,
        "account": t.address,
        "trainer": True,
        "validator": False,
        "stake": 1_000,
    }
    assert world.token.balance_of(t.address) == before - 1_000
    assert world.coord.stake_of(job_id, t.address) == 1_000
    assert world.coord.job_state(job_id).trainers == 1
    ts = world.coord.trainer_state(job_id, t.address)
    assert (ts.registered, ts.excluded, ts.settled, ts.last_round, ts.examples, ts.accrued) == (
        True,
        False,
        False,
        0,
        0,
        0,
    )
    assert world.coord.is_validator(job_id, t.address) is False


def test_validator_registers_without_trainer_role(world):
    job_id = world.create()
    v = world.validators[0]
    r = world.coord.register(v, job_id, as_trainer=False)
    assert only(world.d, r, "Registered") == {
        "job_id": job_id,
        "account": v.address,
        "trainer": False,
        "validator": True,
        "stake": 1_000,
    }
    assert world.coord.is_validator(job_id, v.address) is True
    assert world.coord.trainer_state(job_id, v.address).registered is False
    assert world.coord.job_state(job_id).trainers == 0
    assert world.coord.stake_of(job_id, v.address) == 1_000


def test_committee_member_as_trainer_gets_both_roles_one_stake(world):
    job_id = world.create()
    v = world.validators[1]
    r = world.coord.register(v, job_id, as_trainer=True)
    assert only(world.d, r, "Registered") == {
        "job_id": job_id,
        "account": v.address,
        "trainer": True,
        "validator": True,
        "stake": 1_000,
    }
    assert world.coord.is_validator(job_id, v.address)
    assert world.coord.trainer_state(job_id, v.address).registered
    assert world.coord.stake_of(job_id, v.address) == 1_000
    assert world.coord.job_state(job_id).trainers == 1


def test_committee_member_is_not_validator_until_registered(world):
    job_id = world.create()
    assert world.coord.is_validator(job_id, world.validators[0].address) is False


def test_non_member_cannot_register_as_validator(world):
    job_id = world.create()
    with pytest.raises(TransactionReverted) as e:
        world.coord.register(world.trainers[0], job_id, as_trainer=False)
    assert e.value.reason == "coordinator: not a committee member"


@pytest.mark.parametrize(("first", "second"), [(True, True), (False, False), (False, True), (True, False)])
def test_already_registered(world, first, second):
    job_id = world.create()
    who = world.validators[0] if not (first and second) else world.trainers[0]
    world.coord.register(who, job_id, as_trainer=first)
    with pytest.raises(TransactionReverted) as e:
        world.coord.register(who, job_id, as_trainer=second)
    assert e.value.reason == "coordinator: already registered"
    assert world.coord.stake_of(job_id, who.address) == 1_000  # charged once


def test_zero_stake_moves_no_tokens(world):
    job_id = world.create(stake=0)
    r = world.coord.register(world.trainers[0], job_id, as_trainer=True)
    assert names(world.d, r) == ["Registered"]
    assert only(world.d, r, "Registered")["stake"] == 0


def test_stake_needs_allowance(world, accounts):
    job_id = world.create(stake=1_000)
    poor = world.trainers[5]
    world.token.approve(poor, world.coord.address, 999)
    with pytest.raises(TransactionReverted) as e:
        world.coord.register(poor, job_id, as_trainer=True)
    assert e.value.reason == "reward_token: insufficient allowance"
    assert world.coord.trainer_state(job_id, poor.address).registered is False
    assert world.coord.job_state(job_id).trainers == 0


def test_allowlist(world):
    allowed, other = world.trainers[0], world.trainers[1]
    job_id = world.create(allowlist=[allowed.address])
    world.coord.register(allowed, job_id, as_trainer=True)
    with pytest.raises(TransactionReverted) as e:
        world.coord.register(other, job_id, as_trainer=True)
    assert e.value.reason == "coordinator: not on allowlist"
    # the allowlist gates trainers only: committee members register as validators
    world.coord.register(world.validators[0], job_id, as_trainer=False)
    with pytest.raises(TransactionReverted) as e:
        world.coord.register(world.validators[1], job_id, as_trainer=True)
    assert e.value.reason == "coordinator: not on allowlist"


def test_allowlist_is_per_job(world):
    t = world.trainers[1]
    gated = world.create(allowlist=[world.trainers[0].address])
    open_job = world.create()
    world.coord.register(t, open_job, as_trainer=True)
    with pytest.raises(TransactionReverted):
        world.coord.register(t, gated, as_trainer=True)


def test_register_unknown_job(world):
    with pytest.raises(TransactionReverted) as e:
        world.coord.register(world.trainers[0], 7, as_trainer=True)
    assert e.value.reason == "coordinator: job not running"


def test_register_while_aggregating_counts_for_next_round(world):
    job_id = world.job(n_trainers=2)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING
    world.coord.register(world.trainers[2], job_id, as_trainer=True)
    assert world.coord.job_state(job_id).trainers == 3
    world.finalize(job_id)
    s = world.coord.job_state(job_id)
    assert (s.phase, s.round, s.trainers) == (Phase.OPEN, 2, 3)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    assert world.coord.job_state(job_id).phase == Phase.OPEN  # waits for the late joiner
    world.commit(job_id, world.trainers[2])
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING


@pytest.mark.parametrize("end", ["done", "aborted"])
def test_register_after_job_ended(world, end):
    if end == "done":
        job_id = world.job(n_trainers=2, rounds=1)
        world.commit(job_id, world.trainers[0])
        world.commit(job_id, world.trainers[1])
        world.finalize(job_id)
        assert world.coord.job_state(job_id).phase == Phase.DONE
    else:
        job_id = world.job(n_trainers=2, max_failures=0)
        world.expire(job_id)
        world.coord.advance(world.outsider, job_id)
        assert world.coord.job_state(job_id).phase == Phase.ABORTED
    with pytest.raises(TransactionReverted) as e:
        world.coord.register(world.trainers[3], job_id, as_trainer=True)
    assert e.value.reason == "coordinator: job not running"
