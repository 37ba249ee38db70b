"""FedAvg in exact integers: the weighted mean of deltas with round-half-up.

Floats would make the mean depend on summation order and hardware; exact integers make it a
function of the inputs alone, so every validator commits the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fedledger.aggregation.base import (
    AggregationRule,
    RoundAggregate,
    Update,
    apply_delta,
    check_inputs,
    max_abs,
    ordered_updates,
    register_rule,
)
from fedledger.aggregation.stats import INT64_SAFE_BOUND, div_half_up
from fedledger.errors import InvalidUpdate


def _mean_int64(arrays: Sequence[np.ndarray], weights: Sequence[int], total: int) -> np.ndarray:
    """Caller guarantees max|d| * W < 2**62, so no partial sum wraps."""
    acc = np.zeros(arrays[0].size, dtype=np.int64)  # (n,) flat, so 0-d tensors stay arrays
    for arr, w in zip(arrays, weights, strict=True):
        acc += np.int64(w) * arr.reshape(-1)
    return div_half_up(acc, total).reshape(arrays[0].shape)


def _mean_bigint(arrays: Sequence[np.ndarray], weights: Sequence[int], total: int) -> np.ndarray:
    """The same formula in Python ints (object dtype): slow, but it cannot overflow."""
    acc = np.zeros(arrays[0].size, dtype=object)  # (n,) flat Python ints
    for arr, w in zip(arrays, weights, strict=True):
        acc = acc + arr.reshape(-1).astype(object) * int(w)
    # |mean| <= max|d| <= 2**63 - 1 and rounding cannot pass an integer bound: fits int64.
    result: np.ndarray = np.asarray(div_half_up(acc, total), dtype=np.int64).reshape(arrays[0].shape)
    return result


def fedavg(deltas: Sequence[Mapping[str, np.ndarray]], weights: Sequence[int]) -> dict[str, np.ndarray]:
    """Weighted mean of int64 deltas: `q = floor((2 * sum(w_i * d_i) + W) / (2 * W))`.

    W = sum(weights). That is the exact mean rounded to the nearest integer with halves
    rounded up (towards +inf), e.g. mean 2.5 -> 3 and -2.5 -> -2. The sum is computed exactly:
    in int64 when max|d| * W < 2**62 (so no partial sum can wrap), otherwise in Python ints.
    Exact sums do not depend on the order of the inputs. Key order follows `deltas[0]`.
    """
    check_inputs(deltas, weights)
    for i, w in enumerate(weights):
        if isinstance(w, bool) or not isinstance(w, int | np.integer) or w < 0:
            raise InvalidUpdate(f"weight {i} is {w!r}; weights must be non-negative integers")
    total = sum(int(w) for w in weights)
    if total == 0:
        raise InvalidUpdate("weights sum to 0; nothing to average")
    reference = deltas[0]
    out: dict[str, np.ndarray] = {}
    for name in reference:
        arrays = [d[name] for d in deltas]
        bound = max(max_abs(a) for a in arrays)
        if bound * total < INT64_SAFE_BOUND and total < INT64_SAFE_BOUND:
            out[name] = _mean_int64(arrays, weights, total)
        else:
            out[name] = _mean_bigint(arrays, weights, total)
    return out


@register_rule
class FedAvg(AggregationRule):
    """new global = global + fedavg(deltas weighted by num_examples); it flags nothing.

    FedAvg trusts every valid update: the baseline the robust rules are measured against.
    """

    name = "fedavg"

    def aggregate(self, global_model: Mapping[str, np.ndarray], updates: Sequence[Update]) -> RoundAggregate:
        ordered = ordered_updates(updates, global_model)
        mean = fedavg([u.delta for u in ordered], [u.num_examples for u in ordered])
        return RoundAggregate(
            model=apply_delta(global_model, mean), used=tuple(u.trainer for u in ordered), flagged={}
        )
