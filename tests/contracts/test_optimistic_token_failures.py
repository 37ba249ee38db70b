"""optimistic.vy with a token that returns false instead of reverting: every failed-transfer check.

The project's reward_token reverts on a failed transfer, so these checks are reached only
through the false_token.vy double, which moves nothing and answers as told.
"""

from __future__ import annotations

import pytest
from coordinator_harness import World
from optimistic_harness import OptimisticJob, reverts
from test_coordinator_token_failures import FalseToken


class SwitchableToken(FalseToken):
    def set_approve_fails(self, sender, fails: bool) -> None:
        call = self.abi.functions["set_approve_fails"].encode_call(fails)
        self.chain.send(sender, self.address, call)


@pytest.fixture
def token(world: World) -> SwitchableToken:
    return SwitchableToken(world.chain, world.sponsor)


def false_job(world: World, token: SwitchableToken, delegated: bool = True) -> OptimisticJob:
    return OptimisticJob(world, delegated=delegated, params=dict(token=token.address))


def test_the_stake_pull_and_the_coordinator_approval_are_checked(world: World, token) -> None:
    j = false_job(world, token, delegated=False)
    token.set_fail(world.sponsor, True)
    with reverts("optimistic: stake transfer failed"):
        j.o.delegate(world.sponsor, j.job_id, j.terms())
    token.set_fail(world.sponsor, False)
    token.set_approve_fails(world.sponsor, True)
    with reverts("optimistic: approve failed"):
        j.o.delegate(world.sponsor, j.job_id, j.terms())
    assert j.o.terms(j.job_id).bond == 0  # nothing of either attempt stuck
    token.set_approve_fails(world.sponsor, False)
    j.o.delegate(world.sponsor, j.job_id, j.terms())
    assert j.o.terms(j.job_id).bond > 0


def test_a_bond_or_an_escalation_bond_that_does_not_arrive_is_refused(world: World, token) -> None:
    j = false_job(world, token)
    v = world.validators
    token.set_fail(world.sponsor, True)
    with reverts("optimistic: bond transfer failed"):
        j.o.bond(v[0], j.job_id)
    assert j.o.bond_of(j.job_id, v[0].address) == 0 and j.o.proposers(j.job_id) == []
    token.set_fail(world.sponsor, False)
    for a in v:
        j.o.bond(a, j.job_id)
    j.commit_all()
    j.o.propose(j.drawn(), j.job_id, 1, j.round.claim)
    token.set_fail(world.sponsor, True)
    with reverts("optimistic: bond transfer failed"):
        j.o.escalate(world.outsider, j.job_id, 1)
    assert not j.o.round_record(j.job_id, 1).escalated


def test_a_payout_that_does_not_leave_is_still_owed(world: World, token) -> None:
    j = false_job(world, token)
    j.o.bond(world.validators[0], j.job_id)
    j.commit_all()
    lie = j.round.flipped(4, 2)
    j.o.propose(world.validators[0], j.job_id, 1, lie.claim)
    j.challenge(world.outsider, lie, 4)
    owed = j.o.owed(token.address, world.outsider.address)
    assert owed > 0
    token.set_fail(world.sponsor, True)
    with reverts("optimistic: transfer failed"):
        j.o.collect(world.outsider, token.address)
    assert j.o.owed(token.address, world.outsider.address) == owed
    token.set_fail(world.sponsor, False)
    j.o.collect(world.outsider, token.address)
    assert j.o.owed(token.address, world.outsider.address) == 0
