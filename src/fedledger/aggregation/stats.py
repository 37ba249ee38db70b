"""Exact integer statistics shared by the rules: dot products, norms, order statistics.

Robust rules compare updates (distances, cosines, norms) and take order statistics
(medians, trimmed means). Every honest validator must reach the same decision, so each
of these is exact: int64 where the bound proves no partial sum can wrap, Python ints
otherwise, and halves always rounded up.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from fractions import Fraction

import numpy as np

from fedledger.aggregation.base import apply_delta, max_abs

#: Elements multiplied and summed per int64 partial sum (fewer when values are large).
CHUNK = 4096
#: Columns stacked at once for order statistics: n x BLOCK int64 stays small for any n.
BLOCK = 1 << 16
INT64_MAX = 2**63 - 1
#: Sums stay in int64 only when they provably stay below this.
INT64_SAFE_BOUND = 2**62


def dot(a: np.ndarray, b: np.ndarray) -> int:
    """Exact sum(a * b) over two int64 arrays of one shape.

    Partial sums are int64 over chunks short enough that they cannot wrap (chunk *
    max|a| * max|b| <= 2**63 - 1) and are added as Python ints; values whose products
    alone exceed int64 fall back to Python-int arithmetic, which is slow but exact.
    """
    fa, fb = a.reshape(-1), b.reshape(-1)  # (n,) each
    peak = max_abs(fa) * max_abs(fb)
    if peak == 0:
        return 0
    per_chunk = min(CHUNK, INT64_MAX // peak)
    if per_chunk == 0:
        return int((fa.astype(object) * fb.astype(object)).sum())
    pad = -fa.size % per_chunk
    zeros = np.zeros(pad, dtype=np.int64)
    products = (np.concatenate([fa, zeros]) * np.concatenate([fb, zeros])).reshape(-1, per_chunk)
    return sum(int(p) for p in products.sum(axis=1).tolist())  # (chunks,) each fits int64


def model_dot(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> int:
    """Exact inner product of two deltas with the same tensor names."""
    return sum(dot(a[name], b[name]) for name in a)


def squared_norm(delta: Mapping[str, np.ndarray]) -> int:
    return model_dot(delta, delta)


def squared_distance(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> int:
    """Exact ||a - b||**2; the difference is taken in Python ints if it could wrap."""
    total = 0
    for name, x in a.items():
        y = b[name]
        if max_abs(x) + max_abs(y) < INT64_SAFE_BOUND:
            diff = x - y
            total += dot(diff, diff)
        else:
            big = x.reshape(-1).astype(object) - y.reshape(-1).astype(object)
            total += int((big * big).sum())
    return total


def div_half_up(acc: np.ndarray, total: int) -> np.ndarray:
    """Elementwise acc / total rounded to nearest, halves up: floor((2 acc + total) / 2 total).

    `acc` may be int64 or object (Python ints); the result has acc's dtype. Written as
    acc // total + (2r >= total) with r = acc mod total in [0, total), which never doubles
    acc and so cannot overflow.
    """
    quotient = acc // total
    remainder = acc - quotient * total
    return quotient + (remainder >= total - remainder).astype(acc.dtype)  # type: ignore[no-any-return]


def lower_median(values: Sequence[int]) -> int:
    """The lower median of integers: a member of the list, so no rounding at all."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def column_blocks(
    deltas: Sequence[Mapping[str, np.ndarray]],
) -> Iterator[tuple[str, slice, np.ndarray]]:
    """(tensor name, flat slice, stacked columns) in blocks of at most BLOCK columns.

    Order statistics need every trainer's value of one coordinate side by side; stacking
    a block at a time keeps memory at n x BLOCK whatever the model size.
    """
    for name in deltas[0]:
        flats = [d[name].reshape(-1) for d in deltas]  # n x (size,)
        size = flats[0].size
        for start in range(0, max(size, 1), BLOCK):
            cols = slice(start, min(start + BLOCK, size))
            yield name, cols, np.stack([f[cols] for f in flats])  # (n, c)


def exact_fraction(value: float) -> Fraction:
    """The decimal text of a float as an exact fraction: 0.1 is 1/10, not 0.1000000000000000055…"""
    return Fraction(repr(float(value)))


def apply_delta_or_keep(
    global_model: Mapping[str, np.ndarray], delta: Mapping[str, np.ndarray] | None
) -> dict[str, np.ndarray]:
    """global + delta, or an int64 copy of the global model when there is no delta."""
    if delta is None:
        return {k: np.asarray(v, dtype=np.int64) for k, v in global_model.items()}
    return apply_delta(global_model, delta)


def coordinate_median(deltas: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Coordinate-wise median of same-layout int64 deltas, halves rounded up.

    Even counts take floor((lo + hi + 1) / 2) as lo + (hi - lo + 1) // 2, in Python ints
    whenever hi - lo could wrap int64. The robust reference every screen measures against.
    """
    n = len(deltas)
    out = {name: np.empty(arr.size, dtype=np.int64) for name, arr in deltas[0].items()}
    for name, cols, stack in column_blocks(deltas):
        s = np.sort(stack, axis=0)  # (n, c)
        if n % 2:
            out[name][cols] = s[n // 2]
            continue
        lo, hi = s[n // 2 - 1], s[n // 2]  # (c,) each, hi >= lo
        if max_abs(s) < INT64_SAFE_BOUND // 2:
            out[name][cols] = lo + ((hi - lo + 1) >> 1)
        else:
            lo_big, hi_big = lo.astype(object), hi.astype(object)
            out[name][cols] = np.asarray(lo_big + (hi_big - lo_big + 1) // 2, dtype=np.int64)
    return {name: out[name].reshape(arr.shape) for name, arr in deltas[0].items()}
