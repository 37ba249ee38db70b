"""The statistics round: a job's first round when its schema standardises federatedly.

Before any model is trained, every trainer commits its integer feature sums
(`data/stats.py`) through the ordinary round: commit, validate, aggregate, propose,
quorum, finalise. The aggregate is the initial weights plus the summed statistics,
committed as version 1, so the standardisation every party then applies is on chain
and replayed by the audit like any other round. Later rounds carry the statistics
tensors unchanged (`RoundOutcome.carrying`).

Secure aggregation masks the sums like any update: a trainer masks its statistics
unweighted, and validators unmask only the committers' total, which is checked as a
whole (they cannot see any one organisation's sums).

The round is the pipeline's (`roles/pipeline.py`) with this module's stages:
fetch → validate (`check_statistics`) → sum → statistics, or in a secure job
fetch → unmask (over `statistics_layout`) → check → statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from fedledger.data import stats
from fedledger.errors import InvalidUpdate
from fedledger.roles.round_types import Candidate, RoundInputs, RoundState, Stage
from fedledger.spec import JobSpec


def is_stats_round(spec: JobSpec, version: int) -> bool:
    """Whether a round on global model `version` gathers statistics: until version 1 is final."""
    return spec.federated_stats and version == 0


def stats_layout(spec: JobSpec) -> dict[str, np.ndarray]:
    """Zero tensors of a statistics update's names and shapes (the masking layout in secure jobs)."""
    assert spec.data_schema is not None and spec.data_schema.kind == "table"
    f = len(spec.data_schema.numeric)
    return {
        stats.COUNT: np.zeros(stats.LIMBS, dtype=np.int64),
        stats.SUM: np.zeros((f, stats.LIMBS), dtype=np.int64),
        stats.SUMSQ: np.zeros((f, stats.LIMBS), dtype=np.int64),
    }


#: every reason a statistics round gives starts so, naming the round it came from
REASON_PREFIX = "statistics round: "


def statistics_layout(inputs: RoundInputs) -> Mapping[str, np.ndarray]:
    """What a secure statistics round's masks cover: the statistics tensors, not the model."""
    return stats_layout(inputs.spec)


def _features(spec: JobSpec) -> int:
    assert spec.data_schema is not None and spec.data_schema.kind == "table"
    return len(spec.data_schema.numeric)


def check_statistics(inputs: RoundInputs, candidate: Candidate) -> None:
    """One trainer's integer feature sums: their names, shapes and row count (`data/stats.py`)."""
    stats.check_contribution(
        candidate.tensors, features=_features(inputs.spec), num_examples=candidate.commit.num_examples
    )


@dataclass(frozen=True)
class SumStatistics(Stage):
    """The valid contributions summed limb by limb (`data/stats.py`), exactly."""

    name = "sum"

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if not state.valid:
            return state
        return replace(state, total=stats.sum_contributions([v.tensors for v in state.valid]))


@dataclass(frozen=True)
class CheckStatisticsTotal(Stage):
    """An unmasked total must itself be valid statistics over the committers' rows.

    If it is not, someone's masked sums were wrong and nobody can say whose: every update is
    left out unflagged and the round fails.
    """

    name = "check"

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if state.total is None:
            return state
        total = {k: np.asarray(v, dtype=np.int64) for k, v in state.total.items()}
        try:
            stats.check_contribution(
                total,
                features=_features(inputs.spec),
                num_examples=sum(v.commit.num_examples for v in state.valid),
                parts=len(state.valid),
            )
        except InvalidUpdate as exc:
            return state.drop_all(f"{REASON_PREFIX}the unmasked total is not valid statistics ({exc})")
        return replace(state, total=total)


@dataclass(frozen=True)
class AddStatistics(Stage):
    """Version 1: the initial weights plus the summed statistics; every valid update is accepted."""

    name = "statistics"

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if state.total is None:
            return state
        model = inputs.unchanged()
        model.update(state.total)
        return replace(state, model=model, accepted=tuple(v.commit for v in state.valid))
