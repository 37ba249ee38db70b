"""Every revert of optimistic.vy's entry points, and of disputes.vy's binding, triggered for real.

Each test drives the contract into the state the check guards and asserts the exact reason
(`reverts` compares whole strings). What needs a token that returns false is in
test_optimistic_token_failures.py; the proposer cap, the attempt cap and the live-claim check
are in test_optimistic_limits.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from coordinator_harness import World
from optimistic_harness import BOND, WINDOW, OptimisticJob, reverts

from fedledger.chain.contracts import Phase


@pytest.fixture
def job(world: World) -> OptimisticJob:
    j = OptimisticJob(world)
    j.bond(*world.validators)
    j.commit_all()
    return j


def end(j: OptimisticJob) -> None:
    """Runs the job out: every round left fails for want of commits until it aborts."""
    w = j.world
    while w.coord.job_state(j.job_id).phase in (Phase.OPEN, Phase.AGGREGATING):
        w.expire(j.job_id)
        w.coord.advance(w.sponsor, j.job_id)


def escalate(j: OptimisticJob) -> None:
    w = j.world
    j.fund(w.outsider)
    w.token.approve(w.outsider, j.o.address, BOND)
    j.o.escalate(w.outsider, j.job_id, 1)


# -- delegate ---------------------------------------------------------------------------------


def test_only_the_sponsor_delegates_and_only_once(world: World) -> None:
    j = OptimisticJob(world, delegated=False)
    with reverts("optimistic: caller is not the sponsor"):
        j.o.delegate(world.outsider, j.job_id, j.terms())
    j.o.delegate(world.sponsor, j.job_id, j.terms())
    with reverts("optimistic: job already delegated"):
        j.o.delegate(world.sponsor, j.job_id, j.terms())


def test_a_job_with_a_quorum_of_two_cannot_be_delegated(world: World) -> None:
    assert world.d.optimistic is not None
    committee = [world.d.optimistic.address, world.validators[0].address]
    j = OptimisticJob(world, delegated=False, params=dict(committee=committee, quorum=2))
    with reverts("optimistic: job not delegated to one proposer"):
        j.o.delegate(world.sponsor, j.job_id, j.terms())


def test_a_job_whose_first_round_aggregates_cannot_be_delegated(world: World) -> None:
    j = OptimisticJob(world, delegated=False)
    j.commit_all()
    assert world.coord.job_state(j.job_id).phase == Phase.AGGREGATING
    with reverts("optimistic: job already aggregating"):
        j.o.delegate(world.sponsor, j.job_id, j.terms())


@pytest.mark.parametrize(
    "overrides, reason",
    [
        (dict(rule=0), "optimistic: rule not chunk-local"),
        (dict(rule=5), "optimistic: rule not chunk-local"),
        (dict(challenge_window=0), "optimistic: no window or no bond"),
        (dict(bond=0), "optimistic: no window or no bond"),
        (dict(bounty_bps=10_001), "optimistic: bounty above bond"),
        (dict(escalation_quorum=0), "optimistic: escalation quorum is zero"),
        (dict(aggregate_window=99), "optimistic: aggregate window differs"),
        (dict(proposal_window=71), "optimistic: windows exceed aggregation"),
        (dict(challenge_window=2**32), "optimistic: window too long"),
        (dict(num_params=0), "optimistic: no parameters"),
        (dict(trim_den=0), "optimistic: trim fraction not in [0, 1/2)"),
        (dict(trim_num=1, trim_den=2), "optimistic: trim fraction not in [0, 1/2)"),
        (dict(rule=2, clip_q=0), "optimistic: clip bound not fixed"),
        (dict(rule=2, clip_q=2**63), "optimistic: clip bound not fixed"),
    ],
)
def test_terms_out_of_bounds_are_refused(world: World, overrides: dict[str, int], reason: str) -> None:
    j = OptimisticJob(world, delegated=False)
    with reverts(reason):
        j.o.delegate(world.sponsor, j.job_id, j.terms(**overrides))
    # the bounds are inclusive where the docstring says so: the edge itself is accepted
    edge = j.terms(proposal_window=70, bounty_bps=10_000)
    j.o.delegate(world.sponsor, j.job_id, edge)
    assert j.o.terms(j.job_id) == edge


# -- bond -------------------------------------------------------------------------------------


def test_bonding_needs_a_delegated_running_job_and_happens_once(world: World) -> None:
    undelegated = OptimisticJob(world, delegated=False)
    v = world.validators[0]
    with reverts("optimistic: job not delegated"):
        undelegated.bond(v)
    j = OptimisticJob(world, seed=2)
    j.bond(v)
    with reverts("optimistic: already bonded"):
        j.o.bond(v, j.job_id)
    assert j.o.bond_of(j.job_id, v.address) == BOND
    end(j)
    with reverts("optimistic: job ended"):
        j.bond(world.validators[1])


# -- propose ----------------------------------------------------------------------------------


def test_a_round_that_is_not_aggregating_takes_no_claim(world: World) -> None:
    j = OptimisticJob(world)
    j.bond(*world.validators)
    with reverts("optimistic: round not aggregating"):  # still committing
        j.o.propose(j.drawn(), j.job_id, 1, j.round.claim)
    j.commit_all()
    with reverts("optimistic: round not aggregating"):  # not the coordinator's round
        j.o.propose(j.drawn(), j.job_id, 2, j.round.claim)


def test_a_claim_of_no_updates_or_a_bad_offset_is_refused(job: OptimisticJob) -> None:
    r, w = job.round, job.world
    everyone = sorted((t.address for t in w.trainers[: job.n]), key=lambda a: int(a, 16))
    with reverts("optimistic: bad update count"):
        job.o.propose(job.drawn(), job.job_id, 1, replace(r.claim, num_updates=0), excluded=everyone)
    for bad in (dict(previous_offset=17), dict(aggregate_offset=8), dict(aggregate_offset=2**64)):
        with reverts("optimistic: bad data offset"):
            job.o.propose(job.drawn(), job.job_id, 1, replace(r.claim, **bad))


def test_a_flag_outside_the_excluded_list_is_refused(job: OptimisticJob) -> None:
    r, victim = job.round, job.world.trainers[0].address
    claim = replace(r.claim, num_updates=r.claim.num_updates - 1)
    with reverts("optimistic: flag outside excluded"):
        job.o.propose(job.drawn(), job.job_id, 1, claim, excluded=[victim], flags=0b10)
    job.o.propose(job.drawn(), job.job_id, 1, claim, excluded=[victim], flags=0b01)


# -- settle -----------------------------------------------------------------------------------


def test_settle_takes_the_result_exactly_as_posted(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    o.propose(job.drawn(), job.job_id, 1, r.claim)
    w.chain.increase_time(WINDOW + 1)
    with reverts("optimistic: result does not match"):
        o.settle(w.outsider, job.job_id, 1, r.flipped(0, 1).claim.aggregate_root)
    with reverts("optimistic: result does not match"):
        o.settle(w.outsider, job.job_id, 1, r.claim.aggregate_root, flags=1)
    o.settle(w.outsider, job.job_id, 1, r.claim.aggregate_root)
    assert w.coord.global_model(job.job_id) == r.claim.aggregate_root


# -- vote, expire -----------------------------------------------------------------------------


def test_a_vote_needs_an_escalated_round(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    drawn = job.drawn()
    voter = next(v for v in w.validators if v.address != drawn.address)
    with reverts("optimistic: round not escalated"):  # nothing posted
        o.vote(voter, job.job_id, 1, r.claim.aggregate_root)
    o.propose(drawn, job.job_id, 1, r.claim)
    with reverts("optimistic: round not escalated"):  # posted, not escalated
        o.vote(voter, job.job_id, 1, r.claim.aggregate_root)
    escalate(job)
    o.vote(voter, job.job_id, 1, r.claim.aggregate_root)


def test_expire_waits_for_the_round_to_leave_aggregation(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    with reverts("optimistic: round still aggregating"):  # checked before the proposal
        o.expire(w.outsider, job.job_id, 1)
    o.propose(job.drawn(), job.job_id, 1, r.claim)
    escalate(job)
    with reverts("optimistic: round still aggregating"):
        o.expire(w.outsider, job.job_id, 1)
    w.expire(job.job_id)
    w.coord.advance(w.outsider, job.job_id)  # no quorum: round 1 fails, round 2 opens
    o.expire(w.outsider, job.job_id, 1)
    assert o.owed(w.token.address, w.outsider.address) == BOND  # no vote went against it
    with reverts("optimistic: no proposal"):
        o.expire(w.outsider, job.job_id, 1)


# -- release, collect, strike -----------------------------------------------------------------


def test_release_needs_a_delegated_job_that_ended(world: World) -> None:
    undelegated = OptimisticJob(world, delegated=False)
    with reverts("optimistic: job not delegated"):
        undelegated.o.release(world.outsider, undelegated.job_id)
    j = OptimisticJob(world, seed=2)
    with reverts("optimistic: job still running"):
        j.o.release(world.outsider, j.job_id)


def test_collect_pays_only_what_is_owed(job: OptimisticJob) -> None:
    w = job.world
    with reverts("optimistic: nothing owed"):
        job.o.collect(w.outsider, w.token.address)


def test_only_disputes_may_strike(job: OptimisticJob) -> None:
    w, o = job.world, job.o
    proposer = job.drawn()
    o.propose(proposer, job.job_id, 1, job.round.flipped(3, 1).claim)
    for caller in (w.outsider, proposer, w.sponsor):
        with reverts("optimistic: caller is not disputes"):
            o.transact(caller, "strike", job.cid(), caller.address)
    assert o.bond_of(job.job_id, proposer.address) == BOND


# -- disputes.vy bound to optimistic.vy -------------------------------------------------------


def test_a_bound_disputes_takes_its_claims_from_its_verifier(job: OptimisticJob) -> None:
    w, d, claim = job.world, job.disputes, job.round.claim.as_tuple()
    assert d.verifier().lower() == job.o.address.lower()
    with reverts("disputes: already bound"):
        d.transact(w.outsider, "bind")
    with reverts("disputes: claims come from the verifier"):
        d.transact(w.outsider, "propose", claim)
    assert job.o.claim_hash(job.cid()) == b"\0" * 32  # nothing posted: no live claim
    job.o.propose(job.drawn(), job.job_id, 1, job.round.claim)
    assert job.o.claim_hash(job.cid()) == job.round.claim.digest()
    assert d.claim_hash(job.cid()) == b"\0" * 32  # disputes.vy stores nothing of a bound claim
