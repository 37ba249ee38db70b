"""optimistic.vy under attack: each test is one attacker's move and asserts it fails or is harmless.

Tests marked xfail(strict, raises=AssertionError) are holes found and not fixed here: they
assert the safe outcome, fail today, and turn into a failure (XPASS, or another exception)
the day a fix lands, so the marker has to go with it.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from coordinator_harness import World, h, only
from optimistic_harness import BOND, BOUNTY_BPS, WINDOW, OptimisticJob, reverts
from optimistic_model import Honest, Model

from fedledger.chain.contracts import Phase
from fedledger.codec.blob import decode_tensors

ZERO_ADDRESS = "0x" + "00" * 20

BOUNTY = BOND * BOUNTY_BPS // 10_000


@pytest.fixture
def job(world: World) -> OptimisticJob:
    j = OptimisticJob(world)
    j.bond(*world.validators)
    j.commit_all()
    return j


def others(job: OptimisticJob, *not_these: object) -> list:
    skip = {a.address for a in not_these}  # type: ignore[attr-defined]
    return [v for v in job.world.validators if v.address not in skip]


def escalate(j: OptimisticJob, who: object) -> None:
    j.fund(who)
    j.world.token.approve(who, j.o.address, BOND)
    j.o.escalate(who, j.job_id, 1)


def test_a_proof_reaches_only_the_live_attempts_claim(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    liar = job.drawn()
    lie = r.flipped(5, 1)
    o.propose(liar, job.job_id, 1, lie.claim)
    job.challenge(w.outsider, lie, 5)
    # a second proposer reposts the very same lie at attempt 1
    w.chain.increase_time(21)
    second = others(job, liar)[0]
    o.propose(second, job.job_id, 1, lie.claim)
    with reverts("disputes: no such claim"):  # the old id is no longer live: it strikes no one again
        job.challenge(w.outsider, lie, 5, attempt=0)
    with reverts("disputes: no such claim"):  # nor can an id of an attempt not yet posted
        job.challenge(w.outsider, lie, 5, attempt=2)
    with reverts("disputes: claim does not match"):  # nor a claim other than the one posted
        job.challenge(w.outsider, r.flipped(6, 1), 6, attempt=1)
    job.challenge(w.outsider, lie, 5, attempt=1)
    assert o.bond_of(job.job_id, second.address) == 0
    assert o.owed(w.token.address, w.outsider.address) == 2 * BOUNTY


def test_nothing_strikes_a_settled_claim(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    proposer = job.drawn()
    o.propose(proposer, job.job_id, 1, r.claim)
    w.chain.increase_time(WINDOW + 1)
    o.settle(w.outsider, job.job_id, 1, r.claim.aggregate_root)
    with reverts("disputes: no such claim"):  # settled: no longer live
        job.challenge(w.outsider, r, 3)
    with reverts("optimistic: no proposal"):
        o.settle(w.outsider, job.job_id, 1, r.claim.aggregate_root)
    assert o.bond_of(job.job_id, proposer.address) == BOND


def test_settle_finalises_exactly_the_posted_result(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    victim = w.trainers[1].address
    posted = replace(r.claim, num_updates=r.claim.num_updates - 1)
    o.propose(job.drawn(), job.job_id, 1, posted, excluded=[victim], flags=1)
    w.chain.increase_time(WINDOW + 1)
    for aggregate, excluded, flags in [
        (b"\x01" * 32, [victim], 1),
        (posted.aggregate_root, [], 0),
        (posted.aggregate_root, [victim], 0),
    ]:
        with reverts("optimistic: result does not match"):
            o.settle(w.outsider, job.job_id, 1, aggregate, excluded=excluded, flags=flags)
    receipt = o.settle(w.outsider, job.job_id, 1, posted.aggregate_root, excluded=[victim], flags=1)
    got = only(w.d, receipt, "AggregateProposed")  # (excluding one of 3 fails the round: min_commits)
    assert (got["aggregate"], got["excluded"], got["flags"]) == (posted.aggregate_root, [victim], 1)


def test_escalation_is_once_and_within_the_window(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    o.propose(job.drawn(), job.job_id, 1, r.claim)
    escalate(job, w.outsider)
    with reverts("optimistic: round escalated"):
        escalate(job, w.trainers[5])
    # a fresh round: a claim left alone past its window can no longer be escalated
    j2 = OptimisticJob(w, seed=2)
    j2.bond(*w.validators)
    j2.commit_all()
    j2.o.propose(j2.drawn(), j2.job_id, 1, j2.round.claim)
    w.chain.increase_time(WINDOW + 1)
    with reverts("optimistic: challenge window closed"):
        escalate(j2, w.outsider)
    j2.o.settle(w.outsider, j2.job_id, 1, j2.round.claim.aggregate_root)


def test_a_rebond_gives_no_second_vote(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    proposer = job.drawn()
    o.propose(proposer, job.job_id, 1, r.claim)
    escalate(job, w.outsider)
    voter = others(job, proposer)[0]
    o.vote(voter, job.job_id, 1, h("another result"))
    with reverts("optimistic: already bonded"):
        o.bond(voter, job.job_id)
    with reverts("optimistic: already voted"):
        o.vote(voter, job.job_id, 1, h("another result"))
    assert w.coord.job_state(job.job_id).phase == Phase.AGGREGATING  # one vote of the two


def test_a_slashed_proposer_keeps_no_turn_and_pays_again_for_a_second_lie(world: World) -> None:
    j = OptimisticJob(world)
    liar, honest = world.validators[0], world.validators[1]
    j.bond(liar)  # alone on the list: drawn at attempt 0
    j.commit_all()
    lie = j.round.flipped(2, 7)
    j.o.propose(liar, j.job_id, 1, lie.claim)
    j.challenge(world.outsider, lie, 2)
    j.bond(honest)
    if j.o.drawn(j.job_id, 1, 1) == liar.address:
        # drawn again but unbonded: no exclusive turn, anyone bonded may post at once
        j.o.propose(honest, j.job_id, 1, j.round.claim)
        return
    j.o.bond(liar, j.job_id)  # the liar pays a new bond to come back ...
    world.chain.increase_time(21)  # ... and, not drawn, waits out the drawn proposer's turn
    j.o.propose(liar, j.job_id, 1, lie.claim)
    j.challenge(world.outsider, lie, 2, attempt=1)
    assert j.o.bond_of(j.job_id, liar.address) == 0
    assert j.o.owed(world.token.address, world.sponsor.address) == 2 * (BOND - BOUNTY)


def test_collect_pays_each_credit_once(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    liar = job.drawn()
    lie = r.flipped(0, -1)
    o.propose(liar, job.job_id, 1, lie.claim)
    job.challenge(w.outsider, lie, 0)
    before = w.token.balance_of(o.address)
    o.collect(w.outsider, w.token.address)
    with reverts("optimistic: nothing owed"):
        o.collect(w.outsider, w.token.address)
    with reverts("optimistic: nothing owed"):  # nothing is owed in another token
        o.collect(w.outsider, o.address)
    with reverts("optimistic: nothing owed"):  # the liar's bond went, nothing owed to it
        o.collect(liar, w.token.address)
    assert w.token.balance_of(o.address) == before - BOUNTY
    o.collect(w.sponsor, w.token.address)
    assert w.token.balance_of(o.address) == sum(o.bond_of(job.job_id, v.address) for v in w.validators)


def test_release_returns_the_coordinator_stake_once(job: OptimisticJob) -> None:
    w, o = job.world, job.o
    o.propose(job.drawn(), job.job_id, 1, job.round.claim)
    w.chain.increase_time(WINDOW + 1)
    o.settle(w.outsider, job.job_id, 1, job.round.claim.aggregate_root)
    while w.coord.job_state(job.job_id).phase == Phase.OPEN:
        w.expire(job.job_id)
        w.coord.advance(w.sponsor, job.job_id)
    stake = int(w.coord.job_config(job.job_id)["stake"])
    o.release(w.outsider, job.job_id)
    assert o.owed(w.token.address, w.sponsor.address) == stake
    with reverts("coordinator: nothing to withdraw"):
        o.release(w.outsider, job.job_id)
    assert o.owed(w.token.address, w.sponsor.address) == stake


def test_a_strike_during_an_escalation_returns_the_escalators_bond(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    liar = job.drawn()
    lie = r.flipped(8, 3)
    o.propose(liar, job.job_id, 1, lie.claim)
    escalate(job, w.trainers[5])
    job.challenge(w.outsider, lie, 8)
    assert o.owed(w.token.address, w.trainers[5].address) == BOND
    record = o.round_record(job.job_id, 1)
    assert (record.attempt, record.escalated, record.posted) == (1, False, False)
    with reverts("optimistic: round not escalated"):  # the old vote is over
        o.vote(others(job, liar)[0], job.job_id, 1, r.claim.aggregate_root)


def test_a_liar_that_proves_itself_wrong_still_loses_the_sponsors_share(job: OptimisticJob) -> None:
    """Self-striking recovers the bounty: a lie costs bond * (1 - bounty_bps), zero when a
    sponsor sets bounty_bps = 10_000 (delegate allows it; see the report)."""
    w, o, r = job.world, job.o, job.round
    liar = job.drawn()
    lie = r.flipped(4, 1)
    o.propose(liar, job.job_id, 1, lie.claim)
    job.challenge(liar, lie, 4)
    assert o.bond_of(job.job_id, liar.address) == 0
    assert o.owed(w.token.address, liar.address) == BOUNTY
    assert o.owed(w.token.address, w.sponsor.address) == BOND - BOUNTY


def test_an_undecided_escalation_stalls_the_round_and_costs_the_escalator_nothing(job: OptimisticJob) -> None:
    """Documented limit (see the report): nobody votes, the round fails, `expire` refunds."""
    w, o, r = job.world, job.o, job.round
    proposer = job.drawn()
    o.propose(proposer, job.job_id, 1, r.claim)
    escalate(job, w.outsider)
    w.expire(job.job_id)
    w.coord.advance(w.outsider, job.job_id)
    o.expire(w.outsider, job.job_id, 1)
    assert w.coord.global_model(job.job_id) == r.claim.previous_root  # the honest round was lost
    assert o.owed(w.token.address, w.outsider.address) == BOND
    assert o.bond_of(job.job_id, proposer.address) == BOND


def test_a_claim_over_forged_updates_survives_every_proof_and_only_a_vote_catches_it(
    job: OptimisticJob,
) -> None:
    """The claim's updates are the proposer's word: optimistic.vy checks their number against
    the commits, not their roots (the coordinator keeps no commitments in storage). A claim over
    three updates of the liar's own, honestly aggregated, is self-consistent, so no chunk proof
    strikes it; an escalation with honest voters does (see the report)."""
    w, o, r = job.world, job.o, job.round
    forged = Honest.build(random.Random(99), r.rule, Model(decode_tensors(r.previous), r.previous)).round
    liar = job.drawn()
    o.propose(liar, job.job_id, 1, forged.claim)
    for c in (0, 350, 699):
        with reverts("disputes: the proposed value is right"):
            job.challenge(w.outsider, forged, c)
    escalate(job, w.outsider)
    for v in others(job, liar):
        o.vote(v, job.job_id, 1, r.claim.aggregate_root)
    assert w.coord.global_model(job.job_id) == r.claim.aggregate_root
    assert o.bond_of(job.job_id, liar.address) == 0


def test_a_job_that_names_its_committee_takes_no_other_bond(world: World) -> None:
    """The fix for the hole below, as every job run by fedledger uses it: the sponsor names the
    committee at `delegate`, and no one else can bond, so no one else can vote."""
    committee = tuple(v.address for v in world.validators)
    j = OptimisticJob(world, named=committee)
    j.bond(*world.validators)
    with reverts("optimistic: not a named proposer"):
        j.bond(world.trainers[3])
    for bad in [(committee[0], committee[0]), (ZERO_ADDRESS,)]:  # a duplicate, the zero address
        other = OptimisticJob(world, delegated=False, seed=5)
        with reverts("optimistic: bad named proposer"):
            other.o.delegate(world.sponsor, other.job_id, other.terms(), named=bad)


def test_bonds_posted_after_an_escalation_cannot_decide_it(job: OptimisticJob) -> None:
    """In a job whose bonding is left open (no named committee), the liar answers an honest
    escalation by bonding `escalation_quorum` fresh accounts to vote its lie through: their
    votes are refused, and the proposers bonded before the escalation decide it."""
    w, o, r = job.world, job.o, job.round
    liar = job.drawn()
    lie = replace(r.claim, num_updates=r.claim.num_updates - 1)  # a wrong exclusion
    victim = w.trainers[0].address
    o.propose(liar, job.job_id, 1, lie, excluded=[victim], flags=1)
    escalate(job, w.outsider)
    sybils = w.trainers[3:5]
    job.bond(*sybils)
    for s in sybils:
        with reverts("optimistic: bonded after the escalation"):
            o.vote(s, job.job_id, 1, lie.aggregate_root, excluded=[victim], flags=1)
    honest = others(job, liar)[:2]
    receipt = None
    for v in honest:
        receipt = o.vote(v, job.job_id, 1, r.claim.aggregate_root)
    assert receipt is not None
    decided = [e.args for e in map(o.decode, receipt.logs) if e is not None and e.name == "EscalationDecided"]
    assert [(d["loser"], d["upheld"]) for d in decided] == [(liar.address, False)]
    assert w.coord.global_model(job.job_id) == r.claim.aggregate_root
    assert o.bond_of(job.job_id, liar.address) == 0
    assert o.owed(w.token.address, w.outsider.address) == BOND + BOUNTY  # its bond back, and the bounty


def test_a_top_up_after_an_escalation_does_not_vote_in_it(job: OptimisticJob) -> None:
    """A top-up posts a bond anew: a proposer struck earlier in the round that tops its bond
    up once it sees the next claim escalated does not vote in that escalation."""
    w, o, r = job.world, job.o, job.round
    struck = job.drawn()
    o.propose(struck, job.job_id, 1, r.flipped(5, 1).claim)
    job.challenge(w.outsider, r.flipped(5, 1), 5)
    assert o.bond_of(job.job_id, struck.address) == 0
    w.chain.increase_time(21)  # past the proposal window: any bonded proposer may post
    liar = others(job, struck)[0]
    lie = replace(r.claim, num_updates=r.claim.num_updates - 1)
    o.propose(liar, job.job_id, 1, lie, excluded=[w.trainers[0].address], flags=1)
    escalate(job, w.outsider)
    job.bond(struck)
    assert o.bond_of(job.job_id, struck.address) == BOND
    with reverts("optimistic: bonded after the escalation"):
        o.vote(struck, job.job_id, 1, r.claim.aggregate_root)
    honest = others(job, struck, liar)[0]
    o.vote(honest, job.job_id, 1, r.claim.aggregate_root)  # bonded before it: counts


def test_a_committee_beside_this_contract_is_refused(world: World) -> None:
    """A job whose committee is this contract and one validator, quorum 1, would let the
    validator finalise any aggregate at once, with no claim, no window and no bond at
    stake: `delegate` refuses it, since the coordinator reports the committee's size."""
    assert world.d.optimistic is not None
    insider = world.validators[0]
    committee = [world.d.optimistic.address, insider.address]
    with reverts("optimistic: job not delegated to one proposer"):
        OptimisticJob(world, params=dict(committee=committee))
    j = OptimisticJob(world)
    assert world.coord.job_config(j.job_id)["committee_size"] == 1
