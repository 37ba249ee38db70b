"""A round, the one path the validator, the node and the audit all take.

    fetch → validate → (unmask) → (clip) → aggregate → (noise) → outcome

`stages_for(spec)` is the only place that knows the modes; each contributes its stages:

    plain           fetch → validate → [root, FLTrust] → aggregate (the spec's rule)
    DP              fetch (+ nonce) → validate → budget → clip → sum → noise → mean
    secure          fetch (masked) → unmask → mean
    secure + DP     fetch (masked) → unmask → budget → mean (trainers added the noise)
    statistics      fetch → validate (sums) → sum → statistics
    secure stats    fetch (masked) → unmask → check → statistics

`run_round` applies them in order and builds the outcome, the same for every mode: the new
model (or the global one unchanged) with the carried statistics tensors, the rejections in
trainer order, the canonical blob and its Merkle root. `compute_round` is a pure function
of (store contents, spec, global model, commits): every honest validator gets identical
bytes from it, and the auditor re-runs it verbatim to check each finalised round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fedledger.data.stats import split_stats
from fedledger.roles.dp import Budget, CentralNoise, Clip, read_private
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import RoundOutcome
from fedledger.roles.round_types import RoundInputs, RoundState, SecureInputs, Stage, trainer_order
from fedledger.roles.secure import FetchMasked, Unmask
from fedledger.roles.stages import AggregateRule, Fetch, Mean, RootGuard, Sum, Validate
from fedledger.roles.stats_round import (
    REASON_PREFIX,
    AddStatistics,
    CheckStatisticsTotal,
    SumStatistics,
    check_statistics,
    is_stats_round,
    statistics_layout,
)
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore


def stages_for(spec: JobSpec, *, statistics: bool = False) -> list[Stage]:
    """The round's stages in order: what each mode adds, decided once, here.

    `statistics`: the round gathers the job's feature statistics (`is_stats_round`).
    """
    if statistics:
        if spec.secure:
            return [
                FetchMasked(statistics_layout),
                Unmask(statistics_layout),
                CheckStatisticsTotal(),
                AddStatistics(),
            ]
        return [
            Fetch(prefix=REASON_PREFIX),
            Validate(check_statistics, prefix=REASON_PREFIX),
            SumStatistics(),
            AddStatistics(),
        ]
    if spec.secure:
        # the trainers clipped and (DP) added their noise shares before masking
        return [FetchMasked(), Unmask(), *([Budget()] if spec.dp else []), Mean(unweighted=spec.dp)]
    if spec.dp:
        noisy_mean = [Clip(), Sum(), CentralNoise(), Mean(unweighted=True)]  # privacy/dp.noisy_mean
        return [Fetch(read_private), Validate(), Budget(), *noisy_mean]
    root = [RootGuard()] if spec.aggregation == "fltrust" else []
    return [Fetch(), Validate(), *root, AggregateRule()]


def run_round(inputs: RoundInputs, stages: Sequence[Stage]) -> RoundOutcome:
    """Applies `stages` in order from an empty state, then builds the round's outcome."""
    state = RoundState()
    for stage in stages:
        state = stage.apply(inputs, state)
    model = inputs.unchanged() if state.model is None else state.model
    if inputs.carried:
        model = {**model, **inputs.carried}
    return RoundOutcome.of(
        model,
        job_id=inputs.job_id,
        round=inputs.round,
        version=inputs.version,
        accepted=list(state.accepted),
        rejected=sorted(state.rejected, key=lambda r: trainer_order(r.trainer)),
        deltas={t: dict(d) for t, d in state.deltas.items()},
        faults=dict(state.faults),
    )


def round_inputs(
    *,
    store: BlobStore,
    spec: JobSpec,
    job_id: int,
    round: int,
    version: int,
    global_model: Mapping[str, np.ndarray],
    commits: Sequence[CommitRecord],
    root_trainer: str = "",
    secure: SecureInputs | None = None,
    releases_before: int = 0,
) -> RoundInputs:
    """The round's inputs. A model round works on the weights: a job that standardises
    federatedly carries its statistics tensors (version 1's) unchanged into every later version.
    """
    carried: dict[str, np.ndarray] = {}
    if not is_stats_round(spec, version):
        global_model, carried = split_stats(global_model)
    return RoundInputs(
        store=store,
        spec=spec,
        job_id=job_id,
        round=round,
        version=version,
        global_model=global_model,
        commits=tuple(sorted(commits, key=lambda c: trainer_order(c.trainer))),
        root_trainer=root_trainer,
        secure=secure,
        releases_before=releases_before,
        carried=carried,
    )


def compute_round(
    *,
    store: BlobStore,
    spec: JobSpec,
    job_id: int,
    round: int,
    version: int,
    global_model: Mapping[str, np.ndarray],
    commits: Sequence[CommitRecord],
    root_trainer: str = "",
    secure: SecureInputs | None = None,
    releases_before: int = 0,
) -> RoundOutcome:
    """Validates every commit of `round` and aggregates the accepted ones into version+1.

    Updates that fail validation are flagged; of the valid ones the rule flags what it can
    justify. Every other valid update is accepted (and paid), used by the rule or not. A
    secure job's rounds need `secure` (its key directory and reveals); a DP job's need
    `releases_before` (its earlier noisy releases, for the budget).
    """
    inputs = round_inputs(
        store=store, spec=spec, job_id=job_id, round=round, version=version,
        global_model=global_model, commits=commits, root_trainer=root_trainer, secure=secure,
        releases_before=releases_before,
    )  # fmt: skip
    return run_round(inputs, stages_for(spec, statistics=is_stats_round(spec, version)))
