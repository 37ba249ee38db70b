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
from fedledger.data.stats import split_stats
from fedledger.errors import InvalidUpdate
from fedledger.store.base import BlobStore


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


class GlobalModels:
    """The global model as a trainer reads it: integer tensors, statistics and float weights.

    Each organisation decodes and dequantises the round's global model on its own machine. In
    one process (a simulation) every trainer of a round would repeat the same pure work on the
    same verified bytes, ten times a round by default; one `GlobalModels` shared by them does it
    once per commitment. Each caller gets its own copy of the float weights, since a client may
    train in the arrays it is handed; the integer tensors are read-only.
    """

    def __init__(self, store: BlobStore, names: Sequence[str], scale_bits: int) -> None:
        self.store = store
        self.names = list(names)
        self.scale_bits = scale_bits
        self._key = b""
        self._model: tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[np.ndarray]] = ({}, {}, [])

    def read(
        self, commitment: bytes
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[np.ndarray]]:
        """(model tensors, statistics tensors, float weights in the client's order)."""
        if commitment != self._key:
            tensors = self.store.get_tensors(commitment)
            model_q, stats_q = split_stats(tensors)
            for array in tensors.values():
                array.setflags(write=False)
            weights = float_weights(self.names, model_q, self.scale_bits)
            self._key, self._model = commitment, (model_q, stats_q, weights)
        model_q, stats_q, weights = self._model
        return model_q, stats_q, [w.copy() for w in weights]
