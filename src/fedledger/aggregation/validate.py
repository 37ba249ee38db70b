"""Update validation in exact integers: the first line of defence against poisoned updates.

A validator rejects an update before aggregating it, and every honest validator must reject
the same ones, so the checks (names, dtype, shape, L2 bound) use no floating point at all: the
norm bound compares an exact sum of squares with max_norm_q**2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from fedledger.aggregation.base import check_same_layout, max_abs
from fedledger.aggregation.stats import dot
from fedledger.errors import SpecError, UpdateOutOfBounds


def _sum_squares(arr: np.ndarray) -> int:
    """Exact sum of x**2 over an int64 array (see `stats.dot`)."""
    return dot(arr, arr)


def l2_norm_q(delta: Mapping[str, np.ndarray]) -> int:
    """floor(sqrt(sum of squares)) over every tensor, exactly, in fixed-point units."""
    total = sum(_sum_squares(np.asarray(arr, dtype=np.int64)) for arr in delta.values())
    return math.isqrt(total)


def validate_update(
    delta: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    max_norm_q: int,
    *,
    scale_bits: int | None = None,
) -> None:
    """Raises InvalidUpdate with the reason if `delta` does not fit `reference` or the bound.

    `reference` is the global model (or any tensors with its names and shapes); extra or
    missing names, non-int64 dtypes, wrong shapes and an L2 norm above `max_norm_q` (the
    spec's `max_update_norm_q`) are all rejected. With `scale_bits`, reasons quote magnitudes
    in the spec's own (dequantised) units; the decision itself is exact integer arithmetic.
    """

    def units(q: int) -> str:
        return str(q) if scale_bits is None else f"{q / (1 << scale_bits):.6g}"

    unit_note = " (fixed-point units)" if scale_bits is None else ""

    if isinstance(max_norm_q, bool) or not isinstance(max_norm_q, int) or max_norm_q < 0:
        raise SpecError("max_update_norm", f"norm bound {max_norm_q!r} must be an int >= 0")
    check_same_layout(delta, reference, "update")
    # One element beyond the bound already breaks it, and the check keeps squares small.
    for name, arr in delta.items():
        peak = max_abs(arr)
        if peak > max_norm_q:
            raise UpdateOutOfBounds(
                f"tensor '{name}': element of magnitude {units(peak)} exceeds the norm bound "
                f"{units(max_norm_q)}"
            )
    total = sum(_sum_squares(arr) for arr in delta.values())
    if total > max_norm_q * max_norm_q:
        raise UpdateOutOfBounds(
            f"L2 norm {units(math.isqrt(total))} exceeds the bound {units(max_norm_q)}{unit_note}"
        )
