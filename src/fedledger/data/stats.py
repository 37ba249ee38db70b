"""Federated feature statistics: exact integer sums that a statistics round aggregates.

Standardisation statistics must not come from one party's data, so a job whose schema
asks for `standardise = "federated"` opens with a statistics round. Each trainer
commits, instead of a model update, three integer tensors over its numeric features:

    stats.count  (LIMBS,)            rows
    stats.sum    (F, LIMBS)          Σ q          with q = round(x · 2**scale_bits)
    stats.sumsq  (F, LIMBS)          Σ q²

Validators check them (`check_contribution`) and aggregate by exact elementwise
sum (`sum_contributions`); the sum is committed as the job's version 1 model, the
initial weights plus these tensors, and carried unchanged into every later version.
So the statistics are audited like any update, and the final model carries the
preprocessing it was trained with.

Why limbs: Σ q² over a million rows of 20-bit fixed point needs ~150 bits, and a
blob holds int64. Every big integer is written as LIMBS signed digits of LIMB_BITS
bits (value = Σ dₖ · 2**(LIMB_BITS·k), every digit carrying the value's sign). That
representation is linear: the elementwise sum of several values' digits is a (not
normalised) digit vector of their sum, with no carries to propagate. So plain
int64 addition, and the modular sum of secure aggregation, add big integers
exactly, as long as no digit sum leaves int64: 256 trainers × 2**24 is far inside.

Floating point appears only in `standardiser`, inside each organisation's local
training and the evaluation, never in what is committed or compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from fedledger.errors import DataError, InvalidUpdate

LIMB_BITS = 24
LIMBS = 8  # 192 bits: Σ q² of 2**40 rows of |q| < 2**75 fits
LIMB_BOUND = 1 << LIMB_BITS
COUNT, SUM, SUMSQ = "stats.count", "stats.sum", "stats.sumsq"
NAMES = (COUNT, SUM, SUMSQ)
PREFIX = "stats."
#: rows summed per int64 block in `_exact_sums`: per-row partial products stay below 2**44
_BLOCK = 1 << 18
_PART_BITS = 21


def to_limbs(value: int) -> np.ndarray:
    """(LIMBS,) int64 signed digits of `value`; raises if it needs more than LIMBS·LIMB_BITS bits."""
    sign, mag = (-1 if value < 0 else 1), abs(value)
    if mag >> (LIMB_BITS * LIMBS):
        raise OverflowError(f"{value} needs more than {LIMB_BITS * LIMBS} bits")
    digits = [(mag >> (LIMB_BITS * k)) & (LIMB_BOUND - 1) for k in range(LIMBS)]
    return np.asarray([sign * d for d in digits], dtype=np.int64)


def from_limbs(digits: np.ndarray) -> int:
    """The integer a digit vector stands for (normalised or not)."""
    return sum(int(d) << (LIMB_BITS * k) for k, d in enumerate(np.asarray(digits).tolist()))


def _exact_sums(q: np.ndarray) -> tuple[int, int]:
    """Exact (Σ q, Σ q²) of an int64 column, vectorised, without overflow.

    |q| is split into three 21-bit parts a + b·2²¹ + c·2⁴²; q² is then a polynomial in
    2²¹ whose five coefficients are sums of products below 2⁴⁴, so a block of 2¹⁸ rows
    sums each coefficient within int64. Blocks are combined in Python integers.
    """
    total, total_sq = 0, 0
    mask = (1 << _PART_BITS) - 1
    for start in range(0, len(q), _BLOCK):
        block = q[start : start + _BLOCK]  # (B,)
        total += int(block.sum(dtype=np.int64)) if len(block) else 0
        mag = np.abs(block)
        a, b, c = mag & mask, (mag >> _PART_BITS) & mask, mag >> (2 * _PART_BITS)
        coeffs = (
            int((a * a).sum()),
            int((2 * a * b).sum()),
            int((b * b + 2 * a * c).sum()),
            int((2 * b * c).sum()),
            int((c * c).sum()),
        )
        total_sq += sum(k << (_PART_BITS * i) for i, k in enumerate(coeffs))
    return total, total_sq


def contribution(x_numeric: np.ndarray, scale_bits: int, *, organisation: str = "") -> dict[str, np.ndarray]:
    """One organisation's statistics update over its (N, F) numeric feature columns."""
    x = np.asarray(x_numeric, dtype=np.float64)  # (N, F), exact from float32
    if x.ndim != 2:
        raise ValueError(f"numeric features must be (rows, features), got shape {x.shape}")
    scaled = x * float(1 << scale_bits)
    limit = float(1 << 62)
    if x.size and not np.all(np.abs(scaled) < limit):
        col = int(np.argmax(np.max(np.abs(scaled), axis=0)))
        raise DataError(
            f"{organisation or 'this organisation'}: numeric feature {col}: values reach "
            f"{np.max(np.abs(x[:, col])):.6g}, too large for 2**{scale_bits} fixed point; "
            "rescale the column or lower scale_bits"
        )
    q = np.rint(scaled).astype(np.int64)  # (N, F) round half to even, as codec/fixedpoint
    sums = np.zeros((x.shape[1], LIMBS), dtype=np.int64)  # (F, LIMBS)
    sumsq = np.zeros((x.shape[1], LIMBS), dtype=np.int64)  # (F, LIMBS)
    for j in range(x.shape[1]):
        s, ss = _exact_sums(np.ascontiguousarray(q[:, j]))
        sums[j], sumsq[j] = to_limbs(s), to_limbs(ss)
    return {COUNT: to_limbs(len(x)), SUM: sums, SUMSQ: sumsq}


