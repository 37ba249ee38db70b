"""Misbehaving trainers for the simulator: the bad inputs validators must reject.

Each fault rewrites (or withholds) one trainer's update blob; the trainer still
commits on chain, so validators see a commitment they must check and refuse,
and the round must finalise without it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fedledger.codec.blob import decode_blob, encode_tensors
from fedledger.errors import SpecError
from fedledger.training.client import ClientWrapper, Config, Metrics, NDArrays, NumPyClient

FAULT_KINDS = {
    "corrupt-blob": "stored bytes differ from the committed ones (fails its hash)",
    "withhold-blob": "commits but never uploads the blob",
    "wrong-shape": "a tensor with the wrong shape",
    "float-blob": "a float32 tensor (of NaNs) where int64 is required",
    "huge-norm": "an update 1000x over the norm bound",
    "malformed": "bytes that are not a tensor blob at all",
    "nan-weights": "local training diverges to NaN (the trainer must refuse to commit)",
    "drop-out": "never commits (a trainer that went offline); secure aggregation removes its masks",
    "withhold-reveal": "secure aggregation: commits, then withholds its share reveal (dropout after commit)",
    "lying-validator": "as a validator, proposes a model it did not compute (slashed once reported)",
    "biased-validator": "as a validator, posts full scores for itself and zero for everyone else",
    "lying-proposer": "optimistic mode: whenever drawn to propose, claims an aggregate with one value "
    "changed (proven wrong, slashed, and the round re-proposed)",
}
VALIDATOR_FAULTS = ("lying-validator", "biased-validator", "lying-proposer")
#: faults of the trainer's conduct, not of its update blob
CONDUCT_FAULTS = ("drop-out", "withhold-reveal")


@dataclass(frozen=True)
class Fault:
    """`kind` applied to trainer number `trainer` (1-based) from round `from_round` on."""

    kind: str
    trainer: int
    from_round: int = 1

    @classmethod
    def parse(cls, text: str) -> Fault:
        """Parses KIND@TRAINER[:FROM_ROUND], e.g. `huge-norm@3` or `corrupt-blob@2:5`."""
        try:
            kind, rest = text.split("@", 1)
            trainer, _, from_round = rest.partition(":")
            fault = cls(kind, int(trainer), int(from_round or 1))
        except ValueError:
            raise SpecError("fault", f"{text!r} is not KIND@TRAINER[:FROM_ROUND]") from None
        if kind not in FAULT_KINDS:
            raise SpecError("fault", f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        return fault


def _float_nan_blob(blob: bytes) -> bytes:
    """A safetensors file whose first tensor is float32 NaN — valid format, wrong content."""
    import json

    tensors, _ = decode_blob(blob)
    name, arr = next(iter(tensors.items()))
    data = np.full(arr.shape, np.nan, dtype="<f4").tobytes()
    header = json.dumps({name: {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [0, len(data)]}})
    hb = header.encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + data


def blob_hook(kind: str, max_norm_q: int) -> Callable[[bytes], bytes | None]:
    """The blob rewrite for a fault kind (None from the hook means: withhold)."""

    def hook(blob: bytes) -> bytes | None:
        if kind == "withhold-blob":
            return None
        if kind == "malformed":
            return b"not a tensor blob " + blob[:64]
        if kind == "float-blob":
            return _float_nan_blob(blob)
        tensors, meta = decode_blob(blob)
        if kind == "wrong-shape":
            name = next(iter(tensors))
            tensors = dict(tensors)
            tensors[name] = np.zeros(tensors[name].size + 1, dtype=np.int64)
        elif kind == "huge-norm":
            tensors = {k: np.full(v.shape, max_norm_q * 1000, dtype=np.int64) for k, v in tensors.items()}
        return encode_tensors(tensors, metadata=meta)

    return hook


class NaNClient(ClientWrapper):
    """A client whose training diverges from `from_round` on: every weight comes back NaN."""

    def __init__(self, inner: NumPyClient, from_round: int) -> None:
        super().__init__(inner)
        self.from_round = from_round

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        new, n, metrics = self.inner.fit(parameters, config)
        if int(config.get("round", 0)) >= self.from_round:
            new = [np.full_like(a, np.nan) for a in new]
        return new, n, metrics
