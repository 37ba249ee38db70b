"""Krum and Multi-Krum (Blanchard et al. 2017) with exact integer distances.

Each update is scored by the sum of squared distances to its n - f - 2 nearest
neighbours; Krum takes the single best-scored update, Multi-Krum averages the m best
(FedAvg-weighted, as Flower does). Scores are exact Python integers and ties go to the
lower trainer address, so every validator selects the same updates.
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
from fedledger.aggregation.fedavg import fedavg
from fedledger.aggregation.screen import Screen, aggregate_screened
from fedledger.aggregation.stats import squared_distance
from fedledger.errors import SpecError


def krum_min_updates(byzantine: int) -> int:
    """Krum's guarantee needs n >= 2f + 3 updates."""
    return 2 * byzantine + 3


def krum_scores(deltas: Sequence[Mapping[str, np.ndarray]], byzantine: int) -> list[int]:
    """Per update: the sum of its n - f - 2 smallest squared distances to the others.

    Like Flower, at least one neighbour counts when n < f + 3, so the function is total;
    the spec check keeps real rounds at n >= 2f + 3.
    """
    n = len(deltas)
    dist = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            dist[i][j] = dist[j][i] = squared_distance(deltas[i], deltas[j])
    closest = max(1, n - byzantine - 2)
    return [sum(sorted(dist[i][:i] + dist[i][i + 1 :])[:closest]) for i in range(n)]


def multikrum_select(deltas: Sequence[Mapping[str, np.ndarray]], byzantine: int, keep: int) -> list[int]:
    """Indices of the `keep` best-scored deltas (ties: lower index first), ascending."""
    scores = krum_scores(deltas, byzantine)
    best = sorted(range(len(deltas)), key=lambda i: (scores[i], i))[: max(1, min(keep, len(deltas)))]
    return sorted(best)


def multikrum(
    deltas: Sequence[Mapping[str, np.ndarray]],
    weights: Sequence[int],
    byzantine: int = 2,
    keep: int = 0,
) -> dict[str, np.ndarray]:
    """FedAvg of the `keep` best-scored deltas (keep=0: n - f); keep=1 is Krum itself."""
    check_inputs(deltas, weights)
    m = keep or max(1, len(deltas) - byzantine)
    chosen = multikrum_select(deltas, byzantine, m)
    return fedavg([deltas[i] for i in chosen], [weights[i] for i in chosen])


class _KrumFamily(AggregationRule):
    keep_default: int

    def __init__(self, *, byzantine: int = 2, keep: int = 0, screen: Screen | None = None) -> None:
        if byzantine < 0 or keep < 0:
            raise SpecError("byzantine", f"byzantine ({byzantine}) and keep ({keep}) must be >= 0")
        self.byzantine = byzantine
        self.keep = self.keep_default or keep
        self.min_updates = krum_min_updates(byzantine)
        self.screen = screen

    def aggregate(self, global_model: Mapping[str, np.ndarray], updates: Sequence[Update]) -> RoundAggregate:
        def combine(us: Sequence[Update]) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
            deltas = [u.delta for u in us]
            m = self.keep or max(1, len(us) - self.byzantine)
            chosen = multikrum_select(deltas, self.byzantine, m)
            mean = fedavg([deltas[i] for i in chosen], [us[i].num_examples for i in chosen])
            return mean, tuple(us[i].trainer for i in chosen)

        return aggregate_screened(global_model, ordered_updates(updates, global_model), self.screen, combine)


@register_rule
class Krum(_KrumFamily):
    """new global = global + the single best-scored unflagged delta."""

    name = "krum"
    keep_default = 1


@register_rule
class MultiKrum(_KrumFamily):
    """new global = global + FedAvg of the `keep` best-scored unflagged deltas (0: n - f)."""

    name = "multikrum"
    keep_default = 0