def check_contribution(
    tensors: Mapping[str, np.ndarray], *, features: int, num_examples: int, parts: int = 1
) -> None:
    """Raises InvalidUpdate unless `tensors` is a well-formed statistics update of `num_examples` rows.

    Exact checks every honest validator makes alike: names, dtype, shapes, digit range,
    the count equal to the committed example count, Σ q² ≥ 0 and (Σ q)² ≤ n · Σ q²
    (Cauchy-Schwarz: no real data has a negative variance). What it cannot check is
    that the sums describe the organisation's real rows; docs/design.md says so. A total
    of `parts` contributions (secure aggregation's unmasked sum) has digits up to parts·2**24.
    """
    if sorted(tensors) != sorted(NAMES):
        raise InvalidUpdate(f"a statistics update holds {', '.join(NAMES)}; got {', '.join(sorted(tensors))}")
    shapes = {COUNT: (LIMBS,), SUM: (features, LIMBS), SUMSQ: (features, LIMBS)}
    for name, shape in shapes.items():
        arr = tensors[name]
        if arr.dtype != np.int64:
            raise InvalidUpdate(f"tensor '{name}': dtype {arr.dtype}, expected int64")
        if tuple(arr.shape) != shape:
            raise InvalidUpdate(f"tensor '{name}': shape {tuple(arr.shape)}, expected {shape}")
        if arr.size and int(np.max(np.abs(arr))) >= parts * LIMB_BOUND:
            bound = f"±2**{LIMB_BITS}" if parts == 1 else f"±{parts}·2**{LIMB_BITS}"
            raise InvalidUpdate(f"tensor '{name}': a digit is outside {bound}")
    count = from_limbs(tensors[COUNT])
    if count != num_examples:
        raise InvalidUpdate(f"statistics count {count} differs from the committed {num_examples} examples")
    for j in range(features):
        s, ss = from_limbs(tensors[SUM][j]), from_limbs(tensors[SUMSQ][j])
        if ss < 0 or s * s > count * ss:
            raise InvalidUpdate(f"feature {j}: sums describe no real data (Σq={s}, Σq²={ss}, n={count})")


def sum_contributions(contributions: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The exact elementwise sum of checked statistics updates (digit vectors add linearly)."""
    if not contributions:
        raise ValueError("no statistics to sum")
    return {n: np.sum([np.asarray(c[n], dtype=np.int64) for c in contributions], axis=0) for n in NAMES}


def split_stats(model: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(weights, statistics) of a global model; a job without a statistics round has none."""
    weights = {k: v for k, v in model.items() if not k.startswith(PREFIX)}
    stats = {k: v for k, v in model.items() if k.startswith(PREFIX)}
    return weights, stats


def standardiser(stats: Mapping[str, np.ndarray], scale_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) per numeric feature, float64 (F,), from the committed sums.

    The population variance Σq²/n − (Σq/n)² is formed in exact rationals and only then
    turned to float; a constant feature gets std 1, so it stays 0 instead of dividing by zero.
    """
    n = from_limbs(stats[COUNT])
    if n <= 0:
        raise ValueError("the committed statistics cover no rows")
    scale = 1 << scale_bits
    means, stds = [], []
    for s_d, ss_d in zip(stats[SUM], stats[SUMSQ], strict=True):
        s, ss = from_limbs(s_d), from_limbs(ss_d)
        var_num = n * ss - s * s  # n² · scale² · variance, exact
        means.append(s / (n * scale))
        std = math.sqrt(var_num) / (n * scale) if var_num > 0 else 0.0
        stds.append(std if std > 0 else 1.0)
    return np.asarray(means, dtype=np.float64), np.asarray(stds, dtype=np.float64)


def standardise_in_place(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """z-scores the first F columns of an encoded (N, W) float32 matrix: numeric features come first."""
    f = len(mean)
    x[:, :f] = ((x[:, :f].astype(np.float64) - mean) / std).astype(np.float32)


class LocalFeatures:
    """One organisation's numeric features: its statistics update, then z-scoring in place.

    Built once from the encoded (N, W) matrix its client trains on (numeric columns first);
    `standardise` rewrites that same matrix, and any `also` matrices, exactly once, from the
    job's committed statistics. The statistics never change after version 1 (every later
    round carries them unchanged), so a second, different set is a broken invariant.
    """

    def __init__(
        self,
        x: np.ndarray,
        *,
        numeric: int,
        scale_bits: int,
        organisation: str = "",
        also: Sequence[np.ndarray] = (),
    ) -> None:
        self.update = contribution(x[:, :numeric], scale_bits, organisation=organisation)
        self.rows = len(x)
        self.scale_bits = scale_bits
        self._targets = [x, *also]
        self._applied: bytes | None = None

    def standardise(self, stats: Mapping[str, np.ndarray]) -> None:
        key = b"".join(np.ascontiguousarray(stats[n], dtype="<i8").tobytes() for n in NAMES)
        if self._applied is not None:
            if key != self._applied:
                raise ValueError("the job's committed feature statistics changed after version 1")
            return
        mean, std = standardiser(stats, self.scale_bits)
        for target in self._targets:
            standardise_in_place(target, mean, std)
        self._applied = key
