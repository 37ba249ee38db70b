"""A node's validator side across rounds: fetch updates as they are committed, then propose.

The validator proper (`roles/validator.py`) computes and proposes one round from its
inputs; this is what a long-running node adds around it: fetching blobs while the round
is open, waiting a bounded time for a blob or a secure reveal that is late, and logging
what it excluded, so one slow peer delays a round by at most `availability_wait_s`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from fedledger.chain.contracts import Coordinator, JobState, Phase
from fedledger.codec.commitment import commitment_hex
from fedledger.errors import ChainUnavailable, StoreError, TransactionReverted
from fedledger.roles.job import CommitRecord, JobReader
from fedledger.roles.node_trace import NodeTrace
from fedledger.roles.outcome import RoundOutcome
from fedledger.spec import JobSpec
from fedledger.store.cached import VerifiedCache

if TYPE_CHECKING:
    from fedledger.roles.secure import SecureInputs
    from fedledger.roles.validator import Validator

log = logging.getLogger("fedledger.node")

#: how often updates are looked for while the node trains ahead (`prefetching`): each look is two
#: JSON-RPC reads, ~2 ms of CPU taken from training
PREFETCH_POLL_S = 0.1


class NodeValidation:
    def __init__(
        self,
        *,
        name: str,
        job: int,
        spec: JobSpec,
        coordinator: Coordinator,
        store: VerifiedCache,
        validator: Validator,
        reader: JobReader,
        availability_wait_s: float,
        trace: NodeTrace | None = None,
    ) -> None:
        self.name, self.job, self.spec = name, job, spec
        self.coordinator, self.store, self.validator, self.reader = coordinator, store, validator, reader
        self.availability_wait_s = availability_wait_s
        self.trace = trace or NodeTrace(None, name)
        compute = validator.compute
        self.upload_later = False  # set while a round proposed `ahead` is computed: its caller stores it

        def compute_and_keep(**kwargs: Any) -> RoundOutcome:
            outcome = compute(**kwargs)
            self.trace.mark("computed", kwargs["round"])
            # into this organisation's own store and the cache: the validator then finds it
            # there instead of asking every peer's store whether one of them has it already
            # (several HTTP requests before each proposal), the next round's training reads it
            # from memory, and every organisation's store holds every global model. Proposing
            # `ahead`, the caller holds it in memory and uploads it on the helper thread
            if not self.upload_later:
                store.keep(outcome.blob)
            return outcome

        validator.compute = compute_and_keep
        self.proposed: set[int] = set()
        self.computed: dict[int, bytes] = {}  # round -> the aggregate this validator computed
        self.outcomes: dict[int, RoundOutcome] = {}  # optimistic mode: the live round's computation
        self.fetched: set[bytes] = set()  # this round's updates already in the verified cache
        self.waiting_since: dict[int, float] = {}  # round -> when this validator first saw it aggregating
        self.inflight: tuple[JobState, Future[None]] | None = None  # a proposal sent `ahead`
        self.stopping = threading.Event()  # the node is stopping: a proposal sent ahead stops retrying

    def prefetch(self, round: int) -> list[CommitRecord]:
        """While the round is open, fetches and hash-checks each update as its commit appears.

        A validator has nothing else to do until the phase closes, and then it needs every
        blob at once: fetching them as they come takes the downloads off the round's critical
        path. A blob that cannot be fetched yet is simply tried again later.
        """
        commits = self.reader.commits(round)
        for c in commits:
            if c.commitment not in self.fetched:
                with contextlib.suppress(StoreError):
                    self.store.get(c.commitment)
                    self.fetched.add(c.commitment)
        return commits

    @contextlib.contextmanager
    def prefetching(self, round: int) -> Iterator[None]:
        """Prefetches `round`'s updates on the helper thread while the node does something else.

        A node that trains the next round ahead runs no passes until it has trained, so the
        updates its peers commit meanwhile would all be fetched after its own commit closed
        the round, on the round's critical path. Failures are left to the pass that needs the
        updates (a blob it cannot fetch then is waited for, and excluded, as always).
        """
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(PREFETCH_POLL_S):
                try:
                    self.prefetch(round)
                except Exception as exc:  # an outage: the node's own pass meets it
                    log.debug("%s: round %d: prefetch failed: %s", self.name, round, exc)
                    return

        thread = threading.Thread(target=loop, name="fedledger-prefetch", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            # not waiting out a download from a peer that stopped answering: the thread only
            # touches what is safe to share, and ends after that download
            thread.join(timeout=PREFETCH_POLL_S)

    def compute(self, s: JobState, global_model: bytes) -> RoundOutcome | None:
        """The round as this validator computes it, without proposing it; None while a blob is late.

        Optimistic mode (`roles/node_optimistic.py`): the drawn proposer posts it as a claim,
        every other member checks the posted claim against it. Computed once a round; the
        same bounded wait for a missing blob as `validate_and_propose`, and a blob still
        missing after it excludes that update, as there.
        """
        if s.round in self.outcomes:
            return self.outcomes[s.round]
        commits = self.prefetch(s.round)  # the last commits' updates, one download each (as below)
        missing = [
            c for c in commits if c.commitment not in self.fetched and not self.store.has(c.commitment)
        ]
        since = self.waiting_since.setdefault(s.round, time.monotonic())
        if missing and time.monotonic() - since < self.availability_wait_s:
            return None
        for c in missing:
            log.warning(
                "%s: round %d: data-availability fault: %s's update %s could not be fetched; excluding it",
                self.name,
                s.round,
                c.trainer,
                commitment_hex(c.commitment)[:14],
            )
        v = self.validator
        outcome = v.outcome(
            round=s.round,
            version=s.version,
            global_model=self.store.get_tensors(global_model),
            commits=commits,
            secure=None,  # optimistic mode excludes secure aggregation (spec/verification.py)
            releases_before=sum(1 for e in self.reader.events if e.name == "PrivacySpent"),
        )
        for r in outcome.rejected:
            log.warning("%s: round %d: excluded %s: %s", self.name, s.round, r.trainer, r.reason)
        self.computed[s.round] = outcome.aggregate
        self.outcomes = {s.round: outcome}  # only the live round's is needed
        self.fetched.clear()
        return outcome

    def validate_and_propose(
        self, s: JobState, global_model: bytes, *, seat: int = 0, ahead: bool = False
    ) -> bool:
        """Proposes the round's aggregate; False while it still waits for a committed blob.

        `seat`: this validator's seat in the round's drawn committee, if the job draws one.
        `ahead`: the round is computed here and proposed on a helper thread, and this returns
        at once, so that the node trains the next round on the aggregate while its proposal
        and the quorum's form (`settle` reports the proposal's outcome).
        """
        self.settle(wait=True)  # the last round's proposal first: its outcome is not overwritten
        # the updates committed last (the one that closed the phase) were not prefetched: fetch
        # them now, one download each, rather than ask every peer's store whether it has them first
        commits = self.prefetch(s.round)
        missing = [
            c for c in commits if c.commitment not in self.fetched and not self.store.has(c.commitment)
        ]
        since = self.waiting_since.setdefault(s.round, time.monotonic())
        waited = time.monotonic() - since
        if missing and waited < self.availability_wait_s:
            return False  # a peer's store may be restarting: wait, up to availability_wait_s
        secure: SecureInputs | None = None
        if self.spec.secure:
            from fedledger.roles.secure import SecureInputs

            secure = SecureInputs.from_events(
                self.coordinator.address, self.reader.events, self.job, s.round, global_model
            )
            unrevealed = [c.trainer for c in commits if c.trainer not in secure.reveals]
            if unrevealed and waited < self.availability_wait_s:
                return False  # committers reveal once the phase closes; give them the same wait
            for who in unrevealed:
                log.warning(
                    "%s: round %d: %s did not reveal its shares within %.0f s; recovering without them",
                    self.name,
                    s.round,
                    who,
                    waited,
                )
        releases = sum(1 for e in self.reader.events if e.name == "PrivacySpent")
        for c in missing:
            log.warning(
                "%s: round %d: data-availability fault: %s's update %s could not be fetched from any "
                "store for %.0f s; excluding it",
                self.name,
                s.round,
                c.trainer,
                commitment_hex(c.commitment)[:14],
                time.monotonic() - since,
            )
        model = self.store.get_tensors(global_model)
        self.upload_later = ahead
        try:
            outcome = self.validator.outcome(
                round=s.round,
                version=s.version,
                global_model=model,
                commits=commits,
                secure=secure,
                releases_before=releases,
            )
        finally:
            self.upload_later = False
        # held in memory for the training ahead, uploaded beside it; over the cache's budget, now
        deferred = outcome.blob if ahead and self.store.hold(outcome.aggregate, outcome.blob) else None
        if ahead and deferred is None:
            self.store.keep(outcome.blob)
        for who, why in outcome.faults.items():
            log.warning("%s: round %d: secure aggregation fault of %s: %s", self.name, s.round, who, why)
        for r in outcome.rejected:
            log.warning("%s: round %d: excluded %s: %s", self.name, s.round, r.trainer, r.reason)

        def propose() -> None:
            delay = 0.2
            while True:
                try:
                    if deferred is not None:
                        self.store.keep(deferred)  # held in memory only so far
                    pending, _ = self.validator.propose_outcome(
                        outcome, round=s.round, global_model=model, commits=commits, names={},
                        releases_before=releases, seat=seat,
                    )  # fmt: skip
                    if pending is not None:
                        pending.result()
                    break
                except (ChainUnavailable, StoreError) as exc:
                    # in line, the node's loop backs off and proposes again; ahead, the node is
                    # training and would only see this when done, so the helper retries itself
                    if not ahead or self.stopping.wait(delay):
                        raise
                    log.warning("%s: round %d: proposal failed (%s); retrying", self.name, s.round, exc)
                    delay = min(2 * delay, 10.0)
            self.trace.mark("proposed", s.round)
            log.info("%s: round %d: proposed %s", self.name, s.round, commitment_hex(outcome.aggregate)[:14])

        self.computed[s.round] = outcome.aggregate
        self.proposed.add(s.round)
        self.fetched.clear()
        if not ahead:
            self._outcome_of(s, propose)
            return True
        done: Future[None] = Future()

        def run() -> None:
            try:
                propose()
            except BaseException as exc:  # met on the node's thread, by `settle`
                done.set_exception(exc)
            else:
                done.set_result(None)

        # a daemon thread: a node interrupted mid-proposal exits without waiting for it
        threading.Thread(target=run, name="fedledger-propose", daemon=True).start()
        self.inflight = (s, done)
        return True

    def settle(self, *, wait: bool = False) -> None:
        """Meets the outcome of a proposal sent `ahead`, once it is in (or, `wait`, now).

        A revert that only says the round was decided first is logged; anything else (an
        outage, another revert) is raised here, on the node's own thread, and the round is
        proposed again on a later pass, as if the proposal had been sent in line.
        """
        if self.inflight is None or not (wait or self.inflight[1].done()):
            return
        (s, done), self.inflight = self.inflight, None
        self._outcome_of(s, done.result)

    def _outcome_of(self, s: JobState, propose: Callable[[], None]) -> None:
        """Runs (or meets) a proposal; the round stays proposed only if it landed or was decided."""
        try:
            propose()
            return
        except TransactionReverted as exc:
            reverted = exc
        except BaseException:
            self.proposed.discard(s.round)  # an outage: propose again on a later pass
            raise
        self.proposed.discard(s.round)  # until the chain says the round was decided (this may fail)
        now = self.coordinator.job_state(self.job)
        moved_on = now.phase != Phase.AGGREGATING or now.round != s.round
        if reverted.reason != "coordinator: already proposed" and not moved_on:
            raise reverted
        self.proposed.add(s.round)
        log.info("%s: round %d: decided before this proposal landed", self.name, s.round)

    def close(self, *, wait: bool = True) -> None:
        """The node is stopping: a proposal still in flight stops retrying, and is waited for
        unless the node was interrupted (its daemon thread is then left to end with the process)."""
        self.stopping.set()
        if not wait:
            return
        try:
            self.settle(wait=True)
        except Exception as exc:  # nothing is left to act on it: say so, and stop
            log.info("%s: a proposal in flight when the node stopped did not land: %s", self.name, exc)
