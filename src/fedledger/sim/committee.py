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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fedledger.errors import NondeterminismError
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import RoundOutcome
from fedledger.roles.pipeline import compute_round
from fedledger.roles.round_types import SecureInputs

#: members that compute each round on their own before the rest reuse it
INDEPENDENT = 2


class SharedRound:
    """`compute_round` for a simulated committee: the first INDEPENDENT calls per round compute."""

    def __init__(self, independent: int = INDEPENDENT) -> None:
        if independent < 1:
            raise ValueError(f"at least one member must compute each round, got {independent}")
        self.independent = independent
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
        outcome = compute_round(
            round=round,
            version=version,
            global_model=global_model,
            commits=commits,
            secure=secure,
            releases_before=releases_before,
            **rest,
        )
        if not same:
            self._key, self._inputs, self._outcome, self._computed = key, (global_model, secure), outcome, 1
            return outcome
        assert self._outcome is not None
        _check_identical(self._outcome, outcome)
        self._computed += 1
        if self._computed == 2:
            self.confirmed += 1
        return self._outcome


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
