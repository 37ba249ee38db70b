"""The round state machine: commit, early close, advance, propose/quorum, fail/retry/abort."""

from __future__ import annotations

import pytest
from coordinator_harness import ZERO32, addr_key, events, h, names, only

from fedledger.chain.contracts import Phase, RoundStatus
from fedledger.errors import TransactionReverted

# -- commit ---------------------------------------------------------------------------------


def test_commit_records_and_emits(world):
    job_id = world.job(n_trainers=3)
    t = world.trainers[0]
    r = world.coord.commit(t, job_id, 1, h("u1"), 42)
    assert names(world.d, r) == ["UpdateCommitted"]
    assert only(world.d, r, "UpdateCommitted") == {
        "job_id": job_id,
        "trainer": t.address,
        "round": 1,
        "commitment": h("u1"),
        "num_examples": 42,
    }
    s = world.coord.job_state(job_id)
    assert (s.phase, s.commits, s.examples) == (Phase.OPEN, 1, 42)
    ts = world.coord.trainer_state(job_id, t.address)
    assert (ts.last_round, ts.examples, ts.settled, ts.excluded) == (1, 42, False, False)


def test_early_close_when_every_trainer_committed(world):
    job_id = world.job(n_trainers=3)
    world.commit(job_id, world.trainers[0], 5)
    world.commit(job_id, world.trainers[1], 6)
    assert world.coord.job_state(job_id).phase == Phase.OPEN
    r = world.commit(job_id, world.trainers[2], 7)
    assert names(world.d, r) == ["UpdateCommitted", "CommitsClosed"]
    assert only(world.d, r, "CommitsClosed") == {
        "job_id": job_id,
        "round": 1,
        "commits": 3,
        "examples": 18,
        "deadline": r.timestamp + 50,
    }
    s = world.coord.job_state(job_id)
    assert (s.phase, s.round, s.deadline, s.commits, s.examples) == (
        Phase.AGGREGATING,
        1,
        r.timestamp + 50,
        3,
        18,
    )


def test_commit_reverts(world):
    job_id = world.job(n_trainers=3)
    t = world.trainers[0]
    cases = [
        ((t, job_id, 2, h("x"), 1), "coordinator: wrong round"),
        ((t, job_id, 0, h("x"), 1), "coordinator: wrong round"),
        ((t, job_id, 1, ZERO32, 1), "coordinator: empty commitment"),
        ((t, job_id, 1, h("x"), 0), "coordinator: no examples"),
        ((world.trainers[4], job_id, 1, h("x"), 1), "coordinator: not a registered trainer"),
        ((world.validators[0], job_id, 1, h("x"), 1), "coordinator: not a registered trainer"),
        ((t, 99, 1, h("x"), 1), "coordinator: round not open"),
    ]
    for args, reason in cases:
        with pytest.raises(TransactionReverted) as e:
            world.coord.commit(*args)
        assert e.value.reason == reason, args
    world.coord.commit(t, job_id, 1, h("x"), 1)
    with pytest.raises(TransactionReverted) as e:
        world.coord.commit(t, job_id, 1, h("y"), 2)
    assert e.value.reason == "coordinator: already committed"
    s = world.coord.job_state(job_id)
    assert (s.commits, s.examples) == (1, 1)


def test_commit_window_boundary(world):
    job_id = world.job(n_trainers=3)
    deadline = world.coord.job_state(job_id).deadline
    # in-process blocks are 1 s apart: the next transaction lands at timestamp() + 1
    world.chain.increase_time(deadline - world.chain.timestamp() - 1)
    r = world.commit(job_id, world.trainers[0])
    assert r.timestamp == deadline  # inclusive
    with pytest.raises(TransactionReverted) as e:
        world.commit(job_id, world.trainers[1])
    assert e.value.reason == "coordinator: commit window closed"


def test_commit_while_aggregating(world):
    job_id = world.job(n_trainers=2)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    world.coord.register(world.trainers[2], job_id, as_trainer=True)
    with pytest.raises(TransactionReverted) as e:
        world.commit(job_id, world.trainers[2])
    assert e.value.reason == "coordinator: round not open"


# -- advance --------------------------------------------------------------------------------


def test_advance_before_deadline(world):
    job_id = world.job()
    with pytest.raises(TransactionReverted) as e:
        world.coord.advance(world.outsider, job_id)
    assert e.value.reason == "coordinator: phase not expired"
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    world.commit(job_id, world.trainers[2])
    with pytest.raises(TransactionReverted) as e:
        world.coord.advance(world.outsider, job_id)
    assert e.value.reason == "coordinator: phase not expired"


