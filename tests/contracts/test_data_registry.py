"""data_registry: binding to the coordinator, one data commitment per trainer and job, every revert."""

from __future__ import annotations

import pytest
from coordinator_harness import ZERO32, h

from fedledger.chain.contracts import DataRegistry, Phase
from fedledger.errors import TransactionReverted

ROOT = h("data-root")
SCHEMA = h("schema")


def commit(world, trainer, job_id, *, root=ROOT, rows=120, schema_hash=SCHEMA):
    return world.d.data_registry.commit_data(trainer, job_id, root=root, rows=rows, schema_hash=schema_hash)


def reason_of(fn, *args, **kwargs) -> str:
    with pytest.raises(TransactionReverted) as e:
        fn(*args, **kwargs)
    return e.value.reason


# -- binding -----------------------------------------------------------------------------------


def test_deployment_binds_registry_to_coordinator(world):
    reg = world.d.data_registry
    assert reg.coordinator() == world.coord.address
    assert world.coord.data_registry().address == reg.address
    assert isinstance(world.coord.data_registry(), DataRegistry)
    bound = [e for e in reg.events() if e.name == "CoordinatorBound"]
    assert [e.args for e in bound] == [{"coordinator": world.coord.address}]


@pytest.mark.parametrize("who", ["sponsor", "outsider", "trainer"])
def test_second_bind_reverts(world, who):
    acct = {"sponsor": world.sponsor, "outsider": world.outsider, "trainer": world.trainers[0]}[who]
    reg = world.d.data_registry
    assert reason_of(reg.transact, acct, "bind") == "data_registry: already bound"
    assert reg.coordinator() == world.coord.address


def test_bare_registry_is_unbound_until_bind(chain, accounts):
    reg = DataRegistry.deploy(chain, accounts[0])
    assert isinstance(reg, DataRegistry)
    assert reg.coordinator() == "0x" + "00" * 20
    with pytest.raises(TransactionReverted) as e:
        reg.commit_data(accounts[4], 1, root=ROOT, rows=10, schema_hash=SCHEMA)
    assert e.value.reason == "data_registry: not bound"
    assert reg.data_commitment(1, accounts[4].address) is None
    # the first caller of bind becomes its coordinator, once
    r = reg.transact(accounts[5], "bind")
    assert [(e.name, e.args) for e in reg.events_in(r)] == [
        ("CoordinatorBound", {"coordinator": accounts[5].address})
    ]
    assert reg.coordinator() == accounts[5].address
    with pytest.raises(TransactionReverted) as e:
        reg.transact(accounts[5], "bind")
    assert e.value.reason == "data_registry: already bound"


# -- happy path --------------------------------------------------------------------------------


def test_commit_data_emits_and_reads_back(world):
    job_id = world.job(n_trainers=2)
    t = world.trainers[1]
    reg = world.d.data_registry
    assert reg.data_commitment(job_id, t.address) is None
    r = commit(world, t, job_id, root=ROOT, rows=321, schema_hash=SCHEMA)
    evs = reg.events_in(r)
    assert [(e.name, e.args) for e in evs] == [
        (
            "DataCommitted",
            {"job_id": job_id, "trainer": t.address, "root": ROOT, "rows": 321, "schema_hash": SCHEMA},
        )
    ]
    assert evs[0].address == reg.address
    assert reg.data_commitment(job_id, t.address) == (ROOT, 321, SCHEMA)
    # nobody else's slot moved
    assert reg.data_commitment(job_id, world.trainers[0].address) is None
    # a commitment changes nothing on the coordinator
    ts = world.coord.trainer_state(job_id, t.address)
    assert (ts.registered, ts.last_round, ts.examples) == (True, 0, 0)


def test_commit_data_while_aggregating(world):
    job_id = world.job(n_trainers=3, min_commits=2)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    world.commit(job_id, world.trainers[2])
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING
    late = world.trainers[3]
    world.coord.register(late, job_id, as_trainer=True)
    commit(world, late, job_id, rows=7)
    assert world.d.data_registry.data_commitment(job_id, late.address) == (ROOT, 7, SCHEMA)


def test_committee_member_registered_as_trainer_may_commit(world):
    job_id = world.job(n_trainers=1)
    v = world.validators[0]
    job2 = world.create()
    world.coord.register(v, job2, as_trainer=True)
    commit(world, v, job2, rows=5)
    assert world.d.data_registry.data_commitment(job2, v.address) == (ROOT, 5, SCHEMA)
    assert world.d.data_registry.data_commitment(job_id, v.address) is None


def test_commitments_are_per_job(world):
    a = world.job(n_trainers=2)
    b = world.job(n_trainers=2)
    t = world.trainers[0]
    reg = world.d.data_registry
    commit(world, t, a, root=h("root-a"), rows=10, schema_hash=h("schema-a"))
    commit(world, t, b, root=h("root-b"), rows=20, schema_hash=h("schema-b"))
    assert reg.data_commitment(a, t.address) == (h("root-a"), 10, h("schema-a"))
    assert reg.data_commitment(b, t.address) == (h("root-b"), 20, h("schema-b"))
    # once per job: each job's slot is taken independently
    assert reason_of(commit, world, t, a) == "data_registry: data already committed"
    assert reason_of(commit, world, t, b) == "data_registry: data already committed"


