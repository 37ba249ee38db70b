"""DP-SGD's clipped sum for Linear and Conv2d layers without each record's dense-layer gradient.

DP-SGD needs Σᵢ min(1, C/‖gᵢ‖) · gᵢ over the records i of a batch, where gᵢ is record i's whole
gradient. Materialising every gᵢ (Opacus's hooks, or `torch.func`) writes B copies of the
model's gradient a step; for a dense layer of `in × out` weights that is B · in · out values,
most of the cost of a DP-SGD step on a small CNN. The book-keeping trick (Li et al. 2022,
"ghost clipping"; Bu et al. 2023) avoids it for the layers where the algebra is simple:

- a Linear layer on (B, in) inputs: record i's weight gradient is the outer product δᵢ aᵢᵀ of
  the layer's output gradient and input, so ‖δᵢ aᵢᵀ‖² = ‖δᵢ‖² ‖aᵢ‖², and the clipped sum is one
  matrix product (f ⊙ δ)ᵀ a with fᵢ the clip factor;
- a Conv2d layer: a small CNN's per-record gradients are B · C_out · C_in · k² values, cheap to
  write, so they are formed, by one grouped weight-gradient convolution with the batch folded
  into the channels (one group a record: 4× faster here than unfolding the input), and summed;
- any other layer with parameters: not handled here (`ghost_clipper` returns None and the
  caller takes per-sample gradients from `torch.func`).

One forward and one backward of the summed loss, as for plain SGD, plus the norms and the
re-weighted sums. The result is the same clipped sum as Opacus's `DPOptimizer` computes from
materialised gradients (tested against it, noise and momentum included, in
tests/unit/test_record_dp.py); only the floating-point rounding of the norms differs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn
from torch.nn.grad import conv2d_weight
from torch.utils.hooks import RemovableHandle


@dataclass
class _Layer:
    module: nn.Linear | nn.Conv2d
    weight: str  # the parameter names, as `named_parameters` gives them
    bias: str | None
    inputs: torch.Tensor | None = None  # (B, in) or (B, C_in, H, W), from the forward pass
    grads: torch.Tensor | None = None  # (B, out) or (B, C_out, H', W'), from the backward pass
    uses: int = 0  # forward calls this step: a layer called twice shares its weights between them
    handles: list[RemovableHandle] = field(default_factory=list)


class NotGhostable(Exception):
    """The model called a layer more or less than once in a forward pass (shared weights): its
    per-record gradient is a sum over the calls, which the caller takes from `torch.func`."""


class GhostClipper:
    """Clipped per-record gradient sums of a model whose parameters all sit in Linear/Conv2d layers."""

    def __init__(self, model: nn.Module, layers: list[_Layer], order: list[str]) -> None:
        self.model = model
        self.layers = layers
        self.order = order  # parameter names in the caller's order
        for layer in layers:
            layer.handles.append(layer.module.register_forward_hook(_keep_inputs(layer)))
            layer.handles.append(layer.module.register_full_backward_hook(_keep_grads(layer)))

    def clipped(self, x: torch.Tensor, y: torch.Tensor, clip: float) -> tuple[list[torch.Tensor], float]:
        """(Σᵢ fᵢ gᵢ per parameter in the caller's order, the batch's summed loss)."""
        sums, loss = self._sums(x, y, clip)
        self._forget()
        return [sums[name] for name in self.order], loss

    def matches_autograd(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        """Whether the unclipped per-record gradients add up to autograd's gradient of the batch.

        The algebra sees a weight only through its own layer's calls; a model that also uses a
        layer's weight elsewhere (`h @ layer.weight`) would be clipped on part of the gradient.
        Checked once, on a couple of records, before training.
        """
        sums, _ = self._sums(x, y, math.inf)
        grads = {k: p.grad for k, p in self.model.named_parameters() if k in sums}
        ok = all(
            g is not None and torch.allclose(sums[k], g, rtol=1e-4, atol=1e-6 * (1 + float(g.abs().max())))
            for k, g in grads.items()
        )
        self._forget()
        return ok

    def _sums(self, x: torch.Tensor, y: torch.Tensor, clip: float) -> tuple[dict[str, torch.Tensor], float]:
        loss = nn.functional.cross_entropy(self.model(x), y, reduction="sum")
        for p in self.model.parameters():
            p.grad = None
        with warnings.catch_warnings():
            # the records need no gradient, only the weights: the first layer's hook says so, harmlessly
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss.backward()  # type: ignore[no-untyped-call]
        b = len(x)
        if any(layer.uses != 1 or layer.grads is None for layer in self.layers):
            self._forget()
            raise NotGhostable("a layer was not called exactly once in the forward pass")
        squares = torch.zeros(b, dtype=torch.float32)  # (B,) ‖gᵢ‖² over every layer
        parts = []
        for layer in self.layers:
            assert layer.inputs is not None and layer.grads is not None
            part = _linear(layer) if isinstance(layer.module, nn.Linear) else _conv(layer)
            squares += part.squares
            parts.append(part)
        factor = (clip / (squares.sqrt() + 1e-6)).clamp(max=1.0)  # (B,)
        sums: dict[str, torch.Tensor] = {}
        for layer, part in zip(self.layers, parts, strict=True):
            sums.update(part.summed(factor, layer))
        return sums, float(loss.detach())

    def _forget(self) -> None:
        for layer in self.layers:
            layer.inputs = layer.grads = None
            layer.uses = 0
        for p in self.model.parameters():
            p.grad = None

    def close(self) -> None:
        for layer in self.layers:
            for h in layer.handles:
                h.remove()
            layer.handles.clear()
        self._forget()


def _keep_inputs(layer: _Layer) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        layer.inputs = inputs[0].detach()
        layer.uses += 1

    return hook


def _keep_grads(layer: _Layer) -> Callable[[nn.Module, Any, Any], None]:
    def hook(module: nn.Module, grad_inputs: Any, grad_outputs: Any) -> None:
        layer.grads = grad_outputs[0].detach()

    return hook


@dataclass
class _Part:
    squares: torch.Tensor  # (B,) this layer's share of ‖gᵢ‖²
    weight: torch.Tensor | None  # the materialised (B, *weight.shape) gradients, or None (ghost)
    bias: torch.Tensor | None  # (B, out)
    a: torch.Tensor | None = None  # ghost: the inputs (B, in)
    d: torch.Tensor | None = None  # ghost: the output gradients (B, out)

    def summed(self, factor: torch.Tensor, layer: _Layer) -> dict[str, torch.Tensor]:
        shape = layer.module.weight.shape
        out: dict[str, torch.Tensor] = {}
        if self.weight is None:
            assert self.a is not None and self.d is not None
            out[layer.weight] = (factor[:, None] * self.d).T @ self.a  # (out, in)
        else:
            out[layer.weight] = torch.einsum("i,i...", factor, self.weight).reshape(shape)
        if layer.bias is not None:
            assert self.bias is not None
            out[layer.bias] = torch.einsum("i,i...", factor, self.bias)
        return out


def _linear(layer: _Layer) -> _Part:
    a, d = layer.inputs, layer.grads
    assert a is not None and d is not None
    if a.dim() > 2:  # (B, ..., in): record i's gradient sums over positions; form it
        a, d = a.reshape(len(a), -1, a.shape[-1]), d.reshape(len(d), -1, d.shape[-1])  # (B, T, ·)
        weight = torch.einsum("bto,bti->boi", d, a)  # (B, out, in)
        bias_t = d.sum(1) if layer.bias is not None else None  # (B, out)
        squares = (weight * weight).sum((1, 2)) + ((bias_t * bias_t).sum(1) if bias_t is not None else 0.0)
        return _Part(squares=squares, weight=weight, bias=bias_t)
    bias = d if layer.bias is not None else None  # (B, out)
    dd = (d * d).sum(1)  # (B,)
    squares = dd * (a * a).sum(1) + (dd if bias is not None else 0.0)
    return _Part(squares=squares, weight=None, bias=bias, a=a, d=d)


def _conv(layer: _Layer) -> _Part:
    m = layer.module
    assert isinstance(m, nn.Conv2d)
    a, d = layer.inputs, layer.grads
    assert a is not None and d is not None
    b = len(a)
    padding = cast(tuple[int, ...], m.padding)  # not "same"/"valid": `ghost_clipper` refused those
    c_in, c_out = m.in_channels, m.out_channels
    # each record's weight gradient at once: the batch folded into channels, one group a record
    weight = conv2d_weight(  # type: ignore[no-untyped-call]
        a.reshape(1, b * c_in, *a.shape[2:]),
        (b * c_out, c_in, *m.kernel_size),
        d.reshape(1, b * c_out, *d.shape[2:]),
        stride=m.stride,
        padding=padding,
        dilation=m.dilation,
        groups=b,
    ).reshape(b, c_out, -1)  # (B, C_out, C_in·k²)
    d = d.reshape(b, c_out, -1)  # (B, C_out, T)
    bias = d.sum(2) if layer.bias is not None else None  # (B, C_out)
    squares = (weight * weight).sum((1, 2)) + ((bias * bias).sum(1) if bias is not None else 0.0)
    return _Part(squares=squares, weight=weight, bias=bias)


def ghost_clipper(model: nn.Module, order: list[str]) -> GhostClipper | None:
    """A clipper for `model`, or None if a parameter sits outside a layer it handles.

    Handled: Linear on 2-D inputs, and Conv2d with groups 1, zero padding and numeric padding
    (not "same"); every trainable parameter must be one of theirs.
    """
    layers: list[_Layer] = []
    covered: set[str] = set()
    for prefix, module in model.named_modules():
        own = [(n, p) for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        if isinstance(module, nn.Conv2d):
            if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
                return None
        elif not isinstance(module, nn.Linear):
            return None
        names = {n: f"{prefix}.{n}" if prefix else n for n, _ in own}
        if set(names) - {"weight", "bias"} or "weight" not in names:  # a frozen weight, a trained bias
            return None
        layers.append(_Layer(module, names["weight"], names.get("bias")))
        covered.update(names.values())
    if not layers or covered != set(order):
        return None
    return GhostClipper(model, layers, order)
