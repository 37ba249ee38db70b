"""A plain in-process FedAvg loop: the baseline the chain's overhead is measured against.

Same data, partition, model, clients and seeds as `Simulation`, with no chain, no
store and no validators. `quantized=True` runs the fixed-point aggregation of
the determinism contract (what the validators compute) instead of float
averaging, so the accuracy cost of quantisation can be measured on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fedledger.aggregation.base import apply_delta
from fedledger.aggregation.fedavg import fedavg
from fedledger.roles.model import float_weights, quantize_model, quantized_delta
from fedledger.spec import JobSpec
from fedledger.training.consortium import build_consortium
from fedledger.training.torch_client import (
    evaluate,
    get_weights,
    set_weights,
)


@dataclass
class PlainResult:
    accuracies: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def final_accuracy(self) -> float:
        return self.accuracies[-1] if self.accuracies else float("nan")


def plain_fedavg(spec: JobSpec, *, quantized: bool = False) -> PlainResult:
    """Runs `spec.rounds` rounds of FedAvg weighted by examples, every trainer every round."""
    t0 = time.perf_counter()
    consortium = build_consortium(spec)
    ds, model, names, clients = (
        consortium.dataset,
        consortium.initial_model,
        consortium.names,
        consortium.clients,
    )
    weights = get_weights(model)
    global_q = quantize_model(names, weights, spec.scale_bits)
    if quantized:
        weights = float_weights(names, global_q, spec.scale_bits)
    result = PlainResult()
    for r in range(1, spec.rounds + 1):
        fits = [c.fit(weights, {"round": r}) for c in clients]
        counts = [n for _, n, _ in fits]
        if quantized:
            deltas = [quantized_delta(names, new, global_q, spec.scale_bits) for new, _, _ in fits]
            global_q = apply_delta(global_q, fedavg(deltas, counts))
            weights = float_weights(names, global_q, spec.scale_bits)
        else:
            total = sum(counts)
            averaged: list[np.ndarray] = []
            for k in range(len(weights)):
                acc_k = np.zeros(np.shape(weights[k]), dtype=np.float64)
                for new, n, _ in fits:
                    acc_k += np.asarray(new[k], dtype=np.float64) * n
                averaged.append((acc_k / total).astype(np.float32))
            weights = averaged
        set_weights(model, weights)
        loss, acc = evaluate(model, ds.x_test, ds.y_test)
        result.accuracies.append(acc)
        result.losses.append(loss)
    result.wall_seconds = time.perf_counter() - t0
    return result
