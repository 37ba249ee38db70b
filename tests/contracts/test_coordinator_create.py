"""create_job: validation (every revert), pool funding, JobCreated/RoundOpened, views."""

from __future__ import annotations

import dataclasses

import pytest
from coordinator_harness import MODEL0, SPEC, ZERO32, ZERO_ADDRESS, events, h, names, only

from fedledger.chain.contracts import Phase
from fedledger.errors import TransactionReverted


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"token": ZERO_ADDRESS}, "coordinator: token is zero"),
        ({"rounds": 0}, "coordinator: no rounds"),
        ({"min_commits": 0}, "coordinator: min commits is zero"),
        ({"quorum": 0}, "coordinator: quorum is zero"),
        ({"quorum": 4}, "coordinator: quorum above committee size"),
        ({"quorum": 1, "committee": []}, "coordinator: quorum above committee size"),
        ({"commit_window": 0}, "coordinator: window is zero"),
        ({"aggregate_window": 0}, "coordinator: window is zero"),
        ({"spec_hash": ZERO32}, "coordinator: spec hash is zero"),
        ({"initial_model": ZERO32}, "coordinator: initial model is zero"),
    ],
)
def test_invalid_params_revert(world, overrides, reason):
    params = world.params()
    params = dataclasses.replace(params, **overrides)
    before = world.token.balance_of(world.sponsor.address)
    with pytest.raises(TransactionReverted) as e:
        world.coord.create_job(world.sponsor, params)
    assert e.value.reason == reason
    assert world.coord.job_count() == 0
    assert world.token.balance_of(world.sponsor.address) == before


def test_zero_validator_reverts(world):
    committee = [world.validators[0].address, ZERO_ADDRESS]
    with pytest.raises(TransactionReverted) as e:
        world.create(committee=committee, quorum=1)
    assert e.value.reason == "coordinator: validator is zero"


def test_duplicate_validator_reverts(world):
    v = world.validators[0].address
    with pytest.raises(TransactionReverted) as e:
        world.create(committee=[v, world.validators[1].address, v])
    assert e.value.reason == "coordinator: duplicate validator"
    assert world.coord.job_count() == 0


def test_pool_needs_allowance(world, accounts):
    poor = accounts[28]
    world.token.approve(poor, world.coord.address, 19_999)
    with pytest.raises(TransactionReverted) as e:
        world.coord.create_job(poor, world.params(rounds=2, reward_per_round=10_000))
    assert e.value.reason == "reward_token: insufficient allowance"
    assert world.coord.job_count() == 0


def test_create_job_pulls_pool_and_emits(world):
    params = world.params(rounds=3, reward_per_round=10_000, quorum=2)
    sponsor_before = world.token.balance_of(world.sponsor.address)
    job_id, r = world.coord.create_job(world.sponsor, params)
    assert job_id == 1
    assert names(world.d, r) == ["Transfer", "JobCreated", "RoundOpened"]
    evs = events(world.d, r)
    assert evs[0][1] == {
        "sender": world.sponsor.address,
        "receiver": world.coord.address,
        "value": 30_000,
    }
    assert evs[1][1] == {
        "job_id": 1,
        "sponsor": world.sponsor.address,
        "token": world.token.address,
        "spec_hash": SPEC,
        "initial_model": MODEL0,
        "rounds": 3,
        "quorum": 2,
        "reward_pool": 30_000,
    }
    assert evs[2][1] == {
        "job_id": 1,
        "round": 1,
        "version": 0,
        "global_model": MODEL0,
        "deadline": r.timestamp + 100,
    }
    assert world.token.balance_of(world.sponsor.address) == sponsor_before - 30_000
    assert world.token.balance_of(world.coord.address) == 30_000
    assert world.coord.pool(job_id) == 30_000
    assert world.coord.job_count() == 1
    assert world.coord.global_model(job_id) == MODEL0
    s = world.coord.job_state(job_id)
    assert (s.phase, s.round, s.deadline, s.commits, s.trainers, s.examples, s.version) == (
        Phase.OPEN,
        1,
        r.timestamp + 100,
        0,
        0,
        0,
        0,
    )
    cfg = world.coord.job_config(job_id)
    assert cfg == {
        "sponsor": world.sponsor.address,
        "token": world.token.address,
        "spec_hash": SPEC,
        "initial_model": MODEL0,
        "rounds": 3,
        "min_commits": 2,
        "quorum": 2,
        "commit_window": 100,
        "aggregate_window": 50,
        "max_failures": 1,
        "stake": 1_000,
        "reward_per_round": 10_000,
        "slash_bps": 1_000,
        "max_flags": 2,
        "scored": False,
        "validator_fee_bps": 0,
        "score_tolerance": 0,
        "min_reputation": 0,
        "use_allowlist": False,
        "clients_per_round": 0,
        "validators_per_round": 0,
        "committee_size": 3,  # the three validators
    }


def test_zero_reward_job_moves_no_tokens(world):
    job_id, r = world.coord.create_job(world.sponsor, world.params(reward_per_round=0))
    assert names(world.d, r) == ["JobCreated", "RoundOpened"]
    assert only(world.d, r, "JobCreated")["reward_pool"] == 0
    assert world.coord.pool(job_id) == 0


def test_job_ids_increase_and_jobs_are_independent(world):
    a = world.create(spec_hash=h("a"))
    b = world.create(spec_hash=h("b"), committee=[world.validators[2].address], quorum=1)
    assert (a, b) == (1, 2)
    assert world.coord.job_config(b)["spec_hash"] == h("b")
    assert world.coord.job_config(a)["quorum"] == 2
    assert world.coord.job_count() == 2
    # unknown job: empty state
    assert world.coord.job_state(3).phase == Phase.NONE


def test_allowlist_flag(world):
    job_id = world.create(allowlist=[world.trainers[0].address])
    assert world.coord.job_config(job_id)["use_allowlist"] is True
