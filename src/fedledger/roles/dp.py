"""Differentially private rounds for the roles: what a trainer adds, what validators compute and post.

The primitives are `privacy/dp.py` (exact clipping, the deterministic discrete Gaussian) and
`privacy/accountant.py` (dp-accounting); this module wires them to the rounds:

    plain mode    the trainer clips its delta and puts a secret nonce in its update blob; the
                  validators clip again (the sensitivity must not rest on trainers' honesty),
                  draw the central noise from HKDF over the accepted updates' nonces, and
                  commit ⌊(Σ clip(dᵢ) + N_Z(0, σ²)) / n⌉ (`noisy_mean`): every validator and the
                  audit draw the same noise, a consumer of the model without store access cannot
    secure mode   the trainer clips, adds its share N_Z(0, σ²/n_min) and masks with weight 1;
                  validators unmask the noisy sum and divide by n (`roles/secure.py`)

After every quorum-agreed release the chain records the job's cumulative ε (`PrivacySpent`):
validators post `micro_epsilon(ε after k releases)`, k counting the job's earlier releases,
and the quorum must agree on it like on the model. The budget is a round count fixed by
public values when the job is created (the spec check refuses more rounds than it affords);
should failed rounds have used it up, validators release nothing more and the job stops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from fedledger.aggregation.base import apply_delta
from fedledger.aggregation.validate import validate_update
from fedledger.errors import InvalidUpdate, PrivacyError
from fedledger.privacy.dp import central_seed, clip_update, new_nonce, noise_share, noisy_mean
from fedledger.privacy.dp import central_sigma_q as _sigma
from fedledger.privacy.masking import flatten, unflatten
from fedledger.roles.job import CommitRecord, fetch_committed
from fedledger.roles.outcome import Rejection, RoundOutcome, update_metadata
from fedledger.spec import JobSpec, dp_micro_epsilon, dp_rounds_affordable
from fedledger.store.base import BlobStore

#: metadata key of a plain-mode DP update blob: the trainer's secret 32-byte nonce (hex)
NONCE = "nonce"


def sigma_q(spec: JobSpec) -> Fraction:
    """σ of the noise on the sum, in quantised units: z · C_q (exact Fraction)."""
    return _sigma(spec.noise_multiplier, spec.dp_clip_q)


def noise_context(job_id: int, round: int) -> bytes:
    return b"fedledger/dp/v1" + job_id.to_bytes(32, "big") + round.to_bytes(8, "big")


def releases_affordable(spec: JobSpec) -> int:
    return dp_rounds_affordable(spec.dp_epsilon, spec.dp_delta, spec.noise_multiplier, spec.dp_accountant)


def micro_epsilon_after(spec: JobSpec, releases: int) -> int:
    """What validators post for the round that makes `releases` noisy releases in the job."""
    return dp_micro_epsilon(spec.noise_multiplier, releases, spec.dp_delta, spec.dp_accountant)


# -- trainer side -------------------------------------------------------------------------------


def private_update(
    spec: JobSpec, delta: Mapping[str, np.ndarray], metadata: Mapping[str, str]
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(what the trainer sends, its blob metadata) in a DP job.

    Plain mode: the clipped delta, and a fresh secret nonce in the metadata. Secure mode: the
    clipped delta plus this trainer's noise share (masked next, so nobody sees it alone).
    """
    clipped = clip_update(delta, spec.dp_clip_q)
    if not spec.secure:
        return clipped, {**metadata, NONCE: "0x" + new_nonce().hex()}
    names = sorted(clipped)
    shapes = {n: tuple(clipped[n].shape) for n in names}
    flat = flatten(clipped, names)
    noisy = flat + noise_share(flat.size, sigma_q(spec), spec.effective_min_commits)
    return unflatten(noisy, shapes), dict(metadata)


# -- validator side -----------------------------------------------------------------------------


def _fetch(
    store: BlobStore,
    spec: JobSpec,
    global_model: Mapping[str, np.ndarray],
    expected: Mapping[str, str],
    c: CommitRecord,
) -> tuple[dict[str, np.ndarray], bytes]:
    delta, meta = fetch_committed(store, c)
    nonce_hex = meta.get(NONCE, "")
    if {k: v for k, v in meta.items() if k != NONCE} != dict(expected):
        raise InvalidUpdate(f"blob metadata {meta} does not match the commit {dict(expected)}")
    try:
        nonce = bytes.fromhex(nonce_hex[2:]) if nonce_hex.startswith("0x") else b""
    except ValueError:
        nonce = b""
    if len(nonce) != 32:
        raise InvalidUpdate("a DP update must carry a 32-byte secret nonce (0x-hex) in its metadata")
    validate_update(delta, global_model, spec.max_update_norm_q, scale_bits=spec.scale_bits)
    return delta, nonce


def compute_dp_round(
    *,
    store: BlobStore,
    spec: JobSpec,
    job_id: int,
    round: int,
    version: int,
    global_model: Mapping[str, np.ndarray],
    commits: Sequence[CommitRecord],
    releases_before: int,
) -> RoundOutcome:
    """`compute_round` for a plain-mode DP job: validate, clip, add the central noise, average.

    `releases_before`: noisy aggregates the job released before (PrivacySpent events). If the
    budget affords no more, every update is left out unflagged: the round fails, nothing new
    is released.
    """
    rejected: list[Rejection] = []
    accepted: list[CommitRecord] = []
    deltas: list[Mapping[str, np.ndarray]] = []
    nonces: dict[str, bytes] = {}
    exhausted = releases_before + 1 > releases_affordable(spec)
    for c in sorted(commits, key=lambda c: int(c.trainer, 16)):
        try:
            delta, nonce = _fetch(store, spec, global_model, update_metadata(job_id, round, c.trainer), c)
        except InvalidUpdate as exc:
            rejected.append(Rejection(c.trainer, c.commitment, str(exc)))
            continue
        if exhausted:
            reason = "the job's (ε, δ) budget is spent: nothing more is released"
            rejected.append(Rejection(c.trainer, c.commitment, reason, flagged=False))
            continue
        accepted.append(c)
        deltas.append(delta)
        nonces[c.trainer.lower()] = nonce
    model = {k: np.asarray(v, dtype=np.int64) for k, v in global_model.items()}
    if deltas:
        seed = central_seed(nonces, noise_context(job_id, round))
        try:
            model = apply_delta(global_model, noisy_mean(deltas, spec.dp_clip_q, sigma_q(spec), seed))
        except PrivacyError as exc:
            raise InvalidUpdate(f"DP aggregation failed: {exc}") from None
    return RoundOutcome.of(
        model, job_id=job_id, round=round, version=version, accepted=accepted, rejected=rejected
    )
