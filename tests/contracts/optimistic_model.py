"""Rounds of real blobs chained on the finalised model, and the claims a proposer may post about
them, for the optimistic.vy property test (test_optimistic_properties.py).

Each coordinator round gets one `Honest`: three updates aggregated by the job's rule on top of
the current global model (the previous round's honest aggregate, or the same model again after
a failed round), plus the aggregate of the last two alone, which a lying proposer that drops the
first committer posts: a claim no single chunk can refute, only an escalation.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from coordinator_harness import SPEC
from dispute_harness import RULES, Round

from fedledger.aggregation.chunk import ChunkRule, apply_rule
from fedledger.aggregation.chunk_proof import Claim, Entry, first_piece
from fedledger.aggregation.stats import squared_norm
from fedledger.chain.base import dev_accounts
from fedledger.chain.contracts import JobParams, Phase
from fedledger.chain.optimistic import Terms, claim_id
from fedledger.codec.blob import encode_tensors
from fedledger.codec.commitment import merkle_root, num_chunks
from fedledger.errors import TransactionReverted

NUM_PARAMS = 300
BOUND = 2**36
KINDS = ("honest", "flip", "offset", "exclude")


def _meta(rng: random.Random) -> dict[str, str]:
    return {"who": "x" * rng.randrange(60)}


@dataclass
class Model:
    """A global model: its tensors and the exact blob whose root the coordinator holds."""

    tensors: dict[str, np.ndarray]
    blob: bytes

    @classmethod
    def initial(cls, rng: random.Random) -> Model:
        gen = np.random.default_rng(rng.getrandbits(32))
        split = rng.randrange(NUM_PARAMS + 1)
        tensors = {
            "a": gen.integers(-BOUND, BOUND, size=(split,), dtype=np.int64),
            "b": gen.integers(-BOUND, BOUND, size=(NUM_PARAMS - split,), dtype=np.int64),
        }
        return cls(tensors, encode_tensors(tensors, _meta(rng)))


@dataclass
class Honest:
    """One coordinator round: the honest round, the round without its first update, and
    the model the honest aggregate becomes."""

    round: Round
    subset: Round
    model: Model

    @classmethod
    def build(cls, rng: random.Random, rule: ChunkRule, previous: Model) -> Honest:
        gen = np.random.default_rng(rng.getrandbits(32))
        deltas = [
            {
                k: gen.integers(-BOUND, BOUND, size=v.shape, dtype=np.int64)
                for k, v in previous.tensors.items()
            }
            for _ in range(3)
        ]
        weights = [rng.randrange(1, 10_000) for _ in range(3)]
        blobs = [encode_tensors(d, _meta(rng)) for d in deltas]
        entries = [Entry.of(b, w, squared_norm(d)) for b, w, d in zip(blobs, weights, deltas, strict=True)]
        tensors = apply_rule(rule, previous.tensors, deltas, weights)
        aggregate = encode_tensors(tensors, _meta(rng))
        dropped = encode_tensors(apply_rule(rule, previous.tensors, deltas[1:], weights[1:]), _meta(rng))
        n = sum(v.size for v in previous.tensors.values())
        return cls(
            round=Round(rule, n, previous.blob, aggregate, blobs, entries),
            subset=Round(rule, n, previous.blob, dropped, blobs[1:], entries[1:]),
            model=Model(tensors, aggregate),
        )

    def result(self) -> tuple[bytes, list[str], int]:
        """The honest (aggregate, excluded, flags)."""
        return (self.round.claim.aggregate_root, [], 0)


@dataclass
class Posted:
    """A claim live in optimistic.vy, as the model knows it."""

    kind: str
    claim: Claim
    proof_round: Round  # the round whose pieces a challenge of this claim resupplies
    excluded: list[str]
    flags: int
    proposer: int
    attempt: int
    final_at: int
    flipped: int = -1  # the coordinate a "flip" lie moved
    escalator: int | None = None
    #: a later round's claim took the job's one record: this one is live no more (escalated, it
    #: waits for `expire` to return the escalator's bond)
    dead: bool = False
    voted: set[int] = field(default_factory=set)
    votes: dict[Any, int] = field(default_factory=dict)

    @property
    def lie(self) -> bool:
        return self.kind != "honest"

    def result(self) -> tuple[bytes, list[str], int]:
        return (self.claim.aggregate_root, list(self.excluded), self.flags)


def make_claim(kind: str, honest: Honest, victim: str, coordinate: int, flags: int) -> tuple[Any, ...]:
    """(claim, proof round, excluded, flags) for a claim of `kind` about `honest`."""
    r = honest.round
    if kind == "honest":
        return r.claim, r, [], 0
    if kind == "flip":
        lie = r.flipped(coordinate, 1 + coordinate % 5)
        return lie.claim, lie, [], 0
    if kind == "offset":
        return replace(r.claim, previous_offset=r.claim.previous_offset + 8), r, [], 0
    return honest.subset.claim, honest.subset, [victim], flags


@dataclass
class JobModel:
    """What the property test knows of one delegated job."""

    id: int
    rule: ChunkRule
    bps: int
    quorum: int
    model: Model
    honest: dict[int, Honest] = field(default_factory=dict)
    posted: dict[int, Posted] = field(default_factory=dict)
    attempt: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    reopened: dict[int, int] = field(default_factory=dict)
    #: claims that left: (round, claim, the revert a proof against it now gets)
    stale: list[tuple[int, Posted, str]] = field(default_factory=list)
    finalised: dict[int, bytes] = field(default_factory=dict)
    released: bool = False
    #: bonds posted so far, the count at the live round's escalation, and each account's number:
    #: only bonds posted before an escalation vote in it
    bonds_posted: int = 0
    roll: int = 0
    bond_seq: dict[int, int] = field(default_factory=dict)

    def bonded(self, who: int) -> None:
        self.bonds_posted += 1
        self.bond_seq[who] = self.bonds_posted

    def escalated(self) -> None:
        self.roll = self.bonds_posted

    def bonded_late(self, who: int) -> bool:
        return self.bond_seq.get(who, 0) > self.roll

    def close(self, rnd: int, reason: str) -> Posted:
        """The round's claim leaves: struck (its id stays, struck) or retired (its hash goes)."""
        p = self.posted.pop(rnd)
        self.attempt[rnd] = p.attempt + 1
        self.stale.append((rnd, p, reason))
        return p


