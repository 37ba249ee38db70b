"""Coordinate-wise trimmed mean (Yin et al. 2018) in exact integers.

Per coordinate, the k = floor(beta * n) largest and k smallest values are dropped and
the rest averaged, so up to k attackers per side cannot pull any coordinate outside the
honest range. Unweighted, like Flower's `FedTrimmedAvg` and for the same reason as the
median.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from fedledger.aggregation.base import (
    AggregationRule,
    RoundAggregate,
    Update,
    check_inputs,
    max_abs,
    ordered_updates,
    register_rule,
)
from fedledger.aggregation.screen import Screen, aggregate_screened
from fedledger.aggregation.stats import INT64_SAFE_BOUND, column_blocks, div_half_up, exact_fraction
from fedledger.errors import SpecError


def trim_count(n: int, trim_fraction: Fraction) -> int:
    """Values dropped at each end: floor(beta * n), exactly (Flower: int(beta * n))."""
    return int(trim_fraction * n)


def trimmed_mean(
    deltas: Sequence[Mapping[str, np.ndarray]],
    weights: Sequence[int],
    trim_fraction: Fraction | float = Fraction(1, 5),
) -> dict[str, np.ndarray]:
    """Mean of the middle n - 2k values per coordinate, halves rounded up; weights ignored."""
    beta = trim_fraction if isinstance(trim_fraction, Fraction) else exact_fraction(trim_fraction)
    if not 0 <= beta < Fraction(1, 2):
        raise SpecError("trim_fraction", f"{float(beta):g} must be in [0, 0.5)")
    check_inputs(deltas, weights)
    n = len(deltas)
    k = trim_count(n, beta)
    kept = n - 2 * k
    out = {name: np.empty(arr.size, dtype=np.int64) for name, arr in deltas[0].items()}
    for name, cols, stack in column_blocks(deltas):
        middle = np.sort(stack, axis=0)[k : n - k]  # (kept, c)
        if max_abs(middle) * kept < INT64_SAFE_BOUND:
            acc = middle.sum(axis=0)  # (c,) int64, cannot wrap
        else:
            acc = middle.astype(object).sum(axis=0)  # (c,) Python ints
        out[name][cols] = np.asarray(div_half_up(acc, kept), dtype=np.int64)
    return {name: out[name].reshape(arr.shape) for name, arr in deltas[0].items()}


@register_rule
class TrimmedMean(AggregationRule):
    """new global = global + trimmed mean (beta = trim_fraction) of the unflagged deltas."""

    name = "trimmed_mean"

    def __init__(self, *, trim_fraction: float = 0.2, screen: Screen | None = None) -> None:
        self.trim_fraction = exact_fraction(trim_fraction)
        if not 0 <= self.trim_fraction < Fraction(1, 2):
            raise SpecError("trim_fraction", f"{trim_fraction:g} must be in [0, 0.5)")
        self.screen = screen

    def aggregate(self, global_model: Mapping[str, np.ndarray], updates: Sequence[Update]) -> RoundAggregate:
        def combine(us: Sequence[Update]) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
            delta = trimmed_mean([u.delta for u in us], [u.num_examples for u in us], self.trim_fraction)
            return delta, tuple(u.trainer for u in us)

        return aggregate_screened(global_model, ordered_updates(updates, global_model), self.screen, combine)
