"""Flags in the quorum's proposal: slashing into the pool, exclusion, ejection."""

from __future__ import annotations

import pytest
from coordinator_harness import addr_key, h, names, only

from fedledger.chain.contracts import Phase, RoundStatus, flag_mask
from fedledger.errors import TransactionReverted


def _commit_all(world, job_id, n=3, examples=10):
    for t in world.trainers[:n]:
        world.commit(job_id, t, examples)


def test_flag_slashes_into_the_pool_and_excludes(world):
    job_id = world.job(n_trainers=3, stake=1_000, slash_bps=2_500, reward_per_round=10_000)
    _commit_all(world, job_id)
    bad = world.trainers[2].address
    pool_before = world.coord.pool(job_id)
    r = world.finalize(job_id, h("A"), [bad], flagged=[bad])
    assert names(world.d, r) == [
        "AggregateProposed",
        "UpdateExcluded",
        "TrainerSlashed",
        "RoundFinalized",
        "RoundOpened",
    ]
    assert only(world.d, r, "AggregateProposed")["flags"] == 1
    assert only(world.d, r, "TrainerSlashed") == {
        "job_id": job_id,
        "trainer": bad,
        "round": 1,
        "amount": 250,
        "flags": 1,
    }
    assert world.coord.stake_of(job_id, bad) == 750
    # the round reward left the pool, the slashed stake came in
    assert world.coord.pool(job_id) == pool_before - 10_000 + 250
    ts = world.coord.trainer_state(job_id, bad)
    assert (ts.excluded, ts.flags, ts.ejected, ts.registered) == (True, 1, False, True)
    assert world.coord.claimable(job_id, bad) == 0
    fin = only(world.d, r, "RoundFinalized")
    assert (fin["accepted_commits"], fin["accepted_weight"]) == (2, 20)


def test_excluded_but_unflagged_is_not_slashed(world):
    job_id = world.job(n_trainers=3, stake=1_000, slash_bps=2_500)
    _commit_all(world, job_id)
    left_out = world.trainers[0].address
    r = world.finalize(job_id, h("A"), [left_out])
    assert "TrainerSlashed" not in names(world.d, r)
    assert world.coord.stake_of(job_id, left_out) == 1_000
    assert world.coord.trainer_state(job_id, left_out).flags == 0


def test_different_flags_are_a_different_proposal(world):
    """Two validators that agree on the model but not on whom to flag do not make a quorum."""
    job_id = world.job(n_trainers=3, quorum=2, min_commits=1)
    _commit_all(world, job_id)
    a, b = sorted([world.trainers[0].address, world.trainers[1].address], key=addr_key)
    v0, v1, v2 = world.validators[:3]
    p0 = only(world.d, world.coord.propose(v0, job_id, 1, h("A"), [a, b], [a]), "AggregateProposed")
    p1 = only(world.d, world.coord.propose(v1, job_id, 1, h("A"), [a, b], [a, b]), "AggregateProposed")
    assert p0["proposal"] != p1["proposal"] and p1["votes"] == 1
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING
    r = world.coord.propose(v2, job_id, 1, h("A"), [a, b], [a])
    assert "RoundFinalized" in names(world.d, r)
    assert [e.args["trainer"] for e in world.coord.events_in(r) if e.name == "TrainerSlashed"] == [a]


def test_flag_count_survives_commits_and_ejects_at_max_flags(world):
    job_id = world.job(n_trainers=3, rounds=4, stake=1_000, slash_bps=1_000, max_flags=2, min_commits=2)
    bad = world.trainers[2]
    for rnd in (1, 2):
        _commit_all(world, job_id)
        r = world.finalize(job_id, None, [bad.address], flagged=[bad.address])
        assert only(world.d, r, "TrainerSlashed")["flags"] == rnd
    assert names(world.d, r) == [
        "AggregateProposed",
        "UpdateExcluded",
        "TrainerSlashed",
        "TrainerEjected",
        "RoundFinalized",
        "RoundOpened",
    ]
    assert only(world.d, r, "TrainerEjected") == {
        "job_id": job_id,
        "trainer": bad.address,
        "round": 2,
        "flags": 2,
    }
    ts = world.coord.trainer_state(job_id, bad.address)
    assert (ts.registered, ts.ejected, ts.flags) == (False, True, 2)
    assert world.coord.stake_of(job_id, bad.address) == 800
    # one trainer fewer: the other two committing closes the round early
    assert world.coord.job_state(job_id).trainers == 2
    with pytest.raises(TransactionReverted) as e:
        world.commit(job_id, bad)
    assert e.value.reason == "coordinator: trainer ejected"
    with pytest.raises(TransactionReverted) as e:
        world.coord.register(bad, job_id, as_trainer=True)
    assert e.value.reason == "coordinator: trainer ejected"
    _commit_all(world, job_id, n=2)
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING


