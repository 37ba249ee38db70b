"""Stateful property test of optimistic.vy's money and of what it lets the coordinator finalise.

Random sequences over one or two delegated jobs, on real blobs chained round to round
(optimistic_model.py): bond, commit, propose (honest, or a lie: a moved coordinate, a false data
offset, a dropped update), challenge at the right or a wrong coordinate, refute an offset,
replay a proof against a struck or retired claim, escalate, vote (honestly, or a lone dissent),
settle, expire, let time pass, advance the coordinator, release, unbond, collect. Every
optimistic.vy call's outcome (success or the exact revert) is predicted from the model and the
coordinator's public views, and after every step:

- optimistic.vy's token balance == the bonds it holds + what it owes + one bond for every
  escalation no vote or proof has decided yet (all read from the chain), and the bonds and
  credits are exactly the model's;
- the token's supply never changes (and, at each example's end, is the sum of every holder's
  balance);
- every finalised aggregate is the round's honest aggregate, and the coordinator's global model
  is the model's. This holds because a watcher acts within every lie's window (the guard run
  before each rule): it strikes a provable lie and escalates an unprovable one; the bonded
  proposers vote honestly, so a lie is never settled nor voted through.

FEDLEDGER_OPTIMISTIC_STEPS sets the steps to run (default 600, ~25 s; examples of up to 50 steps,
10% more of them than the quotient, as hypothesis ends some early; a bench runs 10,000); with
FEDLEDGER_OPTIMISTIC_REPORT=FILE each example appends its counts ("steps": rules run) as a JSON line.
"""

from __future__ import annotations

import functools
import json
import os
import random
from collections import Counter

import hypothesis.strategies as st
from coordinator_harness import MAX_UINT256, h
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from optimistic_model import (
    ACCS,
    AGG,
    AGGREGATING,
    BOND,
    CREDITED,
    ENDED,
    JOBS,
    KINDS,
    NUM_PARAMS,
    PROPOSAL,
    PROPOSERS,
    SPONSOR,
    TRAINERS,
    WATCHER,
    WINDOW,
    Ledger,
    Plumbing,
    Posted,
    make_claim,
)  # fmt: skip

from fedledger.chain.contracts import Phase, deploy_contracts
from fedledger.chain.inprocess import InProcessChain
from fedledger.codec.commitment import merkle_root