@dataclass
class Ledger:
    """The money optimistic.vy should hold: bonds per (job, account), credits per account."""

    bond: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    owed: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def slash(self, job: JobModel, amount: int, to: int, sponsor: int) -> None:
        bounty = amount * job.bps // 10_000
        self.owed[to] += bounty
        self.owed[sponsor] += amount - bounty

    def strike(self, job: JobModel, rnd: int, by: int, now: int, sponsor: int, bond: int) -> None:
        p = job.close(rnd, "disputes: no such claim")  # struck: no longer live, disputes.vy asks
        amount, self.bond[(job.id, p.proposer)] = self.bond[(job.id, p.proposer)], 0
        self.slash(job, amount, by, sponsor)
        if p.escalator is not None:
            self.owed[p.escalator] += bond  # a proof decided what the vote was for
        job.reopened[rnd] = now

    def decide(self, job: JobModel, rnd: int, result: Any, sponsor: int, bond: int) -> None:
        """A vote reached the quorum: the side it went against loses its bond."""
        p = job.close(rnd, "disputes: no such claim")
        assert p.escalator is not None
        if result == p.result():  # upheld: the escalator's bond goes
            self.slash(job, bond, p.proposer, sponsor)
            return
        amount, self.bond[(job.id, p.proposer)] = self.bond[(job.id, p.proposer)], 0
        self.slash(job, amount, p.escalator, sponsor)
        self.owed[p.escalator] += bond


def proof(disputes: Any, caller: Any, job_id: int, rnd: int, p: Posted, coordinate: int) -> Any:
    """The proof a challenger sends against `p`: an offset refutation for an offset lie, else
    the chunk at `coordinate` (a thunk, for the machine's `_do`)."""
    cid, r = claim_id(job_id, rnd, p.attempt), p.proof_round
    if p.kind == "offset":
        first = (p.claim.num_updates, num_chunks(len(r.previous)), first_piece(r.previous))
        return lambda: disputes.transact(caller, "prove_wrong_offset", cid, p.claim.as_tuple(), [], *first)
    opening = r.opening(coordinate)
    return lambda: disputes.transact(
        caller, "challenge", cid, p.claim.as_tuple(), *opening, r.inputs(coordinate)
    )


ACCS = dev_accounts(11)
SPONSOR, WATCHER = 0, 8
PROPOSERS = [1, 2, 3, 4, 9]  # 9 also escalates and challenges
TRAINERS = [5, 6, 7]
BOND, WINDOW, PROPOSAL, AGG = 5_000, 30, 20, 100
#: (rule, bounty_bps, escalation_quorum) per job; a quorum of 1 gets no dissenting votes
JOBS = [("fedavg", 5_000, 2), ("trimmed_mean", 2_500, 1)]
AGGREGATING, ENDED = Phase.AGGREGATING, (Phase.DONE, Phase.ABORTED)

#: who can ever be owed: the sponsor, proposers, the watcher and account 10 (escalates, challenges)
CREDITED = [SPONSOR, *PROPOSERS, WATCHER, 10]


