"""A round's coalition utility: how good the model a coalition's updates would make is.

Two utilities, one exact and slow, one approximate and fast:

- `coalition_utility`: the model of coalition S is global + FedAvg(deltas of S) in the
  same exact integers the validators aggregate with, scored on the job's validation set
  (accuracy). One model evaluation per coalition.
- `linear_utility`: the first-order (Taylor) prediction of the validation-loss decrease,
  -g . FedAvg(deltas of S), with g the validation-loss gradient at the global model. One
  backward pass per round, then each coalition costs O(|S|) scalar arithmetic, which is
  what keeps scoring within a fraction of the round's time (bench/scoring.py).

U(empty) is the global model's own value, so a score measures what an update added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from fedledger.aggregation.base import apply_delta
from fedledger.aggregation.fedavg import fedavg
from fedledger.incentives.shapley import Coalition

#: Scores a quantised model: (int64 tensors) -> utility, e.g. validation accuracy.
ModelScore = Callable[[Mapping[str, np.ndarray]], float]


def coalition_utility(
    global_model: Mapping[str, np.ndarray],
    deltas: Sequence[Mapping[str, np.ndarray]],
    weights: Sequence[int],
    score: ModelScore,
) -> Callable[[Coalition], float]:
    """U(S) = score(global + fedavg(deltas[S], weights[S])); U(empty) = score(global)."""

    def utility(coalition: Coalition) -> float:
        members = sorted(coalition)
        if not members:
            return score(global_model)
        mean = fedavg([deltas[i] for i in members], [weights[i] for i in members])
        return score(apply_delta(global_model, mean))

    return utility


def linear_utility(projections: Sequence[float], weights: Sequence[int]) -> Callable[[Coalition], float]:
    """U(S) = -sum_S w_i p_i / sum_S w_i, with p_i = g . delta_i (dequantised); U(empty) = 0.

    p_i < 0 means update i lowers the validation loss to first order.
    """

    def utility(coalition: Coalition) -> float:
        total = sum(weights[i] for i in coalition)
        if not coalition or total == 0:
            return 0.0
        return -sum(weights[i] * projections[i] for i in coalition) / total

    return utility


def linear_prefix(
    projections: Sequence[float], weights: Sequence[int]
) -> Callable[[Sequence[int]], np.ndarray]:
    """The linear utility of every prefix of an order at once, by running sums: (n,) floats."""
    p = np.asarray(projections, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)

    def prefixes(order: Sequence[int]) -> np.ndarray:
        idx = np.asarray(order)
        num, den = np.cumsum(w[idx] * p[idx]), np.cumsum(w[idx])  # (n,) each
        return np.where(den > 0, -num / np.where(den > 0, den, 1.0), 0.0)

    return prefixes
