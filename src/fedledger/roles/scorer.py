"""The scorer: each accepted update's contribution to the round, on the job's validation set.

A validator scores the round it has just computed: coalition models are rebuilt from the
committed updates (no retraining) and evaluated on a validation set whose hash binds it
in the spec. Evaluation is floating point, so scores are close, not identical, between
validators; that is why the chain will take a median of them rather than a quorum on bytes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedledger.incentives.shapley import Coalition, exact_shapley, gtg_shapley, leave_one_out
from fedledger.incentives.utility import coalition_utility, linear_prefix, linear_utility
from fedledger.roles.model import float_weights
from fedledger.training.torch_client import evaluate, set_weights


@dataclass(frozen=True)
class RoundScores:
    round: int
    method: str
    trainers: list[str]
    values: list[float]  # in the utility's units (accuracy, or predicted loss decrease)
    evaluations: int  # coalition utilities computed
    seconds: float
    utility: str = "accuracy"


def score_round(
    *,
    round: int,
    method: str,
    trainers: Sequence[str],
    deltas: Sequence[Mapping[str, np.ndarray]],
    weights: Sequence[int],
    global_model: Mapping[str, np.ndarray],
    names: Sequence[str],
    scale_bits: int,
    model: nn.Module,
    x_val: np.ndarray,
    y_val: np.ndarray,
    seed: int = 0,
    utility: str = "linear",
) -> RoundScores:
    """Scores `deltas` (the round's accepted updates, in `trainers` order) with `method`.

    `utility` "accuracy" evaluates every coalition's model; "linear" predicts each
    coalition's validation-loss decrease from one gradient (see incentives/utility.py).
    """
    t0 = time.perf_counter()
    count = [0]

    def accuracy(model_q: Mapping[str, np.ndarray]) -> float:
        set_weights(model, float_weights(list(names), model_q, scale_bits))
        return evaluate(model, x_val, y_val)[1]

    prefix = None
    if utility == "accuracy":
        base = coalition_utility(global_model, deltas, weights, accuracy)
    elif utility == "linear":
        grad = validation_gradient(model, list(names), global_model, scale_bits, x_val, y_val)
        scale = float(1 << scale_bits)
        projections = [sum(float(np.dot(grad[k], d[k].reshape(-1))) for k in grad) / scale for d in deltas]
        base = linear_utility(projections, weights)
        prefix = linear_prefix(projections, weights)
    else:
        raise ValueError(f"unknown scoring utility {utility!r}")

    def u(coalition: Coalition) -> float:
        count[0] += 1
        return base(coalition)

    n = len(deltas)
    if method == "loo":
        values = leave_one_out(n, u)
    elif method == "exact":
        values = exact_shapley(n, u)
    elif method == "gtg":
        est = gtg_shapley(n, u, seed=seed, prefix=prefix)
        values = est.values
        count[0] = est.evaluations
    else:
        raise ValueError(f"unknown scoring method {method!r}")
    return RoundScores(round, method, list(trainers), values, count[0], time.perf_counter() - t0, utility)


def validation_gradient(
    model: nn.Module,
    names: list[str],
    global_model: Mapping[str, np.ndarray],
    scale_bits: int,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> dict[str, np.ndarray]:
    """d(mean validation cross-entropy)/d(weights) at the global model, flat float64 per tensor."""
    set_weights(model, float_weights(names, global_model, scale_bits))
    model.eval()
    model.zero_grad()
    x = torch.from_numpy(np.ascontiguousarray(x_val, dtype=np.float32))  # (N, *input_shape)
    y = torch.from_numpy(np.asarray(y_val, dtype=np.int64))  # (N,)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()  # type: ignore[no-untyped-call]
    params = dict(model.named_parameters())
    out = {}
    for name in names:
        p = params.get(name)
        g = p.grad if p is not None else None
        size = int(np.prod(global_model[name].shape))
        out[name] = np.zeros(size) if g is None else g.detach().numpy().astype(np.float64).reshape(-1)
    return out
