"""Between a client's list of float arrays and the named integer tensors that are committed.

A Flower-style client speaks `list[np.ndarray]` in its own order; blobs hold
named int64 tensors. The layout (names, shapes) comes from the client once and
is the same for every party, because it is the initial model's layout, which
is committed on chain at job creation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fedledger.codec.fixedpoint import dequantize, quantize
from fedledger.errors import InvalidUpdate


def to_named(names: Sequence[str], arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    if len(names) != len(arrays):
        raise InvalidUpdate(f"client returned {len(arrays)} arrays for {len(names)} parameters")
    return dict(zip(names, arrays, strict=True))


def to_list(names: Sequence[str], tensors: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(tensors[n]) for n in names]


def quantize_model(
    names: Sequence[str], arrays: Sequence[np.ndarray], scale_bits: int
) -> dict[str, np.ndarray]:
    """Float weights → the fixed-point model every party agrees on."""
    return quantize(to_named(names, [np.asarray(a, dtype=np.float64) for a in arrays]), scale_bits)


def float_weights(
    names: Sequence[str], model_q: Mapping[str, np.ndarray], scale_bits: int
) -> list[np.ndarray]:
    """The fixed-point global model as the float arrays a client trains from."""
    return to_list(names, dequantize(model_q, scale_bits))


def quantized_delta(
    names: Sequence[str],
    new: Sequence[np.ndarray],
    global_q: Mapping[str, np.ndarray],
    scale_bits: int,
) -> dict[str, np.ndarray]:
    """Quantises (new − global) without a float round trip of the global model.

    new_q − global_q is exact integer arithmetic, so the committed delta applied
    to the committed global model gives exactly the quantised trained weights.
    """
    new_q = quantize_model(names, new, scale_bits)
    return {n: (new_q[n] - global_q[n]).astype(np.int64) for n in names}


def final_model_tensors(model_q: Mapping[str, np.ndarray], scale_bits: int) -> dict[str, np.ndarray]:
    """A committed model as `final_model.safetensors` holds it: float32 weights, and for a job
    with a statistics round its committed z-scoring as `standardise.mean` / `standardise.std`.

    One function for the run writer and the audit, so the file and its check cannot drift.
    """
    from fedledger.data.stats import split_stats, standardiser

    weights_q, stats_q = split_stats(dict(model_q))
    final = {k: np.ascontiguousarray(v) for k, v in dequantize(weights_q, scale_bits).items()}
    if stats_q:
        mean, std = standardiser(stats_q, scale_bits)
        final["standardise.mean"] = mean.astype(np.float32)
        final["standardise.std"] = std.astype(np.float32)
    return final