EXAMPLE_STEPS = 50
STEPS = int(os.environ.get("FEDLEDGER_OPTIMISTIC_STEPS", "600"))
EXAMPLES = max(1, -(-STEPS * 11 // (10 * EXAMPLE_STEPS)))  # 10% spare: hypothesis ends some early
REPORT = os.environ.get("FEDLEDGER_OPTIMISTIC_REPORT")
JOB = st.integers(0, 1)
PICK = st.integers(0, 7)
KIND = st.sampled_from(KINDS)


class OptimisticMachine(Plumbing, RuleBasedStateMachine):
    @initialize(n_jobs=st.sampled_from([1, 2]), seed=st.integers(0, 2**32 - 1))
    def setup(self, n_jobs: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.chain = InProcessChain()
        d = deploy_contracts(self.chain, ACCS[SPONSOR])
        assert d.optimistic is not None and d.disputes is not None
        self.o, self.disputes, self.token, self.coord = d.optimistic, d.disputes, d.token, d.coordinator
        for a in ACCS:
            self.token.mint(ACCS[SPONSOR], a.address, 10**12)
            self.token.approve(a, self.coord.address, MAX_UINT256)
            self.token.approve(a, self.o.address, MAX_UINT256)
        self.supply = self.token.total_supply()
        self.ledger = Ledger()
        self.bond, self.owed = self.ledger.bond, self.ledger.owed
        self.counts: Counter[str] = Counter(steps=-1)
        self.jobs = [self._open_job(*JOBS[i]) for i in range(n_jobs)]
        for j, job in enumerate(self.jobs):  # a head start: four bonded proposers, round 1 aggregating
            for a in PROPOSERS[:4]:
                self.o.bond(ACCS[a], job.id)
                self.bond[(job.id, a)] = BOND
                job.bonded(a)
            self.commit(j)

    def _guard(self, margin: int) -> None:
        """The watcher: a lie whose window would close within `margin` seconds is struck (or,
        a dropped update, escalated) now, so no lie outlives its window unanswered."""
        for job in self.jobs:
            for rnd, p in list(job.posted.items()):
                if not p.lie or p.final_at >= self._now() + margin or (p.kind == "exclude" and p.escalator):
                    continue
                now = self._now()
                assert now <= p.final_at, "a lie outlived its window"
                if p.kind == "exclude":
                    send = functools.partial(self.o.escalate, ACCS[WATCHER], job.id, rnd)
                    self._do("watcher escalates", send, None)
                    p.escalator = WATCHER
                    job.escalated()
                else:
                    self._do("watcher strikes", self._prove(job, rnd, p, WATCHER, p.flipped), None)
                    self.ledger.strike(job, rnd, WATCHER, now, SPONSOR, BOND)

    # -- rules -------------------------------------------------------------------------------

    @rule(j=JOB, who=st.sampled_from(PROPOSERS))
    def bond_up(self, j: int, who: int) -> None:
        self._guard(1)
        job = self._job(j)
        expect = None
        if self.coord.job_state(job.id).phase in ENDED:
            expect = "optimistic: job ended"
        elif self.bond[(job.id, who)] >= BOND:
            expect = "optimistic: already bonded"
        if self._do("bond", lambda: self.o.bond(ACCS[who], job.id), expect):
            self.bond[(job.id, who)] = BOND
            job.bonded(who)

    @rule(j=JOB)
    def commit(self, j: int) -> None:
        self._guard(3)
        job = self._job(j)
        state = self.coord.job_state(job.id)
        if state.phase != Phase.OPEN or state.commits or self._now() + 2 > state.deadline:
            return
        honest = self._honest(job, state.round)
        for t, e in zip(TRAINERS, honest.round.entries, strict=True):
            self.coord.commit(ACCS[t], job.id, state.round, e.root, e.weight)
        self.counts["rounds committed"] += 1

    @rule(
        j=JOB, who=st.sampled_from(PROPOSERS), drawn=st.sampled_from([True, True, False]), kind=KIND, c=PICK
    )
    def propose(self, j: int, who: int, drawn: bool, kind: str, c: int) -> None:
        self._guard(1)
        job, state = self._job(j), self.coord.job_state(self._job(j).id)
        rnd, attempt, now = state.round, self._job(j).attempt[state.round], self._now()
        at = self.o.drawn(job.id, rnd, attempt)
        chosen = next((i for i in PROPOSERS if ACCS[i].address == at), None)
        if drawn and chosen is not None and self.bond[(job.id, chosen)] >= BOND:
            who = chosen
        coordinate = (c * 37 + attempt) % NUM_PARAMS
        claim, proof, excluded, flags = make_claim(
            kind, self._honest(job, rnd), ACCS[TRAINERS[0]].address, coordinate, c & 1
        )
        expect = None
        if self.bond[(job.id, who)] < BOND:
            expect = "optimistic: not bonded"
        elif state.phase != AGGREGATING:
            expect = "optimistic: round not aggregating"
        elif rnd in job.posted:
            expect = "optimistic: round already proposed"
        else:
            since = state.deadline - AGG if attempt == 0 else job.reopened[rnd]
            free = now > since + PROPOSAL or chosen is None or self.bond[(job.id, chosen)] < BOND
            expect = None if who == chosen or free else "optimistic: not the drawn proposer"
        send = lambda: self.o.propose(ACCS[who], job.id, rnd, claim, excluded=excluded, flags=flags)  # noqa: E731
        if self._do(f"propose {kind}", send, expect):
            # the job's live round is now this one: an older round's claim is no longer live
            # (optimistic.vy keeps one record a job); an escalator's bond waits for `expire`
            for old in [r for r in job.posted if r != rnd]:
                if job.posted[old].escalator is None:
                    job.close(old, "disputes: no such claim")
                else:
                    job.posted[old].dead = True
            job.posted[rnd] = Posted(
                kind, claim, proof, excluded, flags, who, attempt, now + WINDOW, coordinate
            )

    @rule(j=JOB, k=PICK, who=st.sampled_from([WATCHER, 9, 10]), hit=st.booleans(), c=PICK)
    def challenge(self, j: int, k: int, who: int, hit: bool, c: int) -> None:
        self._guard(1)
        job = self._job(j)
        if not job.posted:
            return
        rnd = sorted(job.posted)[k % len(job.posted)]
        p, now = job.posted[rnd], self._now()
        coordinate = p.flipped if hit else (c * 91) % NUM_PARAMS
        wrong = p.kind == "offset" or (p.kind == "flip" and coordinate == p.flipped)
        expect: str | None = "disputes: the proposed value is right"
        if p.dead:
            expect = "disputes: no such claim"
        elif wrong:
            expect = None if now <= p.final_at else "optimistic: challenge window closed"
        if self._do("strike", self._prove(job, rnd, p, who, coordinate), expect):
            self.ledger.strike(job, rnd, who, now, SPONSOR, BOND)

    @rule(j=JOB, k=PICK, who=st.sampled_from([WATCHER, 9, 10]))
    def replay_proof(self, j: int, k: int, who: int) -> None:
        """A proof against a claim already struck or retired: refused in disputes.vy."""
        self._guard(1)
        job = self._job(j)
        if job.stale:
            rnd, p, reason = job.stale[k % len(job.stale)]
            self._do("replay", self._prove(job, rnd, p, who, p.flipped), reason)

    @rule(j=JOB, k=PICK, who=st.sampled_from([9, 10, 1]))
    def escalate(self, j: int, k: int, who: int) -> None:
        self._guard(1)
        job = self._job(j)
        rnd = self._pick_round(job, k)
        p, now = job.posted.get(rnd), self._now()
        expect = None
        if p is None or p.dead:
            expect = "optimistic: no proposal"
        elif p.escalator is not None:
            expect = "optimistic: round escalated"
        elif now > p.final_at:
            expect = "optimistic: challenge window closed"
        if self._do("escalate", lambda: self.o.escalate(ACCS[who], job.id, rnd), expect):
            assert p is not None
            p.escalator = who
            job.escalated()

    @rule(j=JOB, k=PICK, who=st.sampled_from(PROPOSERS), dissent=st.booleans())
    def vote(self, j: int, k: int, who: int, dissent: bool) -> None:
        self._guard(1)
        job = self._job(j)
        rnd = self._pick_round(job, k)
        p, now = job.posted.get(rnd), self._now()
        honest = self._honest(job, rnd).result()
        result = (h(f"dissent {who}"), [], 0) if dissent and job.quorum > 1 else honest
        key = (result[0], tuple(result[1]), result[2])
        expect, decides = None, False
        if p is None or p.escalator is None or p.dead:
            expect = "optimistic: round not escalated"
        elif self.bond[(job.id, who)] < BOND:
            expect = "optimistic: not bonded"
        elif who in (p.proposer, p.escalator):
            expect = "optimistic: party to the dispute"
        elif job.bonded_late(who):
            expect = "optimistic: bonded after the escalation"
        elif who in p.voted:
            expect = "optimistic: already voted"
        else:
            decides = p.votes.get(key, 0) + 1 >= job.quorum
            expect = self._coordinator_refuses(job, rnd, now) if decides else None
        send = lambda: self.o.vote(ACCS[who], job.id, rnd, result[0], excluded=result[1], flags=result[2])  # noqa: E731
        if not self._do("vote", send, expect):
            return
        assert p is not None and p.escalator is not None
        if not decides:
            p.voted.add(who)
            p.votes[key] = p.votes.get(key, 0) + 1
            return
        self.ledger.decide(job, rnd, result, SPONSOR, BOND)
        self.counts["escalations decided"] += 1

    @rule(j=JOB, k=PICK)
    def settle(self, j: int, k: int) -> None:
        self._guard(1)
        job = self._job(j)
        rnd = self._pick_round(job, k)
        p, now = job.posted.get(rnd), self._now()
        if p is None or p.dead:
            expect: str | None = "optimistic: no proposal"
        elif p.escalator is not None:
            expect = "optimistic: round escalated"
        elif now <= p.final_at:
            expect = "optimistic: challenge window open"
        else:
            expect = self._coordinator_refuses(job, rnd, now)
        claim = p.claim if p else self._honest(job, rnd).round.claim
        excluded, flags = (p.excluded, p.flags) if p else ([], 0)
        aggregate = claim.aggregate_root
        send = lambda: self.o.settle(ACCS[10], job.id, rnd, aggregate, excluded=excluded, flags=flags)  # noqa: E731
        if self._do("settle", send, expect):
            job.close(rnd, "disputes: no such claim")

    @rule(j=JOB, k=PICK)
    def expire(self, j: int, k: int) -> None:
        self._guard(1)
        job = self._job(j)
        state = self.coord.job_state(job.id)
        rnd = max(1, self._pick_round(job, k) - (k & 1))
        expect = None
        if state.round == rnd and state.phase == AGGREGATING:
            expect = "optimistic: round still aggregating"
        elif rnd not in job.posted:
            expect = "optimistic: no proposal"
        if self._do("expire", lambda: self.o.expire(ACCS[10], job.id, rnd), expect):
            p = job.close(rnd, "disputes: no such claim")
            if p.escalator is not None:
                self.owed[p.escalator] += BOND

    @rule(dt=st.sampled_from([1, 5, 10, 20, 31, 60, 101]), j=st.sampled_from([None, 0, 1]))
    def wait(self, dt: int, j: int | None) -> None:
        """Time passes; then, maybe, someone asks the coordinator to move a job's round on."""
        self._guard(dt + 1)
        self.chain.increase_time(dt)
        if j is None:
            return
        job = self._job(j)
        state, now = self.coord.job_state(job.id), self._now()
        expect = None
        if state.phase not in (Phase.OPEN, AGGREGATING):
            expect = "coordinator: job not running"
        elif now <= state.deadline:
            expect = "coordinator: phase not expired"
        self._do("advance", lambda: self.coord.advance(ACCS[10], job.id), expect)

    @rule()
    def progress(self) -> None:
        """The honest network's next two moves, one job after the other: commit, have the drawn
        (or any bonded) proposer post a claim (honest or not, in turn: the watcher answers lies),
        vote an escalation honestly, settle a claim whose window is over, pay out an ended job,
        or let time pass."""
        for _ in range(2):
            j = self.counts["progress"] % len(self.jobs)
            self.counts["progress"] += 1
            self._progress(j, self.jobs[j])

    @rule(j=JOB, what=st.sampled_from(["release", "unbond", "collect"]), who=st.sampled_from(CREDITED))
    def payout(self, j: int, what: str, who: int) -> None:
        self._guard(1)
        job = self._job(j)
        ended = self.coord.job_state(job.id).phase in ENDED
        expect = None if ended else "optimistic: job still running"
        if what == "release":
            if ended and job.released:
                expect = "coordinator: nothing to withdraw"
            stake = self.coord.stake_of(job.id, self.o.address)
            if self._do("release", lambda: self.o.release(ACCS[10], job.id), expect):
                self.owed[SPONSOR] += stake
                job.released = True
        elif what == "unbond":
            if ended and self.bond[(job.id, who)] == 0:
                expect = "optimistic: no bond"
            if self._do("unbond", lambda: self.o.unbond(ACCS[who], job.id), expect):
                self.owed[who] += self.bond.pop((job.id, who))
        else:
            expect = None if self.owed[who] else "optimistic: nothing owed"
            if self._do("collect", lambda: self.o.collect(ACCS[who], self.token.address), expect):
                self.owed[who] = 0

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def money_is_conserved_and_only_honest_aggregates_finalise(self) -> None:
        if not hasattr(self, "jobs"):
            return
        self.counts["steps"] += 1  # invariants run after every step (and once after setup: -1 there)
        if self.chain.block_number() == getattr(self, "checked", -1):
            return  # no transaction went through since the last check: nothing on chain moved
        self.checked = self.chain.block_number()
        bonds = escrow = owed = 0
        for job in self.jobs:
            for a in PROPOSERS:
                held = self.o.bond_of(job.id, ACCS[a].address)
                assert held == self.bond[(job.id, a)], (job.id, a, held)
                bonds += held
            for rnd in range(1, self.coord.job_state(job.id).round + 1):
                escalated = int(self.o.round_record(job.id, rnd).escalator, 16) != 0
                assert escalated == (rnd in job.posted and job.posted[rnd].escalator is not None)
                escrow += BOND * escalated
            for rnd, aggregate in job.finalised.items():
                assert aggregate == job.honest[rnd].round.claim.aggregate_root, (
                    f"round {rnd}: a lie finalised"
                )
            assert self.coord.global_model(job.id) == merkle_root(job.model.blob)
        for a in CREDITED:
            credit = self.o.owed(self.token.address, ACCS[a].address)
            assert credit == self.owed[a], (a, credit, self.owed[a])
            owed += credit
        assert self.token.balance_of(self.o.address) == bonds + owed + escrow
        assert self.token.total_supply() == self.supply

    def teardown(self) -> None:
        if hasattr(self, "jobs"):
            holders = [a.address for a in ACCS] + [self.o.address, self.coord.address]
            assert sum(self.token.balance_of(x) for x in holders) == self.supply
        if REPORT and hasattr(self, "counts"):
            with open(REPORT, "a") as f:
                f.write(json.dumps(dict(self.counts)) + "\n")


TestOptimisticMachine = OptimisticMachine.TestCase
TestOptimisticMachine.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=EXAMPLE_STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
