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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from fedledger.data import stats
from fedledger.errors import InvalidUpdate
from fedledger.roles.job import CommitRecord, fetch_committed
from fedledger.roles.outcome import Rejection, RoundOutcome, update_metadata
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore

if TYPE_CHECKING:
    from fedledger.roles.secure import SecureInputs


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


def compute_stats_round(
    *,
    store: BlobStore,
    spec: JobSpec,
    job_id: int,
    round: int,
    version: int,
    global_model: Mapping[str, np.ndarray],
    commits: Sequence[CommitRecord],
    secure: SecureInputs | None = None,
) -> RoundOutcome:
    """Checks every committed statistics update and sums the valid ones into version 1.

    Same contract as `compute_round`: a pure function every honest validator and the
    audit evaluate to identical bytes. An invalid update is flagged, as in any round.
    """
    if spec.secure:
        return _secure_stats_round(
            store=store, spec=spec, job_id=job_id, round=round, version=version,
            global_model=global_model, commits=commits, secure=secure,
        )  # fmt: skip
    assert spec.data_schema is not None and spec.data_schema.kind == "table"
    features = len(spec.data_schema.numeric)
    rejected: list[Rejection] = []
    accepted: list[CommitRecord] = []
    contributions: list[dict[str, np.ndarray]] = []
    for c in sorted(commits, key=lambda c: int(c.trainer, 16)):
        try:
            tensors, meta = fetch_committed(store, c)
            expected = update_metadata(job_id, c.round, c.trainer)
            if meta != expected:
                raise InvalidUpdate(f"blob metadata {meta} does not match the commit {expected}")
            stats.check_contribution(tensors, features=features, num_examples=c.num_examples)
        except InvalidUpdate as exc:
            rejected.append(Rejection(c.trainer, c.commitment, f"statistics round: {exc}"))
            continue
        accepted.append(c)
        contributions.append(tensors)
    model = {k: np.asarray(v, dtype=np.int64) for k, v in global_model.items()}
    if contributions:
        model.update(stats.sum_contributions(contributions))
    return RoundOutcome.of(
        model, job_id=job_id, round=round, version=version, accepted=accepted, rejected=rejected
    )


def _secure_stats_round(
    *,
    store: BlobStore,
    spec: JobSpec,
    job_id: int,
    round: int,
    version: int,
    global_model: Mapping[str, np.ndarray],
    commits: Sequence[CommitRecord],
    secure: SecureInputs | None,
) -> RoundOutcome:
    from fedledger.roles.secure import secure_sum, sum_rejections

    if secure is None:
        raise ValueError("a secure-aggregation round needs its key directory and reveals (secure=)")
    assert spec.data_schema is not None and spec.data_schema.kind == "table"
    ordered = sorted(commits, key=lambda c: int(c.trainer, 16))
    meta = {c.trainer: update_metadata(job_id, round, c.trainer) for c in ordered}
    s = secure_sum(
        store=store,
        spec=spec,
        job_id=job_id,
        round=round,
        global_model=stats_layout(spec),
        commits=ordered,
        inputs=secure,
        metadata_for=meta,
    )
    rejected, keyed = sum_rejections(s, ordered)
    model = {k: np.asarray(v, dtype=np.int64) for k, v in global_model.items()}
    accepted: list[CommitRecord] = []
    if s.total is not None:
        total = {k: np.asarray(v, dtype=np.int64) for k, v in s.total.items()}
        try:
            stats.check_contribution(
                total,
                features=len(spec.data_schema.numeric),
                num_examples=sum(c.num_examples for c in keyed),
                parts=len(keyed),
            )
        except InvalidUpdate as exc:  # someone's masked sums were wrong; nobody can say whose
            why = f"statistics round: the unmasked total is not valid statistics ({exc})"
            rejected += [Rejection(c.trainer, c.commitment, why, flagged=False) for c in keyed]
        else:
            accepted = keyed
            model.update(total)
    rejected.sort(key=lambda r: int(r.trainer, 16))
    return RoundOutcome.of(
        model,
        job_id=job_id,
        round=round,
        version=version,
        accepted=accepted,
        rejected=rejected,
        faults=dict(s.recovery.faults) if s.recovery is not None else {},
    )
