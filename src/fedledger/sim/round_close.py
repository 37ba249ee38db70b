"""The end of a simulated round, on the courier's thread, while the next round starts training.

Once the last organisation of round r has trained, what is left of the round is coordination:
the last deliveries, the commits read back, the committee's computation and its proposals (or an
optimistic claim, its watchers and its settle), the receipts, reports of dissent, the round's
events and the job's next state. In a deployment nobody waits for that: a node speculates
(`fedledger node`, roles/node_training.py) and trains round r+1 on the aggregate it expects while
the chain finalises round r, committing only once the chain agrees.

The simulation does the same. `RoundClose.run` goes to the courier thread behind the round's
deliveries, so the chain sees every transaction in the order one thread sends them, and
publishes `predicted` — the aggregate the first committee member (in optimistic mode, the first
drawn proposer) computed — as soon as it is known, before the other members propose. The main
thread evaluates that model while they propose and the chain executes it all,
as the plain loop evaluates its own, and gives the next round's first organisation its head
start on it (`HeadStart`); when the close has finished, the head start is kept only if the chain
finalised that very model and the organisation is still due to train from it, and is otherwise
thrown away and trained again from what the chain says. Training is seeded per round, so a kept
head start is the bytes training after the close would have produced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fedledger.chain.contracts import Phase
from fedledger.chain.types import JobState
from fedledger.roles.job import CommitRecord, RoundRecord
from fedledger.roles.sampling import RoundSeats
from fedledger.roles.secure import SecureInputs
from fedledger.roles.trainer import PreparedUpdate, TrainedUpdate, TrainerRound
from fedledger.sim.optimistic_round import OptimisticRound
from fedledger.sim.quorum_round import QuorumRound

if TYPE_CHECKING:
    from fedledger.sim.setup import Organisation, SimulationSetup

__all__ = ["ClosedRound", "HeadStart", "RoundClose", "head_start"]

log = logging.getLogger("fedledger.sim")


@dataclass
class ClosedRound:
    """What the chain says once a round is over (its commits: the record's), and the job's next state."""

    status: str  # "finalized" or "failed"
    model: bytes  # the finalised aggregate, or the model the round started from
    version: int
    record: RoundRecord
    next_state: JobState
    next_global: bytes | None  # the model the next round trains from, while the job runs
    finished_at: float = field(default_factory=time.perf_counter)


@dataclass
class HeadStart:
    """One organisation's training of round `round` from `global_model`, done before the chain said so."""

    org: Organisation
    round: int
    global_model: bytes
    trained: TrainedUpdate | PreparedUpdate | TrainerRound

    def take(
        self, org: Organisation, round: int, global_model: bytes
    ) -> TrainedUpdate | PreparedUpdate | TrainerRound | None:
        """The trained update, if it is this organisation's training of this round from this model."""
        same = self.org is org and self.round == round and self.global_model == global_model
        if same and not org.trainer.stopped:  # not ejected by the round the head start overlapped
            return self.trained
        log.debug("round %d: %s's head start is thrown away", round, self.org.name)
        return None


def head_start(sim: SimulationSetup, round: int, model: bytes) -> HeadStart | None:
    """The first organisation trains round `round` on `model`, the aggregate predicted to finalise.

    Only where that training is what the round would ask of it once the chain agrees: every
    trainer trains (no draw from the round's randomness), locally (no Ray), with no fault or
    attack of its own, no record-level budget to spend, and rounds left to train."""
    org = sim.orgs[0]
    if (
        round > sim.spec.rounds
        or sim.spec.sampled
        or sim.spec.record_dp
        or sim.spec.federated_stats
        or sim.backend.lazy
        or 1 in sim.faults
        or 1 in sim.malicious
        or org.trainer.stopped
    ):
        return None
    return HeadStart(org, round, model, org.trainer.train(round, model))


class RoundClose:
    """Everything of round `round` after its training; `run` on the courier thread, `predicted` early."""

    def __init__(
        self,
        sim: SimulationSetup,
        *,
        round: int,
        version: int,
        global_model: bytes,
        seats: RoundSeats,
        reveal: Callable[[int, bytes, Sequence[CommitRecord]], SecureInputs],
    ) -> None:
        """`reveal(round, global model, commits)`: a secure round's reveals, and its inputs."""
        self.sim = sim
        self.reveal = reveal
        self.round = round
        self.version = version
        self.global_model = global_model
        self.seats = seats
        #: the aggregate the chain is predicted to finalise (None: no prediction), set before `run` ends
        self.predicted: Future[bytes | None] = Future()

    def run(self, _delivered: Sequence[TrainerRound] = ()) -> ClosedRound:
        """The rest of the round, from the commits on; `predicted` is always set when it returns or raises."""
        try:
            return self._run()
        finally:
            if not self.predicted.done():
                self.predicted.set_result(None)

    def _predict(self, aggregate: bytes | None) -> None:
        if not self.predicted.done():
            self.predicted.set_result(aggregate if aggregate and self.sim.store.has(aggregate) else None)

    def _run(self) -> ClosedRound:
        sim, r, version, global_c = self.sim, self.round, self.version, self.global_model
        coordinator = sim.deployment.coordinator
        state = coordinator.job_state(sim.job_id)
        if state.phase == Phase.OPEN and state.round == r:
            # not every trainer committed: wait out the window, then anyone may advance
            sim.chain.increase_time(sim.spec.commit_window_s + 1)
            coordinator.advance(sim.sponsor, sim.job_id)
            state = coordinator.job_state(sim.job_id)

        commits = sim.reader.commits(r)
        aggregating = state.phase == Phase.AGGREGATING and state.round == r
        secure = self.reveal(r, global_c, commits) if aggregating and sim.spec.secure else None
        releases = sum(1 for e in sim.reader.events if e.name == "PrivacySpent")
        if aggregating and sim.spec.optimistic:
            claim = OptimisticRound(sim, sim.optimistic_ledger)
            claim.run(
                round=r,
                version=version,
                global_c=global_c,
                global_model=sim.store.get_tensors(global_c),
                commits=commits,
                releases_before=releases,
                on_computed=self._predict,  # evaluated while the claim is watched and settled
            )
            claim.finish()
        elif aggregating:
            vote = QuorumRound(sim, self.seats)
            vote.send(
                round=r,
                version=version,
                global_model=sim.store.get_tensors(global_c),
                commits=commits,
                secure=secure,
                releases_before=releases,
                on_computed=self._predict,  # evaluated while the members propose
            )
            vote.finish()
            state = coordinator.job_state(sim.job_id)
            if state.phase == Phase.AGGREGATING and state.round == r:
                sim.chain.increase_time(sim.spec.aggregate_window_s + 1)
                coordinator.advance(sim.sponsor, sim.job_id)
        self._predict(None)

        # anyone may report a validator that proposed what the quorum did not: the sponsor does
        for dissenter in sim.reader.dissenters(r):
            log.warning(
                "round %d: reporting %s, whose proposal lost to the quorum's",
                r,
                sim.participants.get(dissenter, dissenter),
            )
            coordinator.report_dissent(sim.sponsor, sim.job_id, r, dissenter)
        sim.reader.poll()
        rec = sim.reader.rounds[r]
        if rec.finalized is not None:
            status, model_c = "finalized", rec.finalized.args["aggregate"]
            version = rec.finalized.args["version"]
        else:
            status, model_c = "failed", global_c
        next_state = coordinator.job_state(sim.job_id)
        next_global = coordinator.global_model(sim.job_id) if next_state.running else None
        return ClosedRound(status, model_c, version, rec, next_state, next_global)
