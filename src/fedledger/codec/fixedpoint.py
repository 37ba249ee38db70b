"""Fixed-point quantisation: the only bridge between float training and integer consensus.

Everything committed or compared (updates, aggregates) is int64 so that every honest
validator computes identical bytes. Floats exist only on the trainer side of `quantize`
and on the evaluation side of `dequantize`.

Why the arithmetic is exact and portable: inputs are widened to float64 (exact for float16,
float32 and float64), multiplied by 2**scale_bits (a power of two: exact unless it
overflows, which the bound check rules out) and rounded with `np.rint`, which rounds half to
even as IEEE 754 prescribes. Every conforming machine therefore gets the same integers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedledger.errors import CodecError

#: |q| must stay below this so sums of a few quantised values cannot overflow int64.
QUANT_LIMIT = 2**62
MAX_SCALE_BITS = 62


def _check_scale_bits(scale_bits: int) -> None:
    if isinstance(scale_bits, bool) or not isinstance(scale_bits, int):
        raise CodecError(f"scale_bits must be an int, got {type(scale_bits).__name__}")
    if not 0 <= scale_bits <= MAX_SCALE_BITS:
        raise CodecError(f"scale_bits {scale_bits} is outside [0, {MAX_SCALE_BITS}]")


def quantize(tensors: Mapping[str, np.ndarray], scale_bits: int) -> dict[str, np.ndarray]:
    """Floats to int64 as `rint(x * 2**scale_bits)`, rounding half to even.

    Rejects NaN/Inf and any value whose quantised magnitude would reach 2**62: such a value
    is a diverged model, and silently saturating it would hide the fault. Key order is kept.
    """
    _check_scale_bits(scale_bits)
    scale = float(2**scale_bits)
    out: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        x = np.asarray(value)
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise CodecError(f"tensor '{name}': dtype {x.dtype} is not a real number type")
        x64 = x.astype(np.float64)  # same shape; exact widening
        if not np.all(np.isfinite(x64)):
            bad = int(np.count_nonzero(~np.isfinite(x64)))
            raise CodecError(f"tensor '{name}': {bad} value(s) are NaN or infinite")
        scaled = x64 * scale  # same shape; exact (power of two), finite by the check below
        if scaled.size and float(np.max(np.abs(scaled))) >= QUANT_LIMIT:
            worst = float(np.max(np.abs(x64)))
            raise CodecError(
                f"tensor '{name}': value {worst!r} at scale 2**{scale_bits} does not fit "
                f"in int64 with margin (|q| >= 2**62)"
            )
        out[name] = np.asarray(np.rint(scaled), dtype=np.int64)  # 0-d stays an array
    return out


def dequantize(tensors: Mapping[str, np.ndarray], scale_bits: int) -> dict[str, np.ndarray]:
    """int64 back to float32 as `q / 2**scale_bits`, for training and evaluation only.

    Goes through float64 so the division is a pure exponent change before the single
    rounding to float32. Key order is kept.
    """
    _check_scale_bits(scale_bits)
    inv = 2.0**-scale_bits
    out: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        q = np.asarray(value)
        if not np.issubdtype(q.dtype, np.integer):
            raise CodecError(f"tensor '{name}': dtype {q.dtype} is not an integer type")
        out[name] = (q.astype(np.float64) * inv).astype(np.float32)
    return out
