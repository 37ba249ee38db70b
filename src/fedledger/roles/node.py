"""One organisation's long-running process: its trainer and validator roles, driven by chain state.

The node keeps no state of its own that matters: every pass reads the job from the chain
and does what is missing — register, train and commit if it has not committed this round,
compute and propose if it is a validator that has not proposed, advance an expired phase,
withdraw at the end. So it can be killed and restarted at any moment: it resumes from the
chain with no double commit (the contract would refuse one anyway). What it does keep in
memory only saves work: an update trained but not yet committed when the chain or its store
went away is committed as it is once they are back, not trained again.

On a chain that can reorganise, `confirmations` makes the node act only on state that many
blocks deep: it reads the contract at `head - confirmations`, so an event that a reorg
drops is never acted on. Transactions still go to the head.

This module is the event loop, top to bottom: startup (`Node.__init__`), the retrying
loop (`run`) and the one pass it repeats (`step`). The steps live by purpose: the startup
checks and joining in `node_join.py`, the trainer side in `node_training.py`, the
validator side in `node_validation.py`, the config file in `node_config.py`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fedledger.chain.contracts import Coordinator, JobState, Phase
from fedledger.chain.wakeup import PollWakeup
from fedledger.errors import ChainUnavailable, StoreError, TransactionReverted
from fedledger.roles.job import JobReader
from fedledger.roles.keys import load_key
from fedledger.roles.node_config import DataConfig, NodeConfig
from fedledger.roles.node_join import (
    check_spec,
    connect,
    enrol,
    find_sampler,
    identify,
    join_job,
    open_stores,
    open_wakeup,
)
from fedledger.roles.node_optimistic import NodeOptimistic
from fedledger.roles.node_speculation import LiveClaims
from fedledger.roles.node_status import round_status
from fedledger.roles.node_trace import NodeTrace
from fedledger.roles.node_training import NodeTraining
from fedledger.roles.node_validation import NodeValidation
from fedledger.roles.sampling import RoundSeats, round_seats
from fedledger.spec import JobSpec

if TYPE_CHECKING:
    from fedledger.data.commitment import Opening

__all__ = ["ADVANCE_GAS", "DataConfig", "Node", "NodeConfig"]

log = logging.getLogger("fedledger.node")

#: enough for the costliest `advance` (closing a commit phase or failing a round) with room
#: to spare; sent without estimation, see `Coordinator.advance`
ADVANCE_GAS = 400_000


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.coordinator = connect(config)
        self.chain = self.coordinator.chain
        self.account = load_key(config.key)
        self.spec = JobSpec.load(config.spec)
        job_config = self.coordinator.job_config(config.job)
        check_spec(config, self.spec, job_config)
        self.sampler = find_sampler(self.coordinator, self.spec)
        self.seats: dict[int, RoundSeats] = {}  # drawn rounds' seats (a draw never changes)
        self.name, self.sponsor = identify(config, self.spec, job_config, self.account)
        self.store = open_stores(config, self.account, self.spec)
        # the heavy imports (torch, the datasets) come after the cheap checks, so a mistake in
        # the config is reported in a second, not after loading a deep-learning stack
        from fedledger.data.sources import DataSource
        from fedledger.roles.node_roles import build_roles

        self.trainer, self.validator, self.local = build_roles(
            job=config.job,
            organisation=config.organisation,
            root=config.root,
            data=DataSource(config.data.source, config.data.query) if config.data else None,
            spec=self.spec,
            name=self.name,
            account=self.account,
            coordinator=self.coordinator,
            store=self.store,
            sponsor=self.sponsor,
        )
        self.opening: Opening | None = None
        if self.local is not None and config.trainer and config.data is not None:
            from fedledger.roles.data_commitment import node_opening

            # before registering: a source that changed since its commitment stops the node here
            self.opening = node_opening(
                config.data.opening or Path(f"{self.name}.job{config.job}.opening.json"),
                self.local.data,
                self.spec,
                organisation=self.name,
                source=DataSource(config.data.source, config.data.query),
            )
        self.reader = JobReader(self.coordinator, config.job, confirmations=config.confirmations)
        self.trace = NodeTrace(
            config.trace,
            self.account.address,
            counters=lambda: {"rpc": getattr(self.chain, "requests", 0), "cpu": time.process_time()},
        )
        self.training = NodeTraining(
            name=self.name,
            job=config.job,
            spec=self.spec,
            chain=self.chain,
            trainer=self.trainer,
            reader=self.reader,
            trace=self.trace,
            join_wait_s=config.join_wait_s,
        )
        self.validation = NodeValidation(
            name=self.name,
            job=config.job,
            spec=self.spec,
            coordinator=self.coordinator,
            store=self.store,
            validator=self.validator,
            reader=self.reader,
            availability_wait_s=config.availability_wait_s,
            trace=self.trace,
        )
        self.optimistic: NodeOptimistic | None = None
        if self.spec.optimistic and config.validator:  # a bonded proposer of optimistic.vy
            self.optimistic = NodeOptimistic(
                name=self.name,
                job=config.job,
                spec=self.spec,
                account=self.account,
                coordinator=self.coordinator,
                store=self.store,
                validation=self.validation,
                reader=self.reader,
                fault=(config.testing_fault, config.testing_fault_from_round)
                if config.testing_fault
                else None,
            )
        # an optimistic job's trainer off the committee trains ahead on the posted claim
        self.claims: LiveClaims | None = None
        if self.spec.optimistic and self.optimistic is None:
            self.claims = LiveClaims(self.coordinator, self.reader, config.job)
        self.worked = False  # whether the last step did something (then the next comes at once)
        self.reported: set[int] = set()  # rounds whose outcome has been logged
        self.trains = config.trainer  # False once a secure job's key directory turned us away
        self.member = False  # a registered member of the job's fixed committee

    def run(self, max_seconds: float | None = None) -> None:
        """Steps until the job ends; an unreachable chain or store is retried with backoff, never fatal.

        Between passes with nothing to do it waits on `self.wakeup` (`chain/wakeup.py`): a pushed
        coordinator event ends the wait at once, the poll timer otherwise. The pass itself reads
        everything from the chain either way, so a lost push only costs time.
        """
        wakeup = open_wakeup(self.config, self.coordinator)
        try:
            self._loop(wakeup, max_seconds)
        except BaseException:
            self.validation.close(wait=False)  # interrupted: do not wait for a proposal in flight
            raise
        else:
            self.validation.close()
        finally:
            wakeup.close()

    def _loop(self, wakeup: PollWakeup, max_seconds: float | None) -> None:
        start, backoff = time.monotonic(), self.config.poll_seconds
        registered = False
        while max_seconds is None or time.monotonic() - start < max_seconds:
            try:
                if not registered:
                    self.ensure_registered()
                    self.ensure_data_committed()
                    registered = True
                self.worked = False
                if not self.step():
                    return
                backoff = self.config.poll_seconds
                if not self.worked:
                    wakeup.wait()
                continue  # worked: what it did may have moved the job on, look again at once
            except ChainUnavailable as exc:
                log.warning("%s: chain unreachable (%s); retrying in %.1f s", self.name, exc, backoff)
                backoff = min(backoff * 2, 10.0)
            except StoreError as exc:
                log.warning("%s: blob store failed (%s); retrying in %.1f s", self.name, exc, backoff)
                backoff = min(backoff * 2, 10.0)
            time.sleep(backoff)

    # -- before the first round --------------------------------------------------------------

    def ensure_registered(self) -> None:
        """Registers and stakes once; a node let in as a validator only stops training."""
        if self.optimistic is not None:
            self.optimistic.ready()  # bonds before the first round's draw, if delegated by now
            if not self.config.trainer:
                self.trains = False  # a proposer only: optimistic.vy holds its bond, no stake here
                return
        may_train = join_job(self.coordinator, self.account, self.trainer, self.config, self.spec, self.name)
        self.trains = self.trains and may_train
        if self.sampler is not None and self.trains:
            # a sampling job draws from the enrolled trainers, in enrolment order (`sampler.vy`)
            enrol(self.sampler, self.account, self.config.job, self.name)

    def ensure_data_committed(self) -> None:
        """Own data: posts this trainer's data commitment once, before its first update."""
        if self.opening is None or not self.trains:
            return
        from fedledger.roles.data_commitment import post_data_commitment

        post_data_commitment(
            self.coordinator.data_registry(),
            self.account,
            self.config.job,
            self.opening.commitment,
            name=self.name,
        )

    # -- one pass ----------------------------------------------------------------------------

    def view(self) -> Coordinator:
        """The coordinator as of `confirmations` blocks below the head."""
        if not self.config.confirmations:
            return self.coordinator
        return self.coordinator.at(max(self.chain.block_number() - self.config.confirmations, 0))

    def step(self) -> bool:
        """Does what the job's current state asks of this node; False once the job has ended."""
        self.validation.settle()  # a proposal sent ahead on the last pass: its outcome, if in
        view = self.view()
        s = view.job_state(self.config.job)
        if s.running:
            self.trace.first("open_seen" if s.phase == Phase.OPEN else "aggregating_seen", s.round)
        if s.phase in (Phase.DONE, Phase.ABORTED):
            self.report_rounds(s)
            self.finish()
            return False
        self.act(s, view)
        # the status lines read the event log: on a pass that did nothing, so that this read is
        # never between a round opening (or its commits closing) and this node's part in it
        if not self.worked:
            self.report_rounds(s)
        return True

    def round_seats(self, round: int) -> RoundSeats:
        """This round's draw (`roles/sampling.py`); everyone's part in a job that samples nothing.

        Kept once drawn (a round's draw never changes); before the draw nobody is seated, and
        the next pass looks again.
        """
        if round in self.seats:
            return self.seats[round]
        seats = round_seats(self.sampler, self.config.job, round)
        if self.sampler is None or seats.trainers or seats.committee:
            self.seats[round] = seats
            me = self.account.address
            if self.sampler is not None:
                parts = [f"trains in seat {seats.trainers[me]}"] if me in seats.trainers else []
                parts += [f"on the committee in seat {seats.committee[me]}"] if me in seats.committee else []
                log.info("%s: round %d drawn: %s", self.name, round, ", ".join(parts) or "not drawn, waits")
        return seats

    def act(self, s: JobState, view: Coordinator) -> None:
        """The one thing this pass should do, if any: train and commit, reveal, propose, advance."""
        job, me = self.config.job, self.account.address
        expired = self.chain.now() > s.deadline
        seats = self.round_seats(s.round)
        # ejected, or its records' budget spent, or not drawn to train this round
        trains = self.trains and not self.trainer.stopped and seats.trains(me)
        # FLTrust's root update waits for `min_commits` trainers: committed first, it could close
        # a round (every registered trainer committed) that has too few updates to finalise
        root_waits = self.config.root and s.commits < self.spec.effective_min_commits
        if (
            s.phase == Phase.OPEN
            and trains
            and not expired
            and not root_waits
            and not self.training.holds_first_commit(s)
        ):
            # this process committed the previous round, so this key has committed nothing since
            # but through it (`committed`; a second process with the same key is refused by the
            # contract): one chain read less between the round opening and training
            follows = self.training.committed == s.round - 1
            last = s.round - 1 if follows else view.trainer_state(job, self.account.address).last_round
            # `committed` covers a commit not yet `confirmations` deep
            if last != s.round and self.training.committed != s.round:
                self.training.train_and_commit(s, view.global_model(job), seat=seats.trainer_seat(me))
                self.worked = True
                return
        secure_round = s.phase == Phase.AGGREGATING and self.spec.secure and trains
        if (
            secure_round
            and s.round not in self.training.revealed
            and self.training.reveal(s, view, self.account.address)
        ):
            self.worked = True
            return
        # registered as a member stays so for the job's life: asked until the answer is yes
        if self.config.validator and not self.member and not seats.draws_committee:
            self.member = view.is_validator(job, me)
        validator = self.config.validator and seats.validates(
            me, fixed_member=not seats.draws_committee and self.member
        )
        optimistic = self.optimistic is not None and self.optimistic.ready() is not None
        if s.phase == Phase.OPEN and (validator or optimistic):
            self.validation.prefetch(s.round)
        elif (
            optimistic
            and s.phase == Phase.AGGREGATING
            and not expired
            and self.optimistic is not None
            and self.optimistic.step(s, view.global_model(job))
        ):
            self.worked = True  # posted, proved, settled or voted: look again at once
            return
        elif (
            s.phase == Phase.AGGREGATING
            and s.round not in self.validation.proposed
            and not expired
            and validator
        ):
            # proposed beside the next round's training, which starts on this validator's
            # own aggregate at once: the proposal and the quorum's wait leave the critical path
            ahead = self.trains_ahead()
            self.worked = self.validation.validate_and_propose(
                s, view.global_model(job), seat=seats.committee_seat(me), ahead=ahead
            )
            if self.worked and ahead:
                with self.validation.prefetching(s.round + 1):
                    self.training.speculate(s, self.validation.computed.get(s.round))
            return
        elif s.phase == Phase.AGGREGATING and self.speculate_next(s):
            self.worked = True
            return
        if expired:
            with contextlib.suppress(TransactionReverted):  # another node may have advanced it first
                self.coordinator.advance(self.account, job, gas=ADVANCE_GAS)
                log.info("%s: round %d: advanced the expired %s phase", self.name, s.round, s.phase.name)

    def speculate_next(self, s: JobState) -> bool:
        """Trains the next round ahead (`speculate`): on this validator's own aggregate, else the live claim.

        Optimistic mode: during the challenge window (`node_speculation.py`).
        """
        if not self.trains_ahead():
            return False
        aggregate = self.validation.computed.get(s.round)
        if aggregate is None and self.claims is not None:
            aggregate = self.claims.aggregate(s.round)
        return self.training.speculate(s, aggregate)

    def trains_ahead(self) -> bool:
        """Whether this node trains a round before it opens (`speculate`); a sampled trainer cannot
        know it is drawn next round, so it does not."""
        stopped = self.trainer.stopped  # ejected, or its records' budget spent
        return self.config.speculate and self.trains and not stopped and not self.spec.clients_per_round

    def report_rounds(self, s: JobState) -> None:
        """One status line per decided round: what the chain finalised and where this node stands."""
        self.reader.poll()
        for r, rec in sorted(self.reader.rounds.items()):
            if r in self.reported or (rec.finalized is None and rec.failed is None):
                continue
            self.reported.add(r)
            level, line = round_status(
                self.name, rec, me=self.account.address, drawn=self.seats.get(r),
                root=self.config.root, chain_rounds=self.spec.chain_rounds,
            )  # fmt: skip
            log.log(level, line)

    def finish(self) -> None:
        job, me = self.config.job, self.account.address
        if self.optimistic is not None:
            self.optimistic.finish()
        if self.coordinator.claimable(job, me) or self.coordinator.stake_of(job, me):
            claim = self.coordinator.claimable(job, me)
            self.coordinator.withdraw(self.account, job)
            log.info("%s: job %d ended; rewards (%d) and stake withdrawn", self.name, job, claim)