def test_advance_deadline_is_inclusive_for_the_phase(world):
    job_id = world.job()
    deadline = world.coord.job_state(job_id).deadline
    world.chain.increase_time(deadline - world.chain.timestamp() - 1)
    with pytest.raises(TransactionReverted) as e:  # lands exactly at the deadline
        world.coord.advance(world.outsider, job_id)
    assert e.value.reason == "coordinator: phase not expired"
    world.chain.increase_time(1)  # a reverted transaction mines no block: move the clock
    r = world.coord.advance(world.outsider, job_id)
    assert r.timestamp == deadline + 1
    assert names(world.d, r) == ["RoundFailed", "RoundOpened"]


def test_advance_unknown_job(world):
    with pytest.raises(TransactionReverted) as e:
        world.coord.advance(world.outsider, 5)
    assert e.value.reason == "coordinator: job not running"


def test_advance_closes_commits_with_enough_commits(world):
    job_id = world.job(n_trainers=3, min_commits=2)
    world.commit(job_id, world.trainers[0], 3)
    world.commit(job_id, world.trainers[1], 4)
    world.expire(job_id)
    r = world.coord.advance(world.outsider, job_id)  # anyone may advance
    assert names(world.d, r) == ["CommitsClosed"]
    assert only(world.d, r, "CommitsClosed") == {
        "job_id": job_id,
        "round": 1,
        "commits": 2,
        "examples": 7,
        "deadline": r.timestamp + 50,
    }
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING


def test_too_few_commits_fails_and_retries(world):
    job_id = world.job(n_trainers=3, min_commits=2, max_failures=1)
    world.commit(job_id, world.trainers[0])
    world.expire(job_id)
    r = world.coord.advance(world.outsider, job_id)
    assert names(world.d, r) == ["RoundFailed", "RoundOpened"]
    evs = events(world.d, r)
    assert evs[0][1] == {"job_id": job_id, "round": 1, "reason": "too few commits", "failures": 1}
    assert evs[1][1] == {
        "job_id": job_id,
        "round": 2,
        "version": 0,
        "global_model": world.coord.global_model(job_id),
        "deadline": r.timestamp + 100,
    }
    assert world.coord.round_result(job_id, 1).status == RoundStatus.FAILED
    s = world.coord.job_state(job_id)
    assert (s.phase, s.round, s.commits, s.examples, s.version) == (Phase.OPEN, 2, 0, 0, 0)
    # the trainer that committed to the failed round commits again in the retry
    world.commit(job_id, world.trainers[0])


def test_no_quorum_fails(world):
    job_id = world.job(n_trainers=2)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    world.coord.propose(world.validators[0], job_id, 1, h("A"), [])
    world.expire(job_id)
    r = world.coord.advance(world.outsider, job_id)
    assert names(world.d, r) == ["RoundFailed", "RoundOpened"]
    assert only(world.d, r, "RoundFailed") == {
        "job_id": job_id,
        "round": 1,
        "reason": "no quorum",
        "failures": 1,
    }
    r = world.coord.round_result(job_id, 1)
    assert (r.status, r.accepted_commits, r.accepted_weight, r.reward) == (RoundStatus.FAILED, 0, 0, 0)
    assert r.aggregate == ZERO32


def test_abort_after_max_failures_in_a_row(world):
    job_id = world.job(n_trainers=2, max_failures=2)
    for expected_failures in (1, 2):
        world.expire(job_id)
        r = world.coord.advance(world.outsider, job_id)
        assert names(world.d, r) == ["RoundFailed", "RoundOpened"]
        assert only(world.d, r, "RoundFailed")["failures"] == expected_failures
    world.expire(job_id)
    r = world.coord.advance(world.outsider, job_id)
    assert names(world.d, r) == ["RoundFailed", "JobAborted"]
    assert events(world.d, r)[1][1] == {"job_id": job_id, "round": 3, "failures": 3}
    s = world.coord.job_state(job_id)
    assert (s.phase, s.round) == (Phase.ABORTED, 3)
    with pytest.raises(TransactionReverted) as e:
        world.coord.advance(world.outsider, job_id)
    assert e.value.reason == "coordinator: job not running"
    with pytest.raises(TransactionReverted) as e:
        world.coord.commit(world.trainers[0], job_id, 3, h("late"), 1)
    assert e.value.reason == "coordinator: round not open"