def test_commit_then_update(world):
    """A trainer that committed its data first then commits updates as usual."""
    job_id = world.job(n_trainers=2, rounds=1)
    for t in world.trainers[:2]:
        commit(world, t, job_id)
        world.commit(job_id, t)
    world.finalize(job_id)
    assert world.coord.job_state(job_id).phase == Phase.DONE
    for t in world.trainers[:2]:
        assert world.d.data_registry.data_commitment(job_id, t.address) == (ROOT, 120, SCHEMA)


# -- reverts -----------------------------------------------------------------------------------


def test_zero_root(world):
    job_id = world.job(n_trainers=1)
    assert (
        reason_of(commit, world, world.trainers[0], job_id, root=ZERO32) == "data_registry: data root is zero"
    )


def test_zero_schema_hash(world):
    job_id = world.job(n_trainers=1)
    assert (
        reason_of(commit, world, world.trainers[0], job_id, schema_hash=ZERO32)
        == "data_registry: schema hash is zero"
    )


def test_no_rows(world):
    job_id = world.job(n_trainers=1)
    assert reason_of(commit, world, world.trainers[0], job_id, rows=0) == "data_registry: no rows"
    assert world.d.data_registry.data_commitment(job_id, world.trainers[0].address) is None


def test_argument_checks_come_before_job_checks(world):
    """Zero arguments are refused even for a job that does not exist."""
    t = world.trainers[0]
    assert reason_of(commit, world, t, 99, root=ZERO32) == "data_registry: data root is zero"
    assert reason_of(commit, world, t, 99, schema_hash=ZERO32) == "data_registry: schema hash is zero"
    assert reason_of(commit, world, t, 99, rows=0) == "data_registry: no rows"


def test_unknown_job(world):
    assert reason_of(commit, world, world.trainers[0], 7) == "data_registry: job not running"


@pytest.mark.parametrize("end", ["done", "aborted"])
def test_job_ended(world, end):
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
    assert reason_of(commit, world, world.trainers[0], job_id) == "data_registry: job not running"


def test_job_ended_for_trainer_without_updates(world):
    """An aborted job refuses even a trainer that registered and never committed anything."""
    job_id = world.job(n_trainers=3, max_failures=0)
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)
    assert world.coord.job_state(job_id).phase == Phase.ABORTED
    assert world.coord.trainer_state(job_id, world.trainers[2].address).last_round == 0
    assert reason_of(commit, world, world.trainers[2], job_id) == "data_registry: job not running"


def test_stranger_is_not_a_trainer(world):
    job_id = world.job(n_trainers=2)
    assert reason_of(commit, world, world.outsider, job_id) == "data_registry: not a registered trainer"


def test_validator_only_member_is_not_a_trainer(world):
    job_id = world.job(n_trainers=2, n_validators=3)
    v = world.validators[0]
    assert world.coord.is_validator(job_id, v.address)
    assert reason_of(commit, world, v, job_id) == "data_registry: not a registered trainer"


def test_trainer_of_another_job_is_not_a_trainer_here(world):
    a = world.job(n_trainers=2)
    b = world.create()
    assert world.coord.trainer_state(a, world.trainers[0].address).registered
    assert reason_of(commit, world, world.trainers[0], b) == "data_registry: not a registered trainer"


def test_ejected_trainer_is_not_a_trainer(world):
    job_id = world.job(n_trainers=3, rounds=4, max_flags=1)
    bad = world.trainers[2]
    for t in world.trainers[:3]:
        world.commit(job_id, t)
    world.finalize(job_id, None, [bad.address], flagged=[bad.address])
    ts = world.coord.trainer_state(job_id, bad.address)
    assert (ts.registered, ts.ejected) == (False, True)
    assert world.coord.job_state(job_id).phase == Phase.OPEN
    assert reason_of(commit, world, bad, job_id) == "data_registry: not a registered trainer"


def test_data_already_committed(world):
    job_id = world.job(n_trainers=1)
    t = world.trainers[0]
    commit(world, t, job_id, root=h("first"), rows=10)
    assert (
        reason_of(commit, world, t, job_id, root=h("second"), rows=11)
        == "data_registry: data already committed"
    )
    assert world.d.data_registry.data_commitment(job_id, t.address) == (h("first"), 10, SCHEMA)


def test_updates_already_committed(world):
    job_id = world.job(n_trainers=3)
    t = world.trainers[0]
    world.commit(job_id, t)  # a round-1 update before any data commitment
    assert world.coord.trainer_state(job_id, t.address).last_round == 1
    assert reason_of(commit, world, t, job_id) == "data_registry: updates already committed"
    assert world.d.data_registry.data_commitment(job_id, t.address) is None
    # the others, who have no update yet, still may
    commit(world, world.trainers[1], job_id)


def test_updates_already_committed_in_a_later_round(world):
    """A trainer that joined in round 1 without committing data cannot catch up in round 2."""
    job_id = world.job(n_trainers=2, rounds=3)
    for t in world.trainers[:2]:
        world.commit(job_id, t)
    world.finalize(job_id)
    assert world.coord.job_state(job_id).round == 2
    assert reason_of(commit, world, world.trainers[1], job_id) == "data_registry: updates already committed"
