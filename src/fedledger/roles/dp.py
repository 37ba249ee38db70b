"""Differentially private rounds for the roles: what a trainer adds, what validators compute and post.

The primitives are `privacy/dp.py` (exact clipping, the deterministic discrete Gaussian) and
`privacy/accountant.py` (dp-accounting); this module wires them to the rounds:

    plain mode    the trainer clips its delta and puts a secret nonce in its update blob; the
                  validators' stages (fetch → validate → budget → clip → sum → noise → mean)
                  clip again (the sensitivity must not rest on trainers' honesty), draw the
                  central noise from HKDF over the accepted updates' nonces, and commit
                  ⌊(Σ clip(dᵢ) + N_Z(0, σ²)) / n⌉ (`privacy/dp.noisy_mean`, stage by stage):
                  every validator and the audit draw the same noise, a consumer of the model
                  without store access cannot
    secure mode   the trainer clips, adds its share N_Z(0, σ²/n_min) and masks with weight 1;
                  validators unmask the noisy sum, check the budget and divide by n
                  (`roles/secure.py`'s stages, then this module's `Budget`)

After every quorum-agreed release the chain records the job's cumulative ε (`PrivacySpent`):
validators post `micro_epsilon(ε after k releases)`, k counting the job's earlier releases,
and the quorum must agree on it like on the model. The budget is a round count fixed by
public values when the job is created (the spec check refuses more rounds than it affords);
should failed rounds have used it up, validators release nothing more and the job stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from fedledger.aggregation.stats import INT64_SAFE_BOUND
from fedledger.errors import InvalidUpdate, PrivacyError
from fedledger.privacy.dp import add_noise, central_noise, central_seed, clip_update, new_nonce, noise_share
from fedledger.privacy.dp import central_sigma_q as _sigma
from fedledger.privacy.masking import flatten, unflatten
from fedledger.roles.job import CommitRecord, fetch_committed
from fedledger.roles.outcome import update_metadata
from fedledger.roles.round_types import Candidate, RoundInputs, RoundState, Stage
from fedledger.spec import JobSpec, dp_micro_epsilon, dp_rounds_affordable

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


# -- validator side: the stages a DP round adds (`roles/pipeline.py` orders them) ----------------

BUDGET_SPENT = "the job's (ε, δ) budget is spent: nothing more is released"


def read_private(inputs: RoundInputs, c: CommitRecord) -> Candidate:
    """A plain-mode DP update: the commit's metadata plus the trainer's 32-byte secret nonce."""
    delta, meta = fetch_committed(inputs.store, c)
    expected = update_metadata(inputs.job_id, inputs.round, c.trainer)
    nonce_hex = meta.get(NONCE, "")
    if {k: v for k, v in meta.items() if k != NONCE} != expected:
        raise InvalidUpdate(f"blob metadata {meta} does not match the commit {expected}")
    try:
        nonce = bytes.fromhex(nonce_hex[2:]) if nonce_hex.startswith("0x") else b""
    except ValueError:
        nonce = b""
    if len(nonce) != 32:
        raise InvalidUpdate("a DP update must carry a 32-byte secret nonce (0x-hex) in its metadata")
    return Candidate(c, delta, nonce)


@dataclass(frozen=True)
class Budget(Stage):
    """Once the job's budget affords no more releases, every update is left out unflagged.

    The round then fails and nothing new is released (`releases_before`: the job's earlier
    noisy releases, its PrivacySpent events).
    """

    name = "budget"

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if not state.valid or inputs.releases_before + 1 <= releases_affordable(inputs.spec):
            return state
        return state.drop_all(BUDGET_SPENT)


@dataclass(frozen=True)
class Clip(Stage):
    """Each update clipped to the DP bound again: the sensitivity must not rest on trainers' honesty.

    `privacy/dp.clip_update` is exact and idempotent, so an honest trainer's update is unchanged.
    """

    name = "clip"

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if not state.valid:
            return state
        clip_q = inputs.spec.dp_clip_q
        if len(state.valid) * int(clip_q) >= INT64_SAFE_BOUND:
            raise InvalidUpdate(
                "DP aggregation failed: n · clip bound overflows int64; lower scale_bits or the clip norm"
            )
        try:
            clipped = tuple(replace(v, tensors=clip_update(v.tensors, clip_q)) for v in state.valid)
        except PrivacyError as exc:
            raise InvalidUpdate(f"DP aggregation failed: {exc}") from None
        return replace(state, valid=clipped)


@dataclass(frozen=True)
class CentralNoise(Stage):
    """N_Z(0, σ²) on the sum, drawn from HKDF over the accepted updates' nonces (`privacy/dp.py`).

    Every validator and the audit draw the same noise; a consumer of the model without the
    store's nonces cannot.
    """

    name = "noise"

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if state.total is None:
            return state
        nonces = {v.trainer.lower(): v.extra for v in state.valid}
        seed = central_seed(nonces, noise_context(inputs.job_id, inputs.round))
        size = sum(int(np.size(t)) for t in state.total.values())
        try:
            noisy = add_noise(state.total, central_noise(seed, size, sigma_q(inputs.spec)))
        except PrivacyError as exc:
            raise InvalidUpdate(f"DP aggregation failed: {exc}") from None
        return replace(state, total=noisy)