def test_max_failures_zero_aborts_at_first_failure(world):
    job_id = world.job(max_failures=0)
    world.expire(job_id)
    r = world.coord.advance(world.outsider, job_id)
    assert names(world.d, r) == ["RoundFailed", "JobAborted"]


def test_finalisation_resets_the_failure_count(world):
    job_id = world.job(n_trainers=2, max_failures=1, rounds=3)
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)  # failure 1 (round 1)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    world.finalize(job_id)  # round 2 finalised
    world.expire(job_id)
    r = world.coord.advance(world.outsider, job_id)  # round 3 fails: a first failure again
    assert names(world.d, r) == ["RoundFailed", "RoundOpened"]
    assert only(world.d, r, "RoundFailed")["failures"] == 1


# -- propose / quorum -----------------------------------------------------------------------


def _to_aggregating(world, job_id, n=3, examples=(10, 20, 30)):
    for t, ex in zip(world.trainers[:n], examples, strict=False):
        world.commit(job_id, t, ex)
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING


def test_quorum_of_identical_proposals_finalises(world):
    job_id = world.job(n_trainers=3, rounds=2, quorum=2)
    _to_aggregating(world, job_id)
    v0, v1 = world.validators[:2]
    r1 = world.coord.propose(v0, job_id, 1, h("agg1"), [])
    assert names(world.d, r1) == ["AggregateProposed"]
    p = only(world.d, r1, "AggregateProposed")
    assert p["votes"] == 1 and p["excluded"] == [] and p["aggregate"] == h("agg1")
    assert p["validator"] == v0.address and p["round"] == 1 and p["job_id"] == job_id
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING
    r2 = world.coord.propose(v1, job_id, 1, h("agg1"), [])
    assert names(world.d, r2) == ["AggregateProposed", "RoundFinalized", "RoundOpened"]
    evs = events(world.d, r2)
    assert evs[0][1]["votes"] == 2 and evs[0][1]["proposal"] == p["proposal"]
    assert evs[1][1] == {
        "job_id": job_id,
        "round": 1,
        "version": 1,
        "aggregate": h("agg1"),
        "proposal": p["proposal"],
        "accepted_commits": 3,
        "accepted_weight": 60,
        "reward": 10_000,
    }
    assert evs[2][1] == {
        "job_id": job_id,
        "round": 2,
        "version": 1,
        "global_model": h("agg1"),
        "deadline": r2.timestamp + 100,
    }
    r = world.coord.round_result(job_id, 1)
    assert (r.status, r.accepted_commits, r.accepted_weight) == (RoundStatus.FINALIZED, 3, 60)
    assert r.aggregate == h("agg1")
    assert world.coord.global_model(job_id) == h("agg1")
    assert world.coord.pool(job_id) == 10_000
    s = world.coord.job_state(job_id)
    assert (s.phase, s.round, s.version, s.commits, s.examples) == (Phase.OPEN, 2, 1, 0, 0)
    # late third proposal for a closed round
    with pytest.raises(TransactionReverted) as e:
        world.coord.propose(world.validators[2], job_id, 1, h("agg1"), [])
    assert e.value.reason == "coordinator: round not aggregating"


def test_dissenting_proposal_does_not_count(world):
    job_id = world.job(n_trainers=3, quorum=2)
    _to_aggregating(world, job_id)
    v0, v1, v2 = world.validators
    world.coord.propose(v0, job_id, 1, h("good"), [])
    r = world.coord.propose(v1, job_id, 1, h("evil"), [])
    assert only(world.d, r, "AggregateProposed")["votes"] == 1
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING
    r = world.coord.propose(v2, job_id, 1, h("good"), [])
    assert "RoundFinalized" in names(world.d, r)
    assert world.coord.global_model(job_id) == h("good")


def test_same_aggregate_different_exclusions_are_different_proposals(world):
    job_id = world.job(n_trainers=3, quorum=2, min_commits=1)
    _to_aggregating(world, job_id)
    v0, v1, v2 = world.validators
    r0 = world.coord.propose(v0, job_id, 1, h("A"), [])
    r1 = world.coord.propose(v1, job_id, 1, h("A"), [world.trainers[0].address])
    p0, p1 = only(world.d, r0, "AggregateProposed"), only(world.d, r1, "AggregateProposed")
    assert p0["proposal"] != p1["proposal"] and p1["votes"] == 1
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING
    r2 = world.coord.propose(v2, job_id, 1, h("A"), [world.trainers[0].address])
    assert only(world.d, r2, "RoundFinalized")["accepted_commits"] == 2


