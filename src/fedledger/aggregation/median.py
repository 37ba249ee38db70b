"""Coordinate-wise median (Yin et al. 2018) in exact integers.

Each coordinate of the aggregate is the median of the trainers' values there, so a
minority can move no coordinate past the honest values. Like Flower's `FedMedian` it is
unweighted: weighting by claimed example counts would hand the outcome to whoever
claims the most.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fedledger.aggregation.base import (
    AggregationRule,
    RoundAggregate,
    Update,
    check_inputs,
    ordered_updates,
    register_rule,
)
from fedledger.aggregation.screen import Screen, aggregate_screened
from fedledger.aggregation.stats import coordinate_median


def median(deltas: Sequence[Mapping[str, np.ndarray]], weights: Sequence[int]) -> dict[str, np.ndarray]:
    """Coordinate-wise median of int64 deltas; weights are ignored (the signature is FedAvg's).

    With an even count the median is the mean of the two middle values, halves rounded
    up: floor((lo + hi + 1) / 2) (see `stats.coordinate_median`).
    """
    check_inputs(deltas, weights)
    return coordinate_median(deltas)


@register_rule
class Median(AggregationRule):
    """new global = global + median of the unflagged deltas."""

    name = "median"

    def __init__(self, *, screen: Screen | None = None) -> None:
        self.screen = screen

    def aggregate(self, global_model: Mapping[str, np.ndarray], updates: Sequence[Update]) -> RoundAggregate:
        def combine(us: Sequence[Update]) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
            return median([u.delta for u in us], [u.num_examples for u in us]), tuple(u.trainer for u in us)

        return aggregate_screened(global_model, ordered_updates(updates, global_model), self.screen, combine)