def test_ejected_trainer_keeps_earned_rewards_and_what_is_left_of_its_stake(world):
    job_id = world.job(
        n_trainers=3,
        rounds=2,
        stake=1_000,
        slash_bps=5_000,
        max_flags=1,
        reward_per_round=9_000,
        min_commits=2,
    )
    bad = world.trainers[2]
    _commit_all(world, job_id)
    world.finalize(job_id)  # round 1: accepted, earns 3,000
    _commit_all(world, job_id)
    world.finalize(job_id, None, [bad.address], flagged=[bad.address])  # round 2: flagged, ejected
    assert world.coord.job_state(job_id).phase == Phase.DONE
    before = world.token.balance_of(bad.address)
    paid = only(world.d, world.coord.withdraw(bad, job_id), "Withdrawn")
    assert (paid["reward"], paid["stake"]) == (3_000, 500)
    assert world.token.balance_of(bad.address) == before + 3_500
    # the slashed half went to the pool, which the sponsor reclaims
    assert world.coord.pool(job_id) == 500


def test_slash_in_a_round_that_then_fails(world):
    """The quorum judged the updates even if too few remain to finalise: the penalty stands."""
    job_id = world.job(n_trainers=3, min_commits=2, max_failures=1, stake=1_000, slash_bps=1_000)
    _commit_all(world, job_id)
    bad = sorted([t.address for t in world.trainers[:2]], key=addr_key)
    r = world.finalize(job_id, h("A"), bad, flagged=bad)
    assert names(world.d, r).count("TrainerSlashed") == 2
    assert "RoundFailed" in names(world.d, r)
    assert world.coord.round_result(job_id, 1).status == RoundStatus.FAILED
    assert [world.coord.stake_of(job_id, a) for a in bad] == [900, 900]
    assert world.coord.pool(job_id) == 20_000 + 200


def test_slashing_caps_at_the_stake_left(world):
    job_id = world.job(n_trainers=3, rounds=3, stake=1_000, slash_bps=6_000, max_flags=0, min_commits=2)
    bad = world.trainers[0].address
    amounts = []
    for _ in range(3):
        _commit_all(world, job_id)
        r = world.finalize(job_id, None, [bad], flagged=[bad])
        amounts.append(only(world.d, r, "TrainerSlashed")["amount"])
        assert "TrainerEjected" not in names(world.d, r)  # max_flags 0: never ejected
    assert amounts == [600, 400, 0]
    assert world.coord.stake_of(job_id, bad) == 0


def test_slash_above_stake_is_refused(world):
    with pytest.raises(TransactionReverted) as e:
        world.create(slash_bps=10_001)
    assert e.value.reason == "coordinator: slash above stake"


def test_flag_mask_helper():
    ex = ["0x01", "0x02", "0x03"]
    assert flag_mask(ex, []) == 0
    assert flag_mask(ex, ["0x03", "0x01"]) == 0b101
    with pytest.raises(ValueError, match="not in the excluded list"):
        flag_mask(ex, ["0x04"])


# -- dissenting validators ---------------------------------------------------------------


def test_a_validator_whose_proposal_lost_is_slashed_once(world):
    job_id = world.job(n_trainers=3, quorum=2, stake=1_000, slash_bps=2_000, rounds=2)
    _commit_all(world, job_id)
    v0, v1, v2 = world.validators[:3]
    world.coord.propose(v0, job_id, 1, h("forged"), [])
    world.coord.propose(v1, job_id, 1, h("A"), [])
    with pytest.raises(TransactionReverted) as e:  # not finalised yet: nothing to dispute
        world.coord.report_dissent(world.outsider, job_id, 1, v0.address)
    assert e.value.reason == "coordinator: round not finalized"
    world.coord.propose(v2, job_id, 1, h("A"), [])
    pool = world.coord.pool(job_id)
    r = world.coord.report_dissent(world.outsider, job_id, 1, v0.address)
    ev = only(world.d, r, "ValidatorSlashed")
    assert (ev["validator"], ev["round"], ev["amount"]) == (v0.address, 1, 200)
    assert world.coord.stake_of(job_id, v0.address) == 800
    assert world.coord.pool(job_id) == pool + 200
    cases = [
        (v0.address, "coordinator: no proposal to dispute"),  # already reported
        (v1.address, "coordinator: proposal agreed with quorum"),
        (world.trainers[0].address, "coordinator: no proposal to dispute"),  # never proposed
    ]
    for who, reason in cases:
        with pytest.raises(TransactionReverted) as e:
            world.coord.report_dissent(world.outsider, job_id, 1, who)
        assert e.value.reason == reason


def test_dissent_in_a_failed_round_is_not_punished(world):
    """No quorum, no truth to dissent from."""
    job_id = world.job(n_trainers=3, quorum=2, max_failures=2)
    _commit_all(world, job_id)
    world.coord.propose(world.validators[0], job_id, 1, h("A"), [])
    world.coord.propose(world.validators[1], job_id, 1, h("B"), [])
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)
    with pytest.raises(TransactionReverted) as e:
        world.coord.report_dissent(world.outsider, job_id, 1, world.validators[0].address)
    assert e.value.reason == "coordinator: round not finalized"
