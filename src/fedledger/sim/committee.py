"""A simulated committee's round computation: computed twice, independently, and shared.

In a deployment every committee member computes each round on its own machine, at the same
time, so a round costs one computation of wall time however large the committee. A
simulation runs the members one after another in one process, where the same pure function
of the same inputs (`compute_round`) would be evaluated once per member: seven times a round
for the default committee. `SharedRound` keeps what makes the quorum real and drops the
repetition:

- the first two members that process a round compute it independently, from the store, and
  their outcomes must be identical (aggregate, blob, accepted and rejected updates with their
  reasons, secure-aggregation faults), or the simulation stops with a NondeterminismError;
- every later member is handed that outcome, as if it had computed the same bytes on its
  own machine;
- what each member does with the outcome stays its own: a lying validator still rewrites the
  aggregate it proposes, a biased one its scores, and each proposes in its own transaction,
  so the vote, the dissent reports and the slashing run exactly as before.

The audit never shares anything: it recomputes every finalised round itself. A node process
is one member and computes every round (`roles/node_validation.py`).

Given `check_store` (the simulation's blob directory), the second computation runs in a
forked worker process while the first member computes in this one: on the core that training
leaves idle between rounds, from its own reads of the directory, hashing every blob again
(the first member reads through the simulation's shared cache). The second member compares
the two as before. A deployment's members compute at the same time, too.

Within `deferring()` (a quorum round's proposals, sim/quorum_round.py) the second member does
not wait for the worker: it is handed the first outcome, and `confirm()` compares the worker's
computation with it once the proposals are on their way. A difference stops the simulation with
the same NondeterminismError before anything reads the round's result.
"""

from __future__ import annotations

import multiprocessing
import weakref
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np

from fedledger.errors import NondeterminismError
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import RoundOutcome
from fedledger.roles.pipeline import compute_round
from fedledger.roles.round_types import SecureInputs
from fedledger.store.base import BlobStore

#: members that compute each round on their own before the rest reuse it
INDEPENDENT = 2


def _checking_computation(**kwargs: Any) -> RoundOutcome:
    """The worker's computation, returned with what `_check_identical` compares (not the tensors)."""
    return replace(compute_round(**kwargs), model={}, deltas={})


class SharedRound:
    """`compute_round` for a simulated committee: the first INDEPENDENT calls per round compute."""

    def __init__(self, independent: int = INDEPENDENT, *, check_store: BlobStore | None = None) -> None:
        if independent < 1:
            raise ValueError(f"at least one member must compute each round, got {independent}")
        self.independent = independent
        #: where the worker reads the blobs of the second computation (None: it runs in turn, here)
        self.check_store = check_store
        self._worker: ProcessPoolExecutor | None = None
        self._check: Future[RoundOutcome] | None = None
        self._defer = False
        self._unconfirmed: Future[RoundOutcome] | None = None  # a deferred check, not yet compared
        self._key: tuple[Any, ...] | None = None
        self._inputs: tuple[object, object] = (None, None)
        self._outcome: RoundOutcome | None = None
        self._computed = 0
        #: rounds whose outcome more than one member computed and found identical
        self.confirmed = 0
        #: how often a member was handed the shared outcome instead of computing it
        self.reused = 0

    def __call__(
        self,
        *,
        round: int,
        version: int,
        global_model: Mapping[str, np.ndarray],
        commits: Sequence[CommitRecord],
        secure: SecureInputs | None = None,
        releases_before: int = 0,
        **rest: Any,
    ) -> RoundOutcome:
        fixed = tuple((k, v if isinstance(v, str | int) else id(v)) for k, v in sorted(rest.items()))
        key = (round, version, tuple(commits), releases_before, fixed)
        same = key == self._key and self._inputs[0] is global_model and self._inputs[1] is secure
        if same and self._computed >= self.independent:
            self.reused += 1
            assert self._outcome is not None
            return self._outcome
        inputs: dict[str, Any] = dict(
            round=round,
            version=version,
            global_model=global_model,
            commits=commits,
            secure=secure,
            releases_before=releases_before,
            **rest,
        )
        if not same:
            self.confirm()  # a deferred check stood for a member that proposed: it is compared
            if self._check is not None:  # the last round was decided before its check was read
                self._check.cancel()
            self._check = self._start_check(inputs) if self.independent >= 2 else None
            outcome = compute_round(**inputs)
            self._key, self._inputs, self._outcome, self._computed = key, (global_model, secure), outcome, 1
            return outcome
        assert self._outcome is not None
        if self._check is not None and self._defer:
            self._unconfirmed, self._check = self._check, None
            self._computed += 1
            return self._outcome
        if self._check is not None:
            check, self._check = self._check, None
            outcome = check.result()
        else:
            outcome = compute_round(**inputs)
        _check_identical(self._outcome, outcome)
        self._computed += 1
        if self._computed == 2:
            self.confirmed += 1
        return self._outcome

    @contextmanager
    def deferring(self) -> Iterator[None]:
        """Within: the second member takes the first outcome and the worker's is compared later."""
        self._defer = True
        try:
            yield
        finally:
            self._defer = False

    def confirm(self) -> None:
        """Compares a deferred second computation with the first; NondeterminismError if they differ."""
        if self._unconfirmed is None:
            return
        check, self._unconfirmed = self._unconfirmed, None
        assert self._outcome is not None
        _check_identical(self._outcome, check.result())
        self.confirmed += 1

    def _start_check(self, inputs: dict[str, Any]) -> Future[RoundOutcome] | None:
        """Starts the second computation in the worker, reading `check_store`; None without one."""
        if self.check_store is None:
            return None
        if self._worker is None:
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._worker = ProcessPoolExecutor(1, mp_context=context)
            weakref.finalize(self, self._worker.shutdown, wait=False, cancel_futures=True)
        return self._worker.submit(_checking_computation, **{**inputs, "store": self.check_store})


def _check_identical(first: RoundOutcome, again: RoundOutcome) -> None:
    """NondeterminismError naming what differs between two computations of one round."""
    parts = {
        "aggregate": (first.aggregate, again.aggregate),
        "model blob": (first.blob, again.blob),
        "accepted updates": (first.accepted, again.accepted),
        "rejected updates": (first.rejected, again.rejected),
        "secure-aggregation faults": (first.faults, again.faults),
    }
    differ = [name for name, (a, b) in parts.items() if a != b]
    if differ:
        raise NondeterminismError(
            f"round {first.round}: two validators computed different {', '.join(differ)} from the "
            f"same inputs (aggregates {first.aggregate.hex()[:16]}… and {again.aggregate.hex()[:16]}…); "
            "every rule is an integer function of its inputs, so this is a fedledger bug: please report it"
        )
