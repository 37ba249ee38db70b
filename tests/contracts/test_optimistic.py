"""optimistic.vy: a bonded proposer, its challenge window, a proof that strikes it, escalation, settling."""

from __future__ import annotations

import pytest
from coordinator_harness import World, only
from optimistic_harness import BOND, BOUNTY_BPS, WINDOW, OptimisticJob, names

from fedledger.chain.contracts import Phase
from fedledger.errors import TransactionReverted


@pytest.fixture
def job(world: World) -> OptimisticJob:
    j = OptimisticJob(world)
    j.bond(*world.validators)
    j.commit_all()
    assert world.coord.job_state(j.job_id).phase == Phase.AGGREGATING
    return j


def test_an_unchallenged_claim_finalises_the_round_after_its_window(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    proposer = job.drawn()
    o.propose(proposer, job.job_id, 1, r.claim)
    with pytest.raises(TransactionReverted, match="optimistic: challenge window open"):
        o.settle(w.outsider, job.job_id, 1, r.claim.aggregate_root)
    w.chain.increase_time(WINDOW + 1)
    receipt = o.settle(w.outsider, job.job_id, 1, r.claim.aggregate_root)
    assert "ProposalSettled" in names(o, receipt)
    fin = only(w.d, receipt, "RoundFinalized")
    assert fin["aggregate"] == r.claim.aggregate_root
    assert w.coord.global_model(job.job_id) == r.claim.aggregate_root
    assert o.bond_of(job.job_id, proposer.address) == BOND  # an honest proposer keeps its bond


def test_a_lying_proposer_is_struck_slashed_and_the_next_proposer_finalises(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    liar = job.drawn()
    lie = r.flipped(5, 1)
    o.propose(liar, job.job_id, 1, lie.claim)
    receipt = job.challenge(w.outsider, lie, 5)
    assert names(o, receipt)[-2:] == ["FraudProven", "ProposalStruck"]
    assert o.bond_of(job.job_id, liar.address) == 0
    bounty = BOND * BOUNTY_BPS // 10_000
    assert o.owed(w.token.address, w.outsider.address) == bounty
    assert o.owed(w.token.address, w.sponsor.address) == BOND - bounty
    record = o.round_record(job.job_id, 1)
    assert not record.posted and record.attempt == 1
    # the struck claim cannot be settled, and the liar cannot post again without a new bond
    with pytest.raises(TransactionReverted, match="optimistic: no proposal"):
        o.settle(w.outsider, job.job_id, 1, lie.claim.aggregate_root)
    with pytest.raises(TransactionReverted, match="optimistic: not bonded"):
        o.propose(liar, job.job_id, 1, r.claim)
    honest = job.drawn(1)
    if honest.address == liar.address:  # drawn again but unbonded: anyone bonded may post
        honest = next(v for v in w.validators if v.address != liar.address)
    o.propose(honest, job.job_id, 1, r.claim)
    w.chain.increase_time(WINDOW + 1)
    fin = only(w.d, o.settle(w.outsider, job.job_id, 1, r.claim.aggregate_root), "RoundFinalized")
    assert fin["aggregate"] == r.claim.aggregate_root
    before = w.token.balance_of(w.outsider.address)
    o.collect(w.outsider, w.token.address)
    assert w.token.balance_of(w.outsider.address) == before + bounty


def test_a_right_claim_cannot_be_struck_and_a_late_proof_is_refused(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    lie = r.flipped(9, -3)
    o.propose(job.drawn(), job.job_id, 1, lie.claim)
    with pytest.raises(TransactionReverted, match="disputes: the proposed value is right"):
        job.challenge(w.outsider, lie, 10)
    w.chain.increase_time(WINDOW + 1)
    with pytest.raises(TransactionReverted, match="optimistic: challenge window closed"):
        job.challenge(w.outsider, lie, 9)


def test_only_the_drawn_proposer_may_post_until_its_turn_runs_out(job: OptimisticJob) -> None:
    w, o, r = job.world, job.o, job.round
    drawn = job.drawn()
    other = next(v for v in w.validators if v.address != drawn.address)
    with pytest.raises(TransactionReverted, match="optimistic: not the drawn proposer"):
        o.propose(other, job.job_id, 1, r.claim)
    with pytest.raises(TransactionReverted, match="optimistic: not bonded"):
        o.propose(w.outsider, job.job_id, 1, r.claim)
    w.chain.increase_time(21)
    o.propose(other, job.job_id, 1, r.claim)
    with pytest.raises(TransactionReverted, match="optimistic: round already proposed"):
        o.propose(drawn, job.job_id, 1, r.claim)


def test_claims_off_the_jobs_terms_are_refused(job: OptimisticJob) -> None:
    from dataclasses import replace

    o, r, p = job.o, job.round, job.drawn()
    for bad, why in [
        (replace(r.claim, rule=3), "optimistic: claim off the job's terms"),
        (replace(r.claim, num_params=r.claim.num_params + 1), "optimistic: claim off the job's terms"),
        (replace(r.claim, previous_root=b"\1" * 32), "optimistic: claim not on the global model"),
        (replace(r.claim, num_updates=2), "optimistic: updates do not add up"),
    ]:
        with pytest.raises(TransactionReverted, match=why):
            o.propose(p, job.job_id, 1, bad)


def test_an_escalated_wrong_exclusion_is_decided_by_the_bonded_proposers(job: OptimisticJob) -> None:
    from dataclasses import replace

    w, o, r = job.world, job.o, job.round
    liar = job.drawn()
    victim = w.trainers[0].address
    lie = replace(r.claim, num_updates=r.claim.num_updates - 1)  # one chunk cannot show this
    o.propose(liar, job.job_id, 1, lie, excluded=[victim], flags=1)
    escalator = w.outsider
    job.fund(escalator)
    w.token.approve(escalator, o.address, BOND)
    o.escalate(escalator, job.job_id, 1)
    with pytest.raises(TransactionReverted, match="optimistic: round escalated"):
        w.chain.increase_time(WINDOW + 1)
        o.settle(w.outsider, job.job_id, 1, lie.aggregate_root, excluded=[victim], flags=1)
    with pytest.raises(TransactionReverted, match="optimistic: party to the dispute"):
        o.vote(liar, job.job_id, 1, r.claim.aggregate_root)
    voters = [v for v in w.validators if v.address != liar.address]
    o.vote(voters[0], job.job_id, 1, r.claim.aggregate_root)
    with pytest.raises(TransactionReverted, match="optimistic: already voted"):
        o.vote(voters[0], job.job_id, 1, r.claim.aggregate_root)
    receipt = o.vote(voters[1], job.job_id, 1, r.claim.aggregate_root)
    assert "EscalationDecided" in names(o, receipt)
    fin = only(w.d, receipt, "RoundFinalized")
    assert fin["aggregate"] == r.claim.aggregate_root
    assert o.bond_of(job.job_id, liar.address) == 0
    bounty = BOND * BOUNTY_BPS // 10_000
    assert o.owed(w.token.address, escalator.address) == BOND + bounty  # its bond back, and the bounty


def test_bonds_and_the_coordinator_stake_come_back_when_the_job_ends(world: World) -> None:
    j = OptimisticJob(world)
    j.bond(*world.validators)
    o, token = j.o, world.token.address
    with pytest.raises(TransactionReverted, match="optimistic: job still running"):
        o.unbond(world.validators[0], j.job_id)
    # the job runs its two rounds to the end: commit, propose, settle
    j.commit_all()
    o.propose(j.drawn(), j.job_id, 1, j.round.claim)
    world.chain.increase_time(WINDOW + 1)
    o.settle(world.outsider, j.job_id, 1, j.round.claim.aggregate_root)
    while world.coord.job_state(j.job_id).phase == Phase.OPEN:  # later rounds fail: no commits
        world.expire(j.job_id)
        world.coord.advance(world.sponsor, j.job_id)
    assert world.coord.job_state(j.job_id).phase == Phase.ABORTED
    stake = int(world.coord.job_config(j.job_id)["stake"])
    o.release(world.outsider, j.job_id)
    assert o.owed(token, world.sponsor.address) == stake
    for v in world.validators:
        o.unbond(v, j.job_id)
        assert o.owed(token, v.address) == BOND
    with pytest.raises(TransactionReverted, match="optimistic: no bond"):
        o.unbond(world.validators[0], j.job_id)
