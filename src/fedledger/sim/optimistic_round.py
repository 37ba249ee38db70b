"""A simulated round's aggregation in optimistic mode: one claim, the watchers, the window, settling.

What each simulated party does is what a node does (roles/optimistic.py); the simulation only
runs them in turn and moves the in-process chain's clock across the windows:

1. the proposer the contract drew posts its claim (a `lying-proposer` posts one with a value
   changed, and publishes that blob so the claim can be checked at all);
2. the other committee members watch: each computes the round (a simulated committee computes
   it twice and shares it, sim/committee.py) and judges the claim; the first to find it wrong
   proves it, which slashes the proposer and reopens the round to the next drawn proposer;
   what one chunk cannot show is escalated and voted on;
3. once a claim stands, the clock passes its window and the sponsor settles it, which
   finalises the round on the coordinator, and the caller `finish`es the round. The caller hears
   the aggregate as soon as the first drawn proposer has computed it (`on_computed`), and may
   evaluate it and train on it meanwhile (sim/round_close.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from fedledger.aggregation.chunk_proof import Claim
from fedledger.chain.base import PendingReceipt
from fedledger.codec.commitment import merkle_root
from fedledger.roles.job import CommitRecord
from fedledger.roles.optimistic import Posted, Watcher, claim_for, flag_bits, judge, lie
from fedledger.roles.outcome import RoundOutcome
from fedledger.sim.results import Challenge, OptimisticLedger

if TYPE_CHECKING:
    from fedledger.sim.setup import Organisation, SimulationSetup

log = logging.getLogger("fedledger.sim")


class OptimisticRound:
    """Runs one round's aggregation phase of an optimistic-mode simulation."""

    def __init__(self, sim: SimulationSetup, ledger: OptimisticLedger) -> None:
        self.sim = sim
        self.ledger = ledger
        assert sim.deployment.optimistic is not None
        self.optimistic = sim.deployment.optimistic
        self._claims: dict[int, Claim] = {}
        self._settling: PendingReceipt | None = None

    def members(self) -> list[tuple[int, Organisation]]:
        return [(i, o) for i, o in enumerate(self.sim.orgs, start=1) if o.validator is not None]

    def compute(self, org: Organisation, inputs: Mapping[str, Any]) -> RoundOutcome:
        assert org.validator is not None
        v = org.validator
        outcome = v.outcome(**inputs)
        if not v.store.has(outcome.aggregate):
            v.store.put(outcome.blob)
        return outcome

    def honest_claim(self, outcome: RoundOutcome, previous: bytes) -> Claim:
        """The claim for an outcome, built once per outcome (a shared computation is one object)."""
        key = id(outcome)
        if key not in self._claims:
            self._claims = {key: claim_for(self.sim.spec, outcome, previous=previous, store=self.sim.store)}
        return self._claims[key]

    def run(
        self,
        *,
        round: int,
        version: int,
        global_c: bytes,
        global_model: Mapping[str, np.ndarray],
        commits: Sequence[CommitRecord],
        releases_before: int,
        on_computed: Callable[[bytes], None] | None = None,
    ) -> None:
        """Claims, watches and settles the round; `on_computed(aggregate)` hears the honest
        aggregate as soon as the first drawn proposer has computed it (sim/round_close.py)."""
        sim, o, job = self.sim, self.optimistic, self.sim.job_id
        inputs: dict[str, Any] = dict(
            round=round,
            version=version,
            global_model=global_model,
            commits=commits,
            secure=None,
            releases_before=releases_before,
        )
        previous = sim.store.get(global_c)
        members = self.members()
        by_address = {str(org.trainer.account.address).lower(): (i, org) for i, org in members}
        bond = sim.spec.proposer_bond
        while True:
            record = o.round_record(job, round)
            drawn = o.drawn(job, round, record.attempt).lower()
            if drawn not in by_address or o.bond_of(job, drawn) < bond:
                # the drawn proposer cannot post: after its turn any bonded member may
                sim.chain.increase_time(sim.spec.proposal_window_s + 1)
                drawn = next(a for a in by_address if o.bond_of(job, a) >= bond)
            i, proposer = by_address[drawn]
            outcome = self.compute(proposer, inputs)
            if on_computed is not None:
                on_computed(outcome.aggregate)
            claim = honest = self.honest_claim(outcome, previous)
            fault = sim.faults.get(i)
            if fault is not None and fault.kind == "lying-proposer" and round >= fault.from_round:
                forged = lie(outcome.blob, round, honest.num_params)
                sim.store.put(forged)
                claim = replace(honest, aggregate_root=merkle_root(forged))
                log.warning(
                    "round %d: %s (lying proposer) claims an aggregate it did not compute",
                    round,
                    proposer.name,
                )
            flags = flag_bits(outcome.excluded, outcome.flagged)
            receipt = o.propose(
                proposer.trainer.account, job, round, claim, excluded=outcome.excluded, flags=flags
            )
            self.ledger.proposals += 1
            (event,) = [e for e in o.events_in(receipt) if e.name == "ProposalPosted"]
            posted = Posted.of(event)
            with sim.committee.deferring():  # the second computation is compared in `finish`
                result = self.watch(posted, members, proposer, inputs, previous)
            if result == "decided":
                return  # the committee's vote finalised the round
            if result == "stood":
                break
            # struck: the round goes to the next drawn proposer
        sim.chain.increase_time(sim.spec.challenge_window_s + 1)
        aggregate = posted.claim.aggregate_root
        self._settling = o.settle_later(
            sim.sponsor, job, round, aggregate, excluded=list(posted.excluded), flags=posted.flags
        )
        self.ledger.settled += 1

    def finish(self) -> None:
        """Compares a deferred second computation and waits for the settle, which raises a revert."""
        self.sim.committee.confirm()
        if self._settling is not None:
            self._settling.result()

    def watch(
        self,
        posted: Posted,
        members: Sequence[tuple[int, Organisation]],
        proposer: Organisation,
        inputs: Mapping[str, Any],
        previous: bytes,
    ) -> str:
        """Every other member checks the claim: "stood", "struck", or "decided" by a vote."""
        sim, o = self.sim, self.optimistic
        for _, org in members:
            if org is proposer:
                continue
            outcome = self.compute(org, inputs)
            honest = self.honest_claim(outcome, previous)
            verdict = judge(posted, honest, outcome, sim.store)
            if verdict.kind == "right":
                continue
            watcher = Watcher(
                name=org.name,
                account=org.trainer.account,
                optimistic=o,
                store=sim.store,
                names=sim.participants,
            )
            if verdict.kind == "escalate":  # the escalator bonds as much as a proposer
                sim.deployment.token.mint(sim.sponsor, org.trainer.account.address, sim.spec.proposer_bond)
                sim.deployment.token.approve(org.trainer.account, o.address, sim.spec.proposer_bond)
            watcher.act(posted, verdict, outcome, previous, honest)
            escalated = verdict.kind == "escalate"
            self.ledger.challenges.append(
                Challenge(posted.round, proposer.name, verdict.reason, org.name, escalated)
            )
            if verdict.kind == "escalate":
                self.vote(posted, members, proposer, org, inputs)
                return "decided"
            return "struck"
        return "stood"

    def vote(
        self,
        posted: Posted,
        members: Sequence[tuple[int, Organisation]],
        proposer: Organisation,
        escalator: Organisation,
        inputs: Mapping[str, Any],
    ) -> None:
        """The committee votes an escalated round until its quorum decides it."""
        o = self.optimistic
        for _, org in members:
            if org is proposer or org is escalator:
                continue
            outcome = self.compute(org, inputs)
            receipt = o.vote(
                org.trainer.account,
                posted.job_id,
                posted.round,
                outcome.aggregate,
                excluded=outcome.excluded,
                flags=flag_bits(outcome.excluded, outcome.flagged),
            )
            if any(e.name == "EscalationDecided" for e in o.events_in(receipt)):
                return