class Plumbing:
    """The property machine's helpers: jobs, the model's honest rounds, sending with a predicted
    outcome, and what the coordinator would refuse. Mixed into OptimisticMachine."""

    rng: random.Random
    chain: Any
    o: Any
    disputes: Any
    token: Any
    coord: Any
    jobs: list[JobModel]
    counts: Counter[str]
    bond: dict[tuple[int, int], int]
    owed: dict[int, int]
    commit: Any
    propose: Any
    vote: Any
    settle: Any
    payout: Any
    wait: Any

    def _open_job(self, rule: str, bps: int, quorum: int) -> JobModel:
        model = Model.initial(self.rng)
        params = JobParams(
            token=self.token.address, spec_hash=SPEC, initial_model=merkle_root(model.blob), rounds=2,
            min_commits=3, quorum=1, commit_window=100, aggregate_window=AGG, max_failures=1, stake=1_000,
            reward_per_round=1_000, slash_bps=1_000, max_flags=2, committee=[self.o.address], allowlist=[],
        )  # fmt: skip
        job_id, _ = self.coord.create_job(ACCS[SPONSOR], params)
        job = JobModel(job_id, RULES[rule], bps, quorum, model)
        c = self._honest(job, 1).round.claim
        terms = Terms(
            rule=c.rule, trim_num=c.trim_num, trim_den=c.trim_den, clip_q=c.clip_q, num_params=NUM_PARAMS,
            challenge_window=WINDOW, proposal_window=PROPOSAL, aggregate_window=AGG, bond=BOND,
            bounty_bps=bps, escalation_quorum=quorum,
        )  # fmt: skip
        self.o.delegate(ACCS[SPONSOR], job_id, terms)
        for t in TRAINERS:
            self.coord.register(ACCS[t], job_id, as_trainer=True)
        return job

    def _job(self, j: int) -> JobModel:
        return self.jobs[j % len(self.jobs)]

    def _honest(self, job: JobModel, rnd: int) -> Honest:
        if rnd not in job.honest:
            job.honest[rnd] = Honest.build(self.rng, job.rule, job.model)
        return job.honest[rnd]

    def _now(self) -> int:
        return self.chain.timestamp() + self.chain.block_time  # the next transaction's block

    def _do(self, name: str, send: Any, expect: str | None) -> Any:
        self.counts["transactions"] += 1
        try:
            receipt = send()
        except TransactionReverted as e:
            assert e.reason == expect, f"{name}: reverted {e.reason!r}, expected {expect!r}"
            self.counts[f"{name} refused"] += 1
            return None
        assert expect is None, f"{name}: succeeded, expected {expect!r}"
        self.counts[name] += 1
        for log in receipt.logs:
            ev = self.coord.decode(log)
            if ev is not None and ev.name == "RoundFinalized":
                job, rnd = next(x for x in self.jobs if x.id == ev.args["job_id"]), int(ev.args["round"])
                job.finalised[rnd] = bytes(ev.args["aggregate"])
                job.model = self._honest(job, rnd).model  # the invariant checks that it was honest
        return receipt

    def _pick_round(self, job: JobModel, k: int) -> int:
        rounds = sorted(set(job.posted) | {self.coord.job_state(job.id).round})
        return rounds[k % len(rounds)]

    def _coordinator_refuses(self, job: JobModel, rnd: int, now: int) -> str | None:
        """What coordinator.propose would revert with for this contract's proposal, if anything."""
        state = self.coord.job_state(job.id)
        if state.phase != AGGREGATING:
            return "coordinator: round not aggregating"
        if state.round != rnd:
            return "coordinator: wrong round"
        return "coordinator: aggregation window closed" if now > state.deadline else None

    def _prove(self, job: JobModel, rnd: int, p: Posted, by: int, coordinate: int) -> Any:
        return proof(self.disputes, ACCS[by], job.id, rnd, p, coordinate)

    def _progress(self, j: int, job: JobModel) -> None:
        """One move of the machine's `progress` rule (its rules are the moves)."""
        state, now = self.coord.job_state(job.id), self._now()
        if state.phase == Phase.OPEN and not state.commits and now + 2 <= state.deadline:
            return self.commit(j)
        p = job.posted.get(state.round)
        k = sorted(set(job.posted) | {state.round}).index(state.round)
        if state.phase == AGGREGATING and p is None:
            who = next((a for a in PROPOSERS if self.bond[(job.id, a)] >= BOND), PROPOSERS[0])
            kind = KINDS[self.counts["progress"] // len(self.jobs) % len(KINDS)]
            return self.propose(j, who, True, kind, self.counts["progress"] % 8)
        if state.phase == AGGREGATING and p is not None and p.escalator is not None:
            voters = [a for a in PROPOSERS if self.bond[(job.id, a)] >= BOND and a not in p.voted]
            voters = [a for a in voters if a not in (p.proposer, p.escalator) and not job.bonded_late(a)]
            if voters:
                return self.vote(j, k, voters[0], False)
        if state.phase == AGGREGATING and p is not None and p.escalator is None and now > p.final_at:
            return self.settle(j, k)
        if state.phase in ENDED:
            bonded = [a for a in PROPOSERS if self.bond[(job.id, a)]]
            owed = [a for a in CREDITED if self.owed[a]]
            if not job.released or bonded or owed:
                what = "release" if not job.released else "unbond" if bonded else "collect"
                return self.payout(j, what, (bonded or owed or [SPONSOR])[0])
        return self.wait(11, j)
