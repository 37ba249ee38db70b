"""Record-level differential privacy: DP-SGD inside one organisation, through Opacus.

Organisation-level DP (`privacy/dp.py`) protects a whole organisation by noising the sum of
ten clipped updates, and with ten organisations that noise drowns the model. A hospital must
protect each patient, not itself; that is DP-SGD over its own records (Abadi et al. 2016):
each step samples every record independently with probability q (Poisson sampling), clips
each record's gradient to C, adds N(0, σ²C²) to the sum and divides by the expected batch
size qN. Opacus, the PyTorch library for it, does the per-sample gradients (`GradSampleModule`),
the clipping and the noise (`DPOptimizer`). This file does exactly that arithmetic with the
spec's parameters, taking the per-sample gradients from `torch.func` (see `dp_train` for why),
and is tested step for step against Opacus (tests/unit/test_record_dp.py).

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
from fedledger.training.ghost import GhostClipper, NotGhostable, ghost_clipper

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
    noise, as the analysis assumes); the update is (Σ clip(gᵢ, C) + N(0, σ²C²)) / round(qN),
    then plain SGD with the client's learning rate and momentum: Opacus's `DPOptimizer`
    arithmetic, draw for draw from the same generator. `seed` None draws batches and noise
    from the operating system (a deployment); an integer makes them reproducible (a
    simulation).

    The clipped sum comes, in order of preference, from ghost clipping (`training/ghost.py`:
    Linear and Conv2d layers, no per-record dense-layer gradient written), from per-sample
    gradients by `torch.func` (vmap over grad), or from Opacus's hooks (`GradSampleModule`);
    all three give the same sum (tested). On the default CNN a step took ×2.8–3.3 a plain one
    through the hooks and ×2.2 through `torch.func`.
    """
    check_private_model(model)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # (N, *input_shape)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))  # (N,)
    n = len(xt)
    rng = np.random.default_rng(secrets.randbits(128) if seed is None else seed)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    params: dict[str, torch.Tensor] = {k: p for k, p in model.named_parameters() if p.requires_grad}
    per_sample: _PerSample | GhostClipper = (
        _ghost(model, params, xt[:2], yt[:2])
        or _functional_grads(model, params, xt[:1], yt[:1])
        or _HookGrads(model)
    )
    optimizer = torch.optim.SGD(params.values(), lr=lr, momentum=momentum)
    expected = max(1, round(dp.sample_rate * n))
    std = dp.noise_multiplier * dp.max_grad_norm
    model.train()
    total, count = 0.0, 0
    try:
        for _ in range(dp.steps):
            idx = torch.from_numpy(np.flatnonzero(rng.random(n) < dp.sample_rate))  # (B,), B ~ Bin(N, q)
            if len(idx):
                try:
                    summed, loss = per_sample.clipped(xt[idx], yt[idx], dp.max_grad_norm)
                except NotGhostable:  # shared weights: per-record gradients from torch.func instead
                    per_sample.close()
                    per_sample = _functional_grads(model, params, xt[:1], yt[:1]) or _HookGrads(model)
                    summed, loss = per_sample.clipped(xt[idx], yt[idx], dp.max_grad_norm)
                total += loss
                count += len(idx)
            else:
                summed = [torch.zeros_like(p) for p in params.values()]
            with torch.no_grad():
                for p, g in zip(params.values(), summed, strict=True):
                    noise = torch.normal(mean=0, std=std, size=g.shape, generator=generator)
                    p.grad = ((g + noise) / expected).view_as(p)
            optimizer.step()
    finally:
        per_sample.close()
        for p in params.values():
            p.grad = None
    return total / max(count, 1)


def _ghost(
    model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> GhostClipper | None:
    """Ghost clipping, if the model's layers allow it and it adds up to autograd's gradient on a
    couple of records (a weight used outside its layer, an in-place op on a layer's output: no)."""
    clipper = ghost_clipper(model, list(params))
    if clipper is None:
        return None
    try:
        ok = clipper.matches_autograd(x, y)
    except (NotGhostable, RuntimeError):
        ok = False
    if not ok:
        clipper.close()
        return None
    return clipper


def _clipped_sum(grads: list[torch.Tensor], clip: float) -> list[torch.Tensor]:
    """Σᵢ min(1, C / (‖gᵢ‖ + 1e-6)) · gᵢ per parameter, ‖gᵢ‖ over all of record i's gradient.

    Opacus's `DPOptimizer.clip_and_accumulate`, operation for operation.
    """
    b = len(grads[0])
    norms = torch.stack([g.reshape(b, -1).norm(2, dim=-1) for g in grads], dim=1).norm(2, dim=1)  # (B,)
    factor = (clip / (norms + 1e-6)).clamp(max=1.0)  # (B,)
    return [torch.einsum("i,i...", factor, g) for g in grads]


class _PerSample:
    """Per-sample gradients of the cross-entropy of each record, and the batch's summed loss."""

    names: list[str]  # the parameters, in the order `clipped` returns their sums

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], float]:
        raise NotImplementedError

    def clipped(self, x: torch.Tensor, y: torch.Tensor, clip: float) -> tuple[list[torch.Tensor], float]:
        """(Σᵢ min(1, C/‖gᵢ‖) gᵢ per parameter, the batch's summed loss)."""
        grads, loss = self(x, y)  # name -> (B, *shape)
        return _clipped_sum([grads[k] for k in self.names], clip), loss

    def close(self) -> None:
        """Leaves the model as the client's again."""


class _FunctionalGrads(_PerSample):
    def __init__(self, model: nn.Module, params: dict[str, torch.Tensor]) -> None:
        from torch.func import functional_call, grad_and_value, vmap

        buffers = dict(model.named_buffers())

        def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))  # (1, classes)
            return nn.functional.cross_entropy(out, yi.unsqueeze(0), reduction="sum")

        self.params = params
        self.names = list(params)
        # randomness="different": a dropout layer draws its own mask for every record
        self.fn = vmap(grad_and_value(loss), in_dims=(None, 0, 0), randomness="different")

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], float]:
        detached = {k: v.detach() for k, v in self.params.items()}
        grads, losses = self.fn(detached, x, y)
        return grads, float(losses.sum())


def _functional_grads(
    model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> _FunctionalGrads | None:
    """`torch.func` per-sample gradients, or None if the model's operations cannot be mapped over."""
    try:
        fn = _FunctionalGrads(model, params)
        fn(x, y)  # one record: an operation vmap does not support fails here, before any step
    except (RuntimeError, NotImplementedError, TypeError):
        return None
    return fn


class _HookGrads(_PerSample):
    """Opacus's `GradSampleModule`: backward hooks that keep each record's gradient."""

    def __init__(self, model: nn.Module) -> None:
        from opacus import GradSampleModule

        self.model = model
        self.names = [k for k, p in model.named_parameters() if p.requires_grad]
        self.wrapped: Any = GradSampleModule(model, loss_reduction="sum")

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[dict[str, torch.Tensor], float]:
        self.wrapped.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(self.wrapped(x), y, reduction="sum")
        with warnings.catch_warnings():
            # the inputs need no gradient, only the weights: Opacus's hook says so, harmlessly
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss.backward()  # type: ignore[no-untyped-call]
        named = self.model.named_parameters()
        grads = {k: p.grad_sample for k, p in named if p.requires_grad}  # type: ignore[attr-defined]
        return grads, float(loss.detach())

    def close(self) -> None:
        self.wrapped._close()  # remove the hooks and per-sample buffers