def test_quorum_one_finalises_on_first_proposal(world):
    job_id = world.job(n_trainers=2, quorum=1, rounds=1)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    r = world.coord.propose(world.validators[2], job_id, 1, h("solo"), [])
    assert names(world.d, r) == ["AggregateProposed", "RoundFinalized", "JobCompleted"]
    assert events(world.d, r)[2][1] == {"job_id": job_id, "version": 1, "final_model": h("solo")}
    s = world.coord.job_state(job_id)
    assert (s.phase, s.version) == (Phase.DONE, 1)


def test_job_completes_after_rounds_finalised_despite_failures(world):
    job_id = world.job(n_trainers=2, rounds=2, max_failures=3)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    world.finalize(job_id, h("m1"))
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)  # round 2 fails, round 3 opens
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    r = world.finalize(job_id, h("m2"))
    assert names(world.d, r)[-2:] == ["RoundFinalized", "JobCompleted"]
    assert only(world.d, r, "RoundFinalized")["round"] == 3
    assert only(world.d, r, "JobCompleted") == {
        "job_id": job_id,
        "version": 2,
        "final_model": h("m2"),
    }
    s = world.coord.job_state(job_id)
    assert (s.phase, s.round, s.version) == (Phase.DONE, 3, 2)
    assert world.coord.round_result(job_id, 2).status == RoundStatus.FAILED
    assert world.coord.pool(job_id) == 0


def test_propose_reverts(world):
    job_id = world.job(n_trainers=3, n_validators=2)
    v0 = world.validators[0]
    with pytest.raises(TransactionReverted) as e:
        world.coord.propose(v0, job_id, 1, h("A"), [])
    assert e.value.reason == "coordinator: round not aggregating"
    _to_aggregating(world, job_id)
    t0, t1 = world.trainers[0].address, world.trainers[1].address
    lo, hi = sorted([t0, t1], key=addr_key)
    cases = [
        ((v0, job_id, 2, h("A"), [], 0), "coordinator: wrong round"),
        ((v0, job_id, 1, ZERO32, [], 0), "coordinator: empty aggregate"),
        # committee member that never registered
        ((world.validators[2], job_id, 1, h("A"), [], 0), "coordinator: not a registered validator"),
        # a registered trainer outside the committee
        ((world.trainers[0], job_id, 1, h("A"), [], 0), "coordinator: not a registered validator"),
        ((v0, job_id, 1, h("A"), [hi, lo], 0), "coordinator: excluded not sorted"),
        ((v0, job_id, 1, h("A"), [lo, lo], 0), "coordinator: excluded not sorted"),
        (
            (v0, job_id, 1, h("A"), [world.trainers[4].address], 0),
            "coordinator: excluded not a committer",
        ),
        (
            (v0, job_id, 1, h("A"), [world.validators[1].address], 0),
            "coordinator: excluded not a committer",
        ),
        # flags are a bitmask over `excluded`: no bit may point past its end
        ((v0, job_id, 1, h("A"), [], 1), "coordinator: flag outside excluded"),
        ((v0, job_id, 1, h("A"), [lo], 2), "coordinator: flag outside excluded"),
        ((v0, job_id, 1, h("A"), [lo, hi], 1 << 255), "coordinator: flag outside excluded"),
    ]
    for args, reason in cases:
        with pytest.raises(TransactionReverted) as e:
            world.coord.transact(args[0], "propose", *args[1:], [], 0, 0)
        assert e.value.reason == reason, args
    world.coord.propose(v0, job_id, 1, h("A"), [])
    with pytest.raises(TransactionReverted) as e:
        world.coord.propose(v0, job_id, 1, h("A"), [])
    assert e.value.reason == "coordinator: already proposed"
    with pytest.raises(TransactionReverted) as e:  # changing its mind does not help either
        world.coord.propose(v0, job_id, 1, h("B"), [])
    assert e.value.reason == "coordinator: already proposed"


def test_aggregation_window_closed(world):
    job_id = world.job(n_trainers=3)
    _to_aggregating(world, job_id)
    world.expire(job_id)
    with pytest.raises(TransactionReverted) as e:
        world.coord.propose(world.validators[0], job_id, 1, h("A"), [])
    assert e.value.reason == "coordinator: aggregation window closed"


def test_validator_proposes_again_next_round(world):
    job_id = world.job(n_trainers=2, rounds=3)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    world.finalize(job_id)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    world.finalize(job_id)  # same validators, round 2
    assert world.coord.job_state(job_id).version == 2


