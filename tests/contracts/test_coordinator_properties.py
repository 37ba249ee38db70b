"""Stateful property test of the coordinator against a Python model of its money.

Random sequences of register / commit / propose (agreeing or dissenting, with or
without exclusions and flags) / advance with time jumps / withdraw / reclaim across
one or two jobs. Every action's outcome (success or the exact revert string) is
predicted from the public views, and after every step:

- the token's totalSupply equals the sum of all balances;
- the coordinator's balance equals, over jobs, pool + stakes held + claimable
  rewards, plus rounding dust that is exactly the model's (>= 0 and < the
  number of accepted commits in finalised rounds);
- for every account, rewards withdrawn + claimable equals its entitlement:
  floor shares of the rounds finalised with its update accepted — so no reward
  for failed/pending/excluded rounds and no double payout;
- each pool equals funding - finalised rewards - validator fees - reclaimed + slashed stakes;
- in the scored job, each finalisation's consensus equals the model's own stake-weighted
  median of the posted scores (one validator always posts the opposite), rewards follow
  it, and every validator fee matches the model's;
- each stake equals the deposit less its slashes (the spec's share, capped at what
  is left), until it is withdrawn; a trainer is ejected at exactly `max_flags`;
- in the sampled job, a commit or proposal succeeds exactly when the Python mirror of the
  draw (`chain/sampling.py`) seats its sender, and the commit phase closes when every
  seat has committed; trainers sitting a round out keep their stake and entitlement.

FEDLEDGER_PROPERTY_EXAMPLES scales the run (default 16 examples x up to 50 steps, < 60 s);
with FEDLEDGER_PROPERTY_REPORT=FILE every example appends its counts (steps checked,
transactions, finalised rounds, slashes, dissent reports) to FILE as JSON lines, which
bench/conservation.py sums to show how many steps the invariants held for.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict

import hypothesis.strategies as st
from coordinator_harness import MAX_UINT256, SPEC, addr_key, h
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from fedledger.chain.base import dev_accounts
from fedledger.chain.contracts import SCORE_ONE, JobParams, Phase, deploy_contracts, unpack_scores
from fedledger.chain.inprocess import InProcessChain
from fedledger.chain.sampling import LANE_COMMITTEE, LANE_TRAINERS, Draw
from fedledger.errors import TransactionReverted
from fedledger.incentives.consensus import settle_scores

EXAMPLES = int(os.environ.get("FEDLEDGER_PROPERTY_EXAMPLES", "10"))  # bench/conservation.py runs 140
STEPS = 50 if EXAMPLES <= 16 else 100

ACCS = dev_accounts(9)  # 0 sponsor | 1..3 committee | 4..8 trainers (1 may train too)
SPONSOR = ACCS[0]
TRAINER_IDX = [1, 4, 5, 6, 7, 8]
PARTICIPANT_IDX = list(range(1, 9))
FUNDS = 10**12

JOBS = [
    dict(
        committee=[1, 2, 3],
        quorum=2,
        min_commits=2,
        rounds=3,
        max_failures=1,
        stake=7,
        reward_per_round=1_000,
        # scored: validators post scores, paid by their stake-weighted median, 15% fee
        scored=True,
        validator_fee_bps=1_500,
        score_tolerance=400,
        slash_bps=6_000,  # 4 of 7, then the 3 left: the cap is exercised
        max_flags=3,
        commit_window=100,
        aggregate_window=50,
        allowlist=[],
    ),
    dict(
        committee=[2, 3],
        quorum=2,
        min_commits=1,
        rounds=2,
        max_failures=0,
        stake=0,
        reward_per_round=777,
        slash_bps=10_000,
        max_flags=1,
        commit_window=60,
        aggregate_window=30,
        allowlist=[1, 4, 5, 6],
    ),
    dict(
        # sampled (issue 15): 2 trainers and a committee of 3 drawn each round from the trainers
        committee=[],
        quorum=2,
        min_commits=1,
        rounds=3,
        max_failures=2,
        stake=5,
        reward_per_round=900,
        slash_bps=5_000,
        max_flags=2,
        commit_window=80,
        aggregate_window=40,
        allowlist=[],
        clients_per_round=2,
        validators_per_round=3,
    ),
]

# (aggregate label, what happens to the lowest committer: 0 nothing, 1 excluded, 2 flagged)
PROPOSALS = st.sampled_from([("A", 0), ("A", 0), ("A", 1), ("A", 2), ("B", 0), ("B", 2)])


class CoordinatorMachine(RuleBasedStateMachine):
    @initialize(n_jobs=st.sampled_from([1, 2, 3, 3]), preregister=st.sampled_from([True, True, True, False]))
    def setup(self, n_jobs: int, preregister: bool) -> None:
        self.chain = InProcessChain()
        self.d = deploy_contracts(self.chain, SPONSOR)
        self.coord, self.token = self.d.coordinator, self.d.token
        for a in ACCS:
            self.token.mint(SPONSOR, a.address, FUNDS)
            self.token.approve(a, self.coord.address, MAX_UINT256)
        self.jobs: dict[int, dict] = {}
        for i in range(n_jobs):
            cfg = JOBS[i]
            params = JobParams(
                token=self.token.address,
                spec_hash=SPEC,
                initial_model=h(f"m0:{i}"),
                rounds=cfg["rounds"],
                min_commits=cfg["min_commits"],
                quorum=cfg["quorum"],
                commit_window=cfg["commit_window"],
                aggregate_window=cfg["aggregate_window"],
                max_failures=cfg["max_failures"],
                stake=cfg["stake"],
                reward_per_round=cfg["reward_per_round"],
                slash_bps=cfg["slash_bps"],
                max_flags=cfg["max_flags"],
                scored=cfg.get("scored", False),
                validator_fee_bps=cfg.get("validator_fee_bps", 0),
                score_tolerance=cfg.get("score_tolerance", 0),
                committee=[ACCS[k].address for k in cfg["committee"]],
                allowlist=[ACCS[k].address for k in cfg["allowlist"]],
                clients_per_round=cfg.get("clients_per_round", 0),
                validators_per_round=cfg.get("validators_per_round", 0),
            )
            job_id, r = self.coord.create_job(SPONSOR, params)
            self.jobs[job_id] = cfg
            self._observe(r)
        # model
        self.commits: dict[tuple[int, int], dict[str, int]] = defaultdict(
            dict
        )  # (job, round) -> trainer -> ex
        self.excluded: dict[tuple[int, int], set[str]] = defaultdict(set)
        # (job, round) -> (round reward, accepted weight, trainer -> weight)
        self.finalized: dict[tuple[int, int], tuple[int, int, dict[str, int]]] = {}
        self.posted: dict[tuple[int, int, str], tuple[bytes, list[int]]] = {}  # -> (proposal, scores)
        self.settled: list[int] | None = None  # the last ScoresSettled consensus
        self.fees: dict[tuple[int, str], int] = defaultdict(int)
        self.fees_withdrawn: dict[tuple[int, str], int] = defaultdict(int)
        self.fee_total: dict[int, int] = defaultdict(int)
        self.stake_returned: set[tuple[int, str]] = set()
        self.votes: dict[tuple[int, int, bytes], int] = defaultdict(int)
        self.proposed: set[tuple[int, int, str]] = set()
        self.withdrawn_reward: dict[tuple[int, str], int] = defaultdict(int)
        self.reclaimed: dict[int, int] = defaultdict(int)
        self.slashed: dict[tuple[int, str], int] = defaultdict(int)
        self.flags: dict[tuple[int, str], int] = defaultdict(int)
        self.ejected: set[tuple[int, str]] = set()
        self.proposal_of: dict[tuple[int, int, str], tuple] = {}
        self.dissent_reported: set[tuple[int, int, str]] = set()
        self.withdrawals = 0
        self.outside_sample = 0  # commits refused because the draw did not seat the trainer
        self.txs = 0
        if preregister:
            for job_id, cfg in self.jobs.items():
                for k in cfg["committee"]:
                    self._do(
                        lambda k=k, j=job_id: self.coord.register(ACCS[k], j, as_trainer=False),
                        None,
                    )
                for k in (4, 5, 6):
                    self._do(lambda k=k, j=job_id: self.coord.register(ACCS[k], j, as_trainer=True), None)
                    self._enrol(job_id, k)
                if self._sampled(job_id):
                    self._do(lambda j=job_id: self.d.sampler.start(SPONSOR, j), None)

    # -- plumbing ----------------------------------------------------------------------------

    def _do(self, send, expect: str | None):
        try:
            receipt = send()
        except TransactionReverted as e:
            assert expect is not None, f"unexpected revert: {e.reason}"
            assert e.reason == expect
            return None
        assert expect is None, f"expected revert {expect!r}, but it succeeded"
        self.txs += 1
        self._observe(receipt)
        return receipt

    def _observe(self, receipt) -> None:
        for log in receipt.logs:
            ev = self.coord.decode(log)
            if ev is None:
                continue
            a = ev.args
            if ev.name == "UpdateCommitted":
                self.commits[(a["job_id"], a["round"])][a["trainer"]] = a["num_examples"]
            elif ev.name == "UpdateExcluded":
                self.excluded[(a["job_id"], a["round"])].add(a["trainer"])
            elif ev.name == "AggregateProposed":
                n = len(self.commits[(a["job_id"], a["round"])]) if a["scores"] else 0
                self.posted[(a["job_id"], a["round"], a["validator"])] = (
                    a["proposal"],
                    unpack_scores(a["scores"], n),
                )
            elif ev.name == "ScoresSettled":
                self.settled = unpack_scores(a["scores"], len(self.commits[(a["job_id"], a["round"])]))
            elif ev.name == "ValidatorRewarded":
                self.fees[(a["job_id"], a["validator"])] += a["amount"]
                self.fee_total[a["job_id"]] += a["amount"]
            elif ev.name == "RoundFinalized":
                key = (a["job_id"], a["round"])
                cfg = self.jobs[a["job_id"]]
                accepted = {t: ex for t, ex in self.commits[key].items() if t not in self.excluded[key]}
                assert a["accepted_commits"] == len(accepted)
                reward = cfg["reward_per_round"]
                if cfg.get("scored"):
                    # the model's own settlement, in committee order, stakes after slashes so far
                    voters = [
                        ACCS[k].address
                        for k in cfg["committee"]
                        if self.posted.get((*key, ACCS[k].address), (b"",))[0] == a["proposal"]
                    ]
                    fee = reward * cfg["validator_fee_bps"] // 10_000
                    settled = settle_scores(
                        [self.posted[(*key, v)][1] for v in voters],
                        [cfg["stake"] - self.slashed[(key[0], v)] for v in voters],
                        tolerance=cfg["score_tolerance"],
                        fee=fee,
                    )
                    assert self.settled == settled.consensus
                    weights = dict(zip(self.commits[key], settled.consensus, strict=True))
                    reward = (reward - fee) if settled.total else 0
                    self.settled = None
                else:
                    weights = dict(accepted)
                assert a["accepted_weight"] == sum(weights.values())
                assert a["reward"] == reward
                self.finalized[key] = (reward, a["accepted_weight"], weights)
            elif ev.name == "RoundFailed":
                assert (a["job_id"], a["round"]) not in self.finalized
            elif ev.name == "Withdrawn":
                self.withdrawn_reward[(a["job_id"], a["account"])] += a["reward"]
                self.fees_withdrawn[(a["job_id"], a["account"])] += a["fees"]
                if a["stake"] > 0:
                    self.stake_returned.add((a["job_id"], a["account"]))
            elif ev.name == "PoolReclaimed":
                self.reclaimed[a["job_id"]] += a["amount"]
            elif ev.name == "TrainerSlashed":
                key = (a["job_id"], a["trainer"])
                cfg = self.jobs[a["job_id"]]
                left = cfg["stake"] - self.slashed[key]
                assert a["amount"] == min(cfg["stake"] * cfg["slash_bps"] // 10_000, left)
                self.slashed[key] += a["amount"]
                self.flags[key] += 1
                assert a["flags"] == self.flags[key]
            elif ev.name == "ValidatorSlashed":
                key = (a["job_id"], a["validator"])
                cfg = self.jobs[a["job_id"]]
                # a dissent reported after the validator took its stake back finds nothing to slash
                left = 0 if key in self.stake_returned else cfg["stake"] - self.slashed[key]
                assert a["amount"] == min(cfg["stake"] * cfg["slash_bps"] // 10_000, left)
                self.slashed[key] += a["amount"]
            elif ev.name == "TrainerEjected":
                key = (a["job_id"], a["trainer"])
                assert self.flags[key] == self.jobs[a["job_id"]]["max_flags"] and key not in self.ejected
                self.ejected.add(key)

    def _sampled(self, job_id: int) -> bool:
        return bool(self.jobs[job_id].get("clients_per_round"))

    def _enrol(self, job_id: int, who: int) -> None:
        if self._sampled(job_id):
            self._do(lambda: self.d.sampler.enrol(ACCS[who], job_id), None)

    def _validators(self, job_id: int) -> list[int]:
        """Who may try to propose: the fixed committee, or in the sampled job every trainer."""
        return TRAINER_IDX if self._sampled(job_id) else self.jobs[job_id]["committee"]

    def _draw(self, job_id: int, rnd: int) -> Draw | None:
        r, seed, n, clients, validators = self.d.sampler.draw_state(job_id)
        if r != rnd:
            return None
        return Draw(round=r, seed=seed, enrolled=n, clients=clients, validators=validators)

    def _seat(self, job_id: int, rnd: int, address: str, lane: int) -> int | None:
        """The account's seat in the round's draw by the Python mirror, or None."""
        d = self._draw(job_id, rnd)
        if d is None:
            return None
        for seat, index in enumerate(d.seats(lane)):
            if index is not None and self.d.sampler.trainer_at(job_id, index) == address:
                return seat
        return None

    def _next_ts(self) -> int:
        return self.chain.timestamp() + self.chain.block_time

    def _entitlement(self, job_id: int, account: str) -> int:
        total = 0
        for (j, rnd), (reward, weight, weights) in self.finalized.items():
            if j != job_id:
                continue
            w = weights.get(account)
            if w and account not in self.excluded[(j, rnd)]:
                total += reward * w // weight
        return total

    def _dust(self) -> tuple[int, int]:
        dust = bound = 0
        for (j, rnd), (reward, weight, weights) in self.finalized.items():
            shares = [
                reward * w // weight for t, w in weights.items() if t not in self.excluded[(j, rnd)] and w
            ]
            dust += reward - sum(shares)
            bound += len(shares)
        return dust, bound

    # -- rules -------------------------------------------------------------------------------

    @rule(data=st.data(), who=st.sampled_from(PARTICIPANT_IDX), as_trainer=st.booleans())
    def register(self, data, who: int, as_trainer: bool) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        cfg, acct = self.jobs[job_id], ACCS[who]
        phase = self.coord.job_state(job_id).phase
        is_member = who in cfg["committee"]
        expect = None
        if phase not in (Phase.OPEN, Phase.AGGREGATING):
            expect = "coordinator: job not running"
        elif not as_trainer and not is_member:
            expect = "coordinator: not a committee member"
        elif (job_id, acct.address) in self.ejected:
            expect = "coordinator: trainer ejected"
        elif self.coord.trainer_state(job_id, acct.address).registered or self.coord.is_validator(
            job_id, acct.address
        ):
            expect = "coordinator: already registered"
        elif as_trainer and cfg["allowlist"] and who not in cfg["allowlist"]:
            expect = "coordinator: not on allowlist"
        if self._do(lambda: self.coord.register(acct, job_id, as_trainer=as_trainer), expect) is not None:
            self._enrol(job_id, who)

    @rule(data=st.data())
    def start(self, data) -> None:
        """The sponsor draws an open round that opened before anyone enrolled."""
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        s = self.coord.job_state(job_id)
        expect = None
        if s.phase != Phase.OPEN:
            expect = "sampler: round not open"
        elif self._draw(job_id, s.round) is not None:
            expect = "sampler: round already drawn"
        elif self.d.sampler.enrolled(job_id) == 0:
            expect = "sampler: nobody to draw"
        self._do(lambda: self.d.sampler.start(SPONSOR, job_id), expect)

    @rule(data=st.data(), who=st.sampled_from(TRAINER_IDX), examples=st.integers(1, 1_000))
    def commit(self, data, who: int, examples: int) -> None:
        self._commit(data.draw(st.sampled_from(sorted(self.jobs))), who, examples)

    def _commit(self, job_id: int, who: int, examples: int) -> None:
        acct = ACCS[who]
        s = self.coord.job_state(job_id)
        t = self.coord.trainer_state(job_id, acct.address)
        expect = None
        if s.phase != Phase.OPEN:
            expect = "coordinator: round not open"
        elif self._next_ts() > s.deadline:
            expect = "coordinator: commit window closed"
        elif (job_id, acct.address) in self.ejected:
            expect = "coordinator: trainer ejected"
        elif not t.registered:
            expect = "coordinator: not a registered trainer"
        elif t.last_round == s.round:
            expect = "coordinator: already committed"
        seat = self._seat(job_id, s.round, acct.address, LANE_TRAINERS) if self._sampled(job_id) else 0
        if expect is None and seat is None:
            expect = "sampler: not in the sample"
            self.outside_sample += 1
        r = self._do(
            lambda: self.coord.commit(
                acct, job_id, s.round, h(f"{job_id}:{s.round}:{who}"), examples, seat or 0
            ),
            expect,
        )
        if r is not None:
            after = self.coord.job_state(job_id)
            min_commits = int(self.coord.job_config(job_id)["min_commits"])
            wanted = s.trainers
            if self._sampled(job_id):
                d = self._draw(job_id, s.round)
                assert d is not None
                wanted = min(d.clients, d.enrolled)
            closed = s.commits + 1 == wanted and s.commits + 1 >= min_commits
            assert after.phase == (Phase.AGGREGATING if closed else Phase.OPEN)

    @rule(data=st.data(), examples=st.lists(st.integers(1, 1_000), min_size=6, max_size=6))
    def commit_all(self, data, examples: list[int]) -> None:
        """Every trainer tries to commit, in order (batched commits reach aggregation often)."""
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        for who, ex in zip(TRAINER_IDX, examples, strict=True):
            self._commit(job_id, who, ex)

    @rule(
        data=st.data(),
        examples=st.lists(st.integers(1, 1_000), min_size=6, max_size=6),
        proposal=PROPOSALS,
    )
    def full_round(self, data, examples: list[int], proposal: tuple[str, int]) -> None:
        """commit_all then propose_all: the happy path, still predicted step by step."""
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        for who, ex in zip(TRAINER_IDX, examples, strict=True):
            self._commit(job_id, who, ex)
        for who in self._validators(job_id):
            self._propose(job_id, who, proposal)

    @rule(data=st.data(), proposal=PROPOSALS)
    def propose_all(self, data, proposal: tuple[str, int]) -> None:
        """Every committee member tries to propose the same result (batched `propose`s)."""
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        for who in self._validators(job_id):
            self._propose(job_id, who, proposal)

    @rule(data=st.data(), who=st.sampled_from([1, 2, 3, 4, 5]), proposal=PROPOSALS)
    def propose(self, data, who: int, proposal: tuple[str, int]) -> None:
        self._propose(data.draw(st.sampled_from(sorted(self.jobs))), who, proposal)

    def _propose(self, job_id: int, who: int, proposal: tuple[str, int]) -> None:
        cfg, acct = self.jobs[job_id], ACCS[who]
        s = self.coord.job_state(job_id)
        label, mode = proposal
        committers = sorted(self.commits[(job_id, s.round)], key=addr_key)
        excluded = committers[:1] if mode else []
        flagged = excluded if mode == 2 else []
        aggregate = h(f"{job_id}:{s.round}:{label}")
        expect = None
        if s.phase != Phase.AGGREGATING:
            expect = "coordinator: round not aggregating"
        elif self._next_ts() > s.deadline:
            expect = "coordinator: aggregation window closed"
        seat = 0
        if self._sampled(job_id):
            seat = self._seat(job_id, s.round, acct.address, LANE_COMMITTEE)
        if expect is not None:
            pass
        elif seat is None or not (self._sampled(job_id) or self.coord.is_validator(job_id, acct.address)):
            expect = "coordinator: not a registered validator"
        elif (job_id, s.round, acct.address) in self.proposed:
            expect = "coordinator: already proposed"
        scores: list[int] = []
        if cfg.get("scored"):
            # honest-ish scores near a per-round truth, one validator (3) biased; 0 for excluded
            rng = random.Random(f"{job_id}:{s.round}")
            truth = [rng.randrange(SCORE_ONE + 1) for _ in self.commits[(job_id, s.round)]]
            noise = random.Random(f"{job_id}:{s.round}:{who}")
            scores = [
                0
                if t in excluded
                else SCORE_ONE - x
                if who == 3
                else min(SCORE_ONE, x + noise.randrange(300))
                for t, x in zip(self.commits[(job_id, s.round)], truth, strict=True)
            ]
        r = self._do(
            lambda: self.coord.propose(
                acct, job_id, s.round, aggregate, excluded, flagged, scores, seat=seat or 0
            ),
            expect,
        )
        if r is None:
            return
        self.proposed.add((job_id, s.round, acct.address))
        key = (job_id, s.round, aggregate + b"".join(bytes.fromhex(a[2:]) for a in excluded) + bytes([mode]))
        self.votes[key] += 1
        self.proposal_of[(job_id, s.round, acct.address)] = key
        names = [e.name for e in self.coord.events_in(r)]
        prop = next(e.args for e in self.coord.events_in(r) if e.name == "AggregateProposed")
        assert prop["votes"] == self.votes[key]
        if self.votes[key] < cfg["quorum"]:
            assert names == ["AggregateProposed"]
        else:
            accepted = len(committers) - len(excluded)
            if accepted >= cfg["min_commits"]:
                assert "RoundFinalized" in names
                assert self.coord.global_model(job_id) == aggregate
            else:
                assert "RoundFailed" in names

    @rule(data=st.data(), examples=st.lists(st.integers(1, 1_000), min_size=6, max_size=6))
    def contested_round(self, data, examples: list[int]) -> None:
        """One committee member proposes another result, the rest agree; then it is reported."""
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        for who, ex in zip(TRAINER_IDX, examples, strict=True):
            self._commit(job_id, who, ex)
        rnd = self.coord.job_state(job_id).round
        liar, *rest = self._validators(job_id)
        self._propose(job_id, liar, ("B", 0))
        for who in rest:
            self._propose(job_id, who, ("A", 0))
        self._report(job_id, rnd, liar)

    @rule(data=st.data(), who=st.sampled_from([1, 2, 3]))
    def report_dissent(self, data, who: int) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        rnd = data.draw(st.integers(1, max(1, self.coord.job_state(job_id).round)))
        self._report(job_id, rnd, who)

    def _report(self, job_id: int, rnd: int, who: int) -> None:
        addr = ACCS[who].address
        key = self.proposal_of.get((job_id, rnd, addr))
        expect = None
        if (job_id, rnd) not in self.finalized:
            expect = "coordinator: round not finalized"
        elif key is None or (job_id, rnd, addr) in self.dissent_reported:
            expect = "coordinator: no proposal to dispute"
        elif self.votes[key] >= self.jobs[job_id]["quorum"]:
            expect = "coordinator: proposal agreed with quorum"
        if self._do(lambda: self.coord.report_dissent(ACCS[7], job_id, rnd, addr), expect) is not None:
            self.dissent_reported.add((job_id, rnd, addr))

    @rule(data=st.data(), dt=st.sampled_from([0, 1, 5, 29, 31, 59, 61, 101, 1_000]))
    def advance(self, data, dt: int) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        if dt:
            self.chain.increase_time(dt)
        s = self.coord.job_state(job_id)
        expect = None
        if s.phase not in (Phase.OPEN, Phase.AGGREGATING):
            expect = "coordinator: job not running"
        elif self._next_ts() <= s.deadline:
            expect = "coordinator: phase not expired"
        r = self._do(lambda: self.coord.advance(ACCS[0], job_id), expect)
        if r is not None:
            names = [e.name for e in self.coord.events_in(r)]
            if s.phase == Phase.OPEN and s.commits >= self.jobs[job_id]["min_commits"]:
                assert names == ["CommitsClosed"]
            else:
                assert names[0] == "RoundFailed"

    @rule(data=st.data(), who=st.sampled_from(PARTICIPANT_IDX))
    def withdraw(self, data, who: int) -> None:
        self._withdraw(data.draw(st.sampled_from(sorted(self.jobs))), who)

    @rule(data=st.data())
    def withdraw_all(self, data) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        for who in PARTICIPANT_IDX:
            self._withdraw(job_id, who)

    def _withdraw(self, job_id: int, who: int) -> None:
        acct = ACCS[who]
        ended = self.coord.job_state(job_id).phase in (Phase.DONE, Phase.ABORTED)
        reward = self.coord.claimable(job_id, acct.address)
        stake = self.coord.stake_of(job_id, acct.address) if ended else 0
        before = self.token.balance_of(acct.address)
        ts = self.coord.trainer_state(job_id, acct.address)
        # an ended job's record is folded into the trainer's reputation once, even with nothing to pay
        folds = ended and not ts.folded and (ts.registered or ts.ejected or ts.last_round > 0)
        jobs_before = self.coord.reputation(acct.address).jobs
        expect = "coordinator: nothing to withdraw" if reward + stake == 0 and not folds else None
        r = self._do(lambda: self.coord.withdraw(acct, job_id), expect)
        if r is None:
            return
        self.withdrawals += 1
        ev = next(e.args for e in self.coord.events_in(r) if e.name == "Withdrawn")
        assert (ev["reward"] + ev["fees"], ev["stake"]) == (reward, stake)
        assert self.coord.reputation(acct.address).jobs == jobs_before + int(folds)
        assert self.token.balance_of(acct.address) == before + reward + stake
        # withdrawing again pays nothing
        self._do(lambda: self.coord.withdraw(acct, job_id), "coordinator: nothing to withdraw")

    @rule(data=st.data(), sponsor=st.sampled_from([True, True, True, False]))
    def reclaim(self, data, sponsor: bool) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        caller = SPONSOR if sponsor else ACCS[4]
        phase = self.coord.job_state(job_id).phase
        expect = None
        if not sponsor:
            expect = "coordinator: caller is not the sponsor"
        elif phase not in (Phase.DONE, Phase.ABORTED):
            expect = "coordinator: job not ended"
        elif self.coord.pool(job_id) == 0:
            expect = "coordinator: pool is empty"
        self._do(lambda: self.coord.reclaim(caller, job_id), expect)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def money_is_conserved(self) -> None:
        if not hasattr(self, "jobs"):
            return
        self.steps = getattr(self, "steps", 0) + 1
        holders = [a.address for a in ACCS] + [self.coord.address]
        balances = {a: self.token.balance_of(a) for a in holders}
        assert self.token.total_supply() == sum(balances.values()) == FUNDS * len(ACCS)
        held = 0
        for job_id, cfg in self.jobs.items():
            pool = self.coord.pool(job_id)
            n_final = sum(1 for (j, _) in self.finalized if j == job_id)
            slashed = sum(v for (j, _), v in self.slashed.items() if j == job_id)
            paid = sum(rw for (j, _), (rw, _, _) in self.finalized.items() if j == job_id)
            funded = cfg["reward_per_round"] * cfg["rounds"] - paid - self.fee_total[job_id]
            assert n_final <= cfg["rounds"]
            assert pool == funded - self.reclaimed[job_id] + slashed
            held += pool
            for k in PARTICIPANT_IDX:
                a = ACCS[k].address
                stake = self.coord.stake_of(job_id, a)
                assert stake in (0, cfg["stake"] - self.slashed[(job_id, a)])
                claimable = self.coord.claimable(job_id, a)
                fees = self.coord.fees_of(job_id, a)
                assert fees == self.fees[(job_id, a)] - self.fees_withdrawn[(job_id, a)]
                assert self.withdrawn_reward[(job_id, a)] + claimable - fees == self._entitlement(job_id, a)
                held += stake + claimable
        dust, bound = self._dust()
        assert balances[self.coord.address] - held == dust
        assert dust >= 0
        assert dust == 0 or dust < bound

    def teardown(self) -> None:
        report = os.environ.get("FEDLEDGER_PROPERTY_REPORT")
        if report and hasattr(self, "jobs"):
            with open(report, "a") as f:
                f.write(
                    json.dumps(
                        {
                            "steps": getattr(self, "steps", 0),
                            "transactions": self.txs,
                            "finalized_rounds": len(self.finalized),
                            "slashes": sum(self.flags.values()),
                            "ejections": len(self.ejected),
                            "dissent_reports": len(self.dissent_reported),
                            "withdrawals": self.withdrawals,
                        }
                    )
                    + "\n"
                )
        if hasattr(self, "jobs"):  # coverage of the interesting paths, shown by --hypothesis-show-statistics
            event(f"finalised rounds: {min(len(self.finalized), 3)}+")
            event(f"withdrawals: {min(self.withdrawals, 3)}+")
            event(f"reclaimed: {any(self.reclaimed.values())}")
            event(f"successful transactions: {min(self.txs // 10 * 10, 50)}+")
            event(f"exclusions: {bool(any(self.excluded.values()))}")
            event(f"slashes: {min(len(self.flags), 2)}+, ejections: {min(len(self.ejected), 1)}+")
            event(f"dissent reported: {bool(self.dissent_reported)}")
            scored = sum(1 for (j, _) in self.finalized if self.jobs[j].get("scored"))
            event(f"scored rounds finalised: {min(scored, 2)}+, fees paid: {bool(self.fee_total)}")
            sampled = sum(1 for (j, _) in self.finalized if self.jobs[j].get("clients_per_round"))
            event(f"sampled rounds finalised: {min(sampled, 2)}+, commits refused outside the sample: "
                  f"{min(self.outside_sample, 1)}+")  # fmt: skip


TestCoordinatorMachine = CoordinatorMachine.TestCase
TestCoordinatorMachine.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
