"""A round's coalition utility: the accuracy of the model a coalition's updates would make.

The model of coalition S is global + FedAvg(deltas of S) in the same exact integers the
validators aggregate with, evaluated on the job's validation set. U(empty) is the
global model's own accuracy, so a score measures what an update added this round.
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
