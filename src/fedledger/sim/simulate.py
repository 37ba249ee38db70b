"""Many organisations on one machine: the whole protocol, round by round.

Every organisation is a real trainer (its own data partition, its own model
copy, its own key) and, by default, a validator that independently recomputes
each round. The chain is the in-process EVM by default or any JSON-RPC node;
the blob store is a local directory inside the run directory. Nothing here
is simulated away: the contracts enforce the rounds, the validators agree by
quorum on identical bytes, and the run directory is auditable afterwards.

This module is the run loop; the consortium is built in `setup.py`, the run
directory written by `outputs.py`, and the result types live in `results.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from fedledger.chain.contracts import Phase
from fedledger.chain.types import JobState
from fedledger.codec.commitment import commitment_hex
from fedledger.data.stats import SUM as STATS_SUM
from fedledger.data.stats import standardise_in_place, standardiser
from fedledger.roles.job import CommitRecord
from fedledger.roles.model import float_weights
from fedledger.roles.sampling import RoundSeats, round_seats
from fedledger.roles.secure import SecureInputs
from fedledger.roles.trainer import TrainerRound
from fedledger.sim.attacks import add_trigger, backdoor_success
from fedledger.sim.outputs import start_plot, write_run
from fedledger.sim.results import Earnings, RoundMetrics, SimulationResult
from fedledger.sim.round_close import HeadStart, RoundClose, head_start
from fedledger.sim.setup import Organisation, SimulationSetup
from fedledger.training.client import ClientWrapper
from fedledger.training.torch_client import evaluate, predict, set_weights

__all__ = ["Earnings", "Organisation", "RoundMetrics", "Simulation", "SimulationResult"]

log = logging.getLogger("fedledger.sim")


class Simulation(SimulationSetup):
    """Sets up a consortium, runs rounds until the job ends, and leaves the evidence."""

    _head: HeadStart | None = None  # the next round's first training, begun before the chain said so
    #: the job's state and global model after the last round, as its close read them
    after_round: tuple[JobState, bytes | None]

    def test_inputs(self, stats_q: Mapping[str, np.ndarray]) -> np.ndarray:
        """The held-out inputs as a committed model sees them: z-scored by its committed statistics."""
        if not stats_q:
            return self.dataset.x_test
        key = stats_q[STATS_SUM].tobytes()
        if self._test_key != key:
            x = self.dataset.x_test.copy()
            standardise_in_place(x, *standardiser(stats_q, self.spec.scale_bits))
            self._test_key, self._test_x = key, x
        return self._test_x

    def evaluate(self, commitment: bytes) -> tuple[float, float]:
        """Test loss and accuracy of a committed model on the held-out split."""
        _, stats_q, weights = self.models.read(commitment)  # decoded once for it and the trainers
        set_weights(self.eval_model, weights)
        loss, acc = evaluate(self.eval_model, self.test_inputs(stats_q), self.dataset.y_test)
        return acc, loss

    def backdoor_success(self, commitment: bytes) -> float:
        """Share of triggered non-target test images the model assigns the backdoor's label."""
        model_q = self.store.get_tensors(commitment)
        set_weights(self.eval_model, float_weights(self.names, model_q, self.spec.scale_bits))
        x, y = add_trigger(self.dataset.x_test), self.dataset.y_test
        return backdoor_success(predict(self.eval_model, x), y)

    def round_trainers(self, r: int, seats: RoundSeats | None = None) -> list[tuple[int, Organisation]]:
        """(number from 1, organisation) of round r's trainers, as the chain drew them; every backend
        asks here. Without `clients_per_round` that is every registered trainer."""
        seats = seats or self.seats(r)
        return [
            (i, org)
            for i, org in enumerate(self.orgs, start=1)
            if seats.trains(str(org.trainer.account.address))
        ]

    def start_training(self, r: int, global_c: bytes, orgs: Sequence[Organisation]) -> None:
        """Lets a backend that trains elsewhere (Ray) start every fit the trainers will ask for."""
        if not self.backend.lazy:
            return
        clients = []
        for org in orgs:
            if org.trainer.stopped:
                continue
            client = org.trainer.client
            while isinstance(client, ClientWrapper):  # a fault's wrapper calls the backend's client
                client = client.inner
            clients.append(client)
        _, _, params = self.models.read(global_c)  # as each trainer reads it
        self.backend.start_round(r, params, clients)

    def run_round(self, state: JobState | None = None, *, global_c: bytes | None = None) -> RoundMetrics:
        """One round, from the job's `state` and global model as just read (read here if not given).

        The round's close (commits read, the committee's vote, the events) runs on the courier
        thread (sim/round_close.py); this thread evaluates the model it predicts meanwhile and
        gives the next round's first organisation its head start (`head_start`)."""
        coordinator = self.deployment.coordinator
        t_round = time.perf_counter()
        chain_s0, gas0, tx0 = self.chain.seconds, self.chain.gas, self.chain.transactions
        state = state or coordinator.job_state(self.job_id)
        r, version = state.round, state.version
        global_c = global_c or coordinator.global_model(self.job_id)
        head, self._head = self._head, None

        train_s, losses = 0.0, []
        seats = self.seats(r)
        training: list[tuple[int, Organisation]] = []
        for i, org in self.round_trainers(r, seats):
            fault = self.faults.get(i)
            if fault and fault.kind == "drop-out" and r >= fault.from_round:
                log.info("round %d: %s is offline (drop-out fault)", r, org.name)
                continue
            training.append((i, org))
        first = head.take(training[0][1], r, global_c) if head is not None and training else None
        self.start_training(r, global_c, [org for _, org in training])
        # each encoding, upload and commit goes to the courier (sim/courier.py) while the next
        # organisation trains; training reads nothing from the chain, and the courier encodes (a
        # secure job reads its key directory there), uploads and commits in the trainers' order
        for k, (i, org) in enumerate(training):
            fault = self.faults.get(i)
            corrupts = fault is not None and fault.kind == "corrupt-blob" and r >= fault.from_round
            trained = first if k == 0 and first is not None else org.trainer.train(r, global_c)
            train_s += trained.train_seconds
            losses.append(trained.loss)
            if isinstance(trained, TrainerRound):  # nothing to commit
                continue
            self.courier.deliver(
                org.trainer,
                trained,
                seat=seats.trainer_seat(str(org.trainer.account.address)),
                after_upload=self._corrupt if corrupts else None,
                verify_in=self.store if org.trainer.store is self.store else None,
            )
        if self.root_trainer is not None:
            self.courier.drain()
            self.root_trainer.run_round(r, global_c)

        close = RoundClose(
            self, round=r, version=version, global_model=global_c, seats=seats, reveal=self.reveal_round
        )
        closing = self.courier.after(close.run)
        early: tuple[bytes, tuple[float, float]] | None = None
        stopped: BaseException | None = None
        try:
            predicted = close.predicted.result()
            if predicted is not None:  # evaluated, and the next round begun on it, while the round closes
                early = (predicted, self.evaluate(predicted))
                self._head = head_start(self, r + 1, predicted)
        except BaseException as exc:  # stopped meanwhile (Ctrl-C, the organisation's code raised):
            stopped = exc  # the close finishes first, and the round it decided is recorded
        done = closing.result()
        self.after_round = (done.next_state, done.next_global)
        rec, status, model_c, version = done.record, done.status, done.model, done.version
        commits = rec.commits
        acc, loss = early[1] if early is not None and early[0] == model_c else self.evaluate(model_c)
        m = RoundMetrics(
            round=r,
            version=version,
            status=status,
            commits=len(commits),
            accepted=len(commits) - len(rec.excluded),
            rejected=len(rec.excluded),
            flagged=len(rec.slashed),
            test_accuracy=acc,
            test_loss=loss,
            # the statistics round trains nothing: no loss to average
            train_loss=float(np.nanmean(losses)) if np.isfinite(losses).any() else float("nan"),
            gas_used=self.chain.gas - gas0,
            transactions=self.chain.transactions - tx0,
            chain_seconds=self.chain.seconds - chain_s0,
            train_seconds=train_s,
            round_seconds=done.finished_at - t_round,
            model_commitment=commitment_hex(model_c),
            epsilon=coordinator.epsilon_spent(self.job_id) / 1e6
            if self.spec.dp
            else max(self.record_epsilons().values(), default=0.0),
        )
        if self.attack is not None and self.attack.kind == "backdoor":
            m.backdoor_success = self.backdoor_success(model_c)
        if self.scorer is not None and rec.finalized is not None:
            # the scores the honest validators posted (one scorer serves them all here)
            assert self.scorer.last is not None and self.scorer.last.scores.round == r
            m.scoring_seconds = self.scorer.last.scores.seconds
            self.scores.append(self.scorer.last.scores)
        self.metrics.append(m)
        if stopped is not None:
            raise stopped
        return m

    def _while_registering(self) -> None:
        # the first organisation starts round 1 while the chain executes the registrations
        self._head = head_start(self, 1, self.initial_model)

    def _corrupt(self, commitment: bytes) -> None:
        """The corrupt-blob fault: the stored copy's last byte flipped after upload."""
        path = self.disk.path_for(commitment)
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))

    def seats(self, r: int) -> RoundSeats:
        """Who trains and who validates in round r, as the chain drew them (`roles/sampling.py`)."""
        return round_seats(self.deployment.sampler if self.spec.sampled else None, self.job_id, r)

    def reveal_round(self, r: int, global_c: bytes, commits: Sequence[CommitRecord]) -> SecureInputs:
        """Secure aggregation: every committer reveals (unless its fault withholds it); the inputs.

        Each reveal is sent without waiting, so the chain executes it while the next committer
        opens its shares; the receipts are read, and a revert raised, once all are sent."""
        sent = []
        for i, org in enumerate(self.orgs, start=1):
            fault = self.faults.get(i)
            if fault and fault.kind == "withhold-reveal" and r >= fault.from_round:
                log.info("round %d: %s withholds its share reveal (withhold-reveal fault)", r, org.name)
                continue
            pending, _ = org.trainer.send_reveal(r, global_c, commits)
            if pending is not None:
                sent.append(pending)
        for pending in sent:
            pending.result()
        self.reader.poll()
        coordinator = self.deployment.coordinator
        return SecureInputs.from_events(coordinator.address, self.reader.events, self.job_id, r, global_c)

    def record_epsilons(self) -> dict[str, float]:
        """Record-level DP: each organisation's ε as its trainer recorded it in the data registry."""
        if not self.spec.record_dp:
            return {}
        registry = self.deployment.data_registry
        return {
            o.name: registry.privacy_spent(self.job_id, str(o.trainer.account.address))[1] / 1e6
            for o in self.orgs
        }

    def running(self, state: JobState | None = None) -> bool:
        state = state or self.deployment.coordinator.job_state(self.job_id)
        return state.running

    def settle(self) -> dict[str, int]:
        """Everyone withdraws rewards and stakes; the sponsor reclaims what is left."""
        coordinator, token = self.deployment.coordinator, self.deployment.token
        before = {o.name: token.balance_of(o.trainer.account.address) for o in self.orgs}
        self.earnings: dict[str, Earnings] = {}
        # every withdrawal is sent before the first receipt is read: the chain executes them in turn
        pending = [coordinator.withdraw_later(org.trainer.account, self.job_id) for org in self.orgs]
        for org, sent in zip(self.orgs, pending, strict=True):
            receipt = sent.result()
            w = next(e.args for e in coordinator.events_in(receipt) if e.name == "Withdrawn")
            rep = coordinator.reputation(org.trainer.account.address)
            self.earnings[org.name] = Earnings(int(w["reward"]), int(w["fees"]), int(w["stake"]), rep.score)
        if coordinator.pool(self.job_id) > 0:
            coordinator.reclaim(self.sponsor, self.job_id)
        return {o.name: token.balance_of(o.trainer.account.address) - before[o.name] for o in self.orgs}

    def run(self, on_round: Callable[[RoundMetrics], None] | None = None) -> SimulationResult:
        t0 = time.perf_counter()
        state = self.deployment.coordinator.job_state(self.job_id)
        global_c: bytes | None = None
        while self.running(state):
            m = self.run_round(state, global_c=global_c)
            if on_round is not None:
                on_round(m)
            state, global_c = self.after_round  # as the round's close read it
        plot = start_plot(self, self.metrics)  # drawn while the job settles
        payouts = self.settle()
        phase = self.deployment.coordinator.job_state(self.job_id).phase
        outcome = "completed" if phase == Phase.DONE else "aborted"
        final = self.deployment.coordinator.global_model(self.job_id)
        flags: dict[str, int] = {}
        slashed: dict[str, int] = {}
        ejected: list[str] = []
        for rec in self.reader.rounds.values():
            for e in rec.slashed:
                org = self.participants.get(e.args["trainer"], e.args["trainer"])
                flags[org] = flags.get(org, 0) + 1
                slashed[org] = slashed.get(org, 0) + int(e.args["amount"])
            ejected += [self.participants.get(t, t) for t in rec.ejected]
        result = SimulationResult(
            out_dir=self.out_dir,
            job_id=self.job_id,
            rounds=self.metrics,
            final_accuracy=self.metrics[-1].test_accuracy if self.metrics else float("nan"),
            final_commitment=final,
            wall_seconds=time.perf_counter() - t0,
            chain_seconds=self.chain.seconds,
            outcome=outcome,
            participants=self.participants,
            payouts=payouts,
            malicious=self.malicious_names,
            flags=flags,
            slashed=slashed,
            ejected=ejected,
            measure_backdoor=None if self.spec.own_data else lambda: self.backdoor_success(final),
            scores=self.scores,
            earnings=self.earnings,
            epsilon_spent=self.deployment.coordinator.epsilon_spent(self.job_id) / 1e6
            if not self.spec.record_dp
            else max(self.record_epsilons().values(), default=0.0),
            epsilon_by_organisation=self.record_epsilons(),
            secagg_faults=list(self.secagg_faults),
            challenges=list(self.optimistic_ledger.challenges),
        )
        write_run(self, result, plot=plot)
        self._detach_log()
        return result