def test_unexpired_proposals_of_a_failed_round_do_not_carry_over(world):
    job_id = world.job(n_trainers=2, max_failures=2)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    world.coord.propose(world.validators[0], job_id, 1, h("A"), [])
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)
    world.commit(job_id, world.trainers[0])
    world.commit(job_id, world.trainers[1])
    r = world.coord.propose(world.validators[1], job_id, 2, h("A"), [])
    assert only(world.d, r, "AggregateProposed")["votes"] == 1


def test_exclusion_emits_and_marks(world):
    job_id = world.job(n_trainers=3, min_commits=2)
    _to_aggregating(world, job_id, examples=(10, 20, 30))
    bad = world.trainers[2].address
    r = world.finalize(job_id, h("A"), [bad])
    assert names(world.d, r) == [
        "AggregateProposed",
        "UpdateExcluded",
        "RoundFinalized",
        "RoundOpened",
    ]
    assert events(world.d, r)[0][1]["excluded"] == [bad]
    assert only(world.d, r, "UpdateExcluded") == {"job_id": job_id, "trainer": bad, "round": 1}
    fin = only(world.d, r, "RoundFinalized")
    assert (fin["accepted_commits"], fin["accepted_weight"]) == (2, 30)
    assert world.coord.trainer_state(job_id, bad).excluded is True


def test_too_few_accepted_updates_fails_the_round(world):
    job_id = world.job(n_trainers=3, min_commits=2, max_failures=1)
    _to_aggregating(world, job_id)
    excluded = [world.trainers[0].address, world.trainers[1].address]
    r = world.finalize(job_id, h("A"), excluded)
    assert names(world.d, r) == [
        "AggregateProposed",
        "UpdateExcluded",
        "UpdateExcluded",
        "RoundFailed",
        "RoundOpened",
    ]
    assert only(world.d, r, "RoundFailed") == {
        "job_id": job_id,
        "round": 1,
        "reason": "too few accepted updates",
        "failures": 1,
    }
    r = world.coord.round_result(job_id, 1)
    assert (r.status, r.accepted_commits, r.accepted_weight, r.reward) == (RoundStatus.FAILED, 0, 0, 0)
    assert r.aggregate == ZERO32
    assert world.coord.global_model(job_id) == world.coord.job_config(job_id)["initial_model"]
    assert world.coord.pool(job_id) == 20_000
    s = world.coord.job_state(job_id)
    assert (s.phase, s.round, s.version) == (Phase.OPEN, 2, 0)


def test_early_close_requires_min_commits(world):
    job_id = world.job(n_trainers=1, min_commits=2)
    world.commit(job_id, world.trainers[0])
    # with 1 of the 2 required commits the window must stay open for more trainers
    assert world.coord.job_state(job_id).phase == Phase.OPEN


def test_examples_are_limited_to_the_trainer_words_48_bits(world):
    """A trainer's examples are 48 bits of its word (so 4096 commits cannot overflow the job's 64)."""
    job_id = world.job(n_trainers=3)
    with pytest.raises(TransactionReverted) as e:
        world.commit(job_id, world.trainers[0], examples=2**48)
    assert e.value.reason == "coordinator: too many examples"
    world.commit(job_id, world.trainers[0], examples=2**48 - 1)
    world.commit(job_id, world.trainers[1], examples=2**48 - 1)
    assert world.coord.job_state(job_id).examples == 2 * (2**48 - 1)
    assert world.coord.trainer_state(job_id, world.trainers[1].address).examples == 2**48 - 1


def test_accrued_reward_cannot_overflow_the_trainer_word(world):
    """Accrued rewards are 96 bits of the trainer word; a reward that would pass them reverts."""
    reward = 2**95 + 1
    world.token.mint(world.sponsor, world.sponsor.address, reward * 3)
    job_id = world.job(n_trainers=1, rounds=3, min_commits=1, quorum=1, reward_per_round=reward)
    t = world.trainers[0]
    world.commit(job_id, t)
    world.finalize(job_id)
    world.commit(job_id, t)  # settles round 1: accrued = 2**95 + 1
    world.finalize(job_id)
    with pytest.raises(TransactionReverted) as e:
        world.commit(job_id, t)  # settling round 2 would need 2**96 + 2
    assert e.value.reason == "coordinator: reward overflow"
    # withdrawing pays in 256 bits, so the trainer still gets both rounds in full
    paid = only(world.d, world.coord.withdraw(t, job_id), "Withdrawn")
    assert paid["reward"] == 2 * reward
    world.commit(job_id, t)  # and, its word emptied, it can carry on
