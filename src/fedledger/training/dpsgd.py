"""Record-level differential privacy: DP-SGD inside one organisation, through Opacus.

Organisation-level DP (`privacy/dp.py`) protects a whole organisation by noising the sum of
ten clipped updates, and with ten organisations that noise drowns the model. A hospital must
protect each patient, not itself; that is DP-SGD over its own records (Abadi et al. 2016):
each step samples every record independently with probability q (Poisson sampling), clips
each record's gradient to C, adds N(0, σ²C²) to the sum and divides by the expected batch
size qN. Opacus does the per-sample gradients (`GradSampleModule`), the clipping and the
noise (`DPOptimizer`); this file only drives it with the spec's parameters.

Everything the accountant needs is public: z, q and the number of steps per round are in the
spec (`JobSpec.dp_steps_per_round` does not depend on N), so anyone can recompute each
organisation's ε from its commits. Nobody can verify from outside that the noise was added:
that is the trust a record-level job places in each organisation's own node (docs/design.md).

The batches and the noise come from the operating system's randomness: anyone who could
predict the noise could subtract it from the update, and the amplification by sampling
assumes nobody knows which records a step drew. A simulation passes a seed instead (derived
from the spec's public seed and the round), so it reruns bit for bit.
Opacus and its optimiser are imported on the first DP-SGD call only: they cost seconds of
start-up that jobs without record-level DP should not pay.
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from fedledger.errors import SpecError

if TYPE_CHECKING:
    from fedledger.spec import JobSpec


@dataclass(frozen=True)
class DpSgd:
    """The DP-SGD parameters of a round, all from the spec."""

    noise_multiplier: float  # z: noise σ over the clip norm
    max_grad_norm: float  # C: each record's gradient is clipped to this L2 norm
    sample_rate: float  # q: each record's chance to be in a step's batch
    steps: int  # DP-SGD steps per round

    @classmethod
    def from_spec(cls, spec: JobSpec) -> DpSgd:
        return cls(
            noise_multiplier=spec.noise_multiplier,
            max_grad_norm=spec.dp_max_grad_norm,
            sample_rate=spec.dp_sample_rate,
            steps=spec.dp_steps_per_round,
        )


def check_private_model(model: nn.Module) -> None:
    """Refuses a model whose layers Opacus cannot give per-sample gradients (BatchNorm, say).

    Opacus can replace BatchNorm by GroupNorm, but that is another architecture than the one
    the consortium approved by digest, so the fix is the model author's to make.
    """
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise SpecError(
            "model",
            f"dp_level=record needs per-sample gradients, which this model cannot give: {errors[0]} "
            "(replace BatchNorm by GroupNorm or LayerNorm in the model itself)",
        )


def dp_train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    dp: DpSgd,
    lr: float,
    momentum: float,
    seed: int | None,
) -> float:
    """`dp.steps` DP-SGD steps on (x, y); returns the mean training loss over the sampled records.

    The batch of a step is drawn by Poisson sampling (possibly empty: the step then adds only
    noise, as the analysis assumes); the update is (Σ clip(gᵢ, C) + N(0, σ²C²)) / round(qN).
    `seed` None draws batches and noise from the operating system (a deployment); an integer
    makes them reproducible (a simulation).
    """
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    check_private_model(model)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # (N, *input_shape)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))  # (N,)
    n = len(xt)
    rng = np.random.default_rng(secrets.randbits(128) if seed is None else seed)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    wrapped: Any = GradSampleModule(model, loss_reduction="sum")
    optimizer = DPOptimizer(
        torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum),
        noise_multiplier=dp.noise_multiplier,
        max_grad_norm=dp.max_grad_norm,
        expected_batch_size=max(1, round(dp.sample_rate * n)),
        loss_reduction="mean",  # divide the noised sum by the expected batch size
        generator=generator,
    )
    model.train()
    total, count = 0.0, 0
    try:
        with warnings.catch_warnings():
            # an empty Poisson batch has no input that requires grad: Opacus's hook says so, harmlessly
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            for _ in range(dp.steps):
                idx = torch.from_numpy(np.flatnonzero(rng.random(n) < dp.sample_rate))  # (B,), B ~ Bin(N, q)
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(wrapped(xt[idx]), yt[idx], reduction="sum")
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                total += float(loss.detach())
                count += len(idx)
    finally:
        wrapped._close()  # remove the hooks and per-sample buffers: the model is the client's again
    return total / max(count, 1)
