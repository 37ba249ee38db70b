"""A trust-bootstrapped rule in the spirit of FLTrust (Cao et al. 2021), in exact integers.

FLTrust trusts one reference update trained on a small clean root dataset. Here that
root update is committed on chain like any other, by the job's root trainer (the
sponsor, who curates the root dataset; its hash is in the spec): training is floating
point and cannot be re-run bit for bit on every validator's hardware, but a committed
update can be checked and used identically by all of them (docs/design.md).

Each other update gets trust ts_i = max(0, cos(g_i, g_0)) in 2**-20 units, is rescaled
to the root update's norm, and the aggregate is the trust-weighted mean. The root update
itself is not aggregated and not paid; without it the round changes nothing and fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from fedledger.aggregation.base import AggregationRule, RoundAggregate, Update, ordered_updates, register_rule
from fedledger.aggregation.fedavg import fedavg
from fedledger.aggregation.screen import Screen, screen_updates
from fedledger.aggregation.stats import apply_delta_or_keep, div_half_up, model_dot, squared_norm

TRUST_BITS = 20


def trust_scores(deltas: Sequence[Mapping[str, np.ndarray]], root: Mapping[str, np.ndarray]) -> list[int]:
    """floor(max(0, cos(d, root)) * 2**20) per delta, from exact dot products and isqrt norms."""
    root_norm = math.isqrt(squared_norm(root))
    scores = []
    for d in deltas:
        norm = math.isqrt(squared_norm(d))
        dot = model_dot(d, root)
        trusted = norm > 0 and root_norm > 0 and dot > 0
        scores.append((dot << TRUST_BITS) // (norm * root_norm) if trusted else 0)
    return scores


def rescale(delta: Mapping[str, np.ndarray], target_norm: int) -> dict[str, np.ndarray]:
    """delta * target / ||delta||, halves rounded up (an all-zero delta stays zero)."""
    norm = math.isqrt(squared_norm(delta))
    if norm == 0:
        return {k: np.asarray(v, dtype=np.int64) for k, v in delta.items()}
    return {
        k: np.asarray(div_half_up(v.reshape(-1).astype(object) * target_norm, norm), dtype=np.int64).reshape(
            v.shape
        )
        for k, v in delta.items()
    }


def fltrust(
    deltas: Sequence[Mapping[str, np.ndarray]], weights: Sequence[int], root: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray] | None:
    """Trust-weighted mean of the deltas rescaled to ||root||; None when no delta earns trust.

    `weights` are ignored, as in FLTrust: trust, not claimed data size, decides.
    """
    scores = trust_scores(deltas, root)
    if sum(scores) == 0:
        return None
    target = math.isqrt(squared_norm(root))
    kept = [(rescale(d, target), s) for d, s in zip(deltas, scores, strict=True) if s > 0]
    return fedavg([d for d, _ in kept], [s for _, s in kept])


@register_rule
class FLTrust(AggregationRule):
    """new global = global + FLTrust aggregate against the root trainer's committed update."""

    name = "fltrust"

    def __init__(self, *, root_trainer: str = "", screen: Screen | None = None) -> None:
        self.root_trainer = root_trainer.lower()
        self.screen = screen

    def aggregate(self, global_model: Mapping[str, np.ndarray], updates: Sequence[Update]) -> RoundAggregate:
        ordered = ordered_updates(updates, global_model)
        root = next((u for u in ordered if u.trainer.lower() == self.root_trainer), None)
        others = [u for u in ordered if u is not root]
        if root is None or not others:
            return RoundAggregate(model=apply_delta_or_keep(global_model, None), used=(), flagged={})
        flagged = screen_updates(others, root.delta, self.screen) if self.screen is not None else {}
        kept = [u for u in others if u.trainer not in flagged]
        scores = trust_scores([u.delta for u in kept], root.delta)
        delta = fltrust([u.delta for u in kept], [u.num_examples for u in kept], root.delta) if kept else None
        used = tuple(u.trainer for u, s in zip(kept, scores, strict=True) if s > 0)
        return RoundAggregate(model=apply_delta_or_keep(global_model, delta), used=used, flagged=flagged)
