"""A round's result and the blob metadata every stage agrees on.

These types sit below every round stage (plain, secure, private, statistics) and the
validator that dispatches to them, so no stage has to import its caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fedledger.codec.blob import encode_tensors
from fedledger.codec.commitment import merkle_root
from fedledger.roles.job import CommitRecord


@dataclass(frozen=True)
class Rejection:
    """An update left out of the aggregate; a flagged one also costs its trainer stake."""

    trainer: str
    commitment: bytes
    reason: str
    flagged: bool = True


@dataclass(frozen=True)
class RoundOutcome:
    """A round's result as one validator computed it."""

    round: int
    aggregate: bytes  # Merkle root of `blob`, the proposal's aggregate commitment
    blob: bytes  # canonical blob of the new global model
    model: dict[str, np.ndarray]
    accepted: list[CommitRecord]
    rejected: list[Rejection]
    deltas: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)  # accepted, by trainer
    #: secure aggregation: participants at fault that did not stop the round (e.g. a withheld reveal)
    faults: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        model: dict[str, np.ndarray],
        *,
        job_id: int,
        round: int,
        version: int,
        accepted: list[CommitRecord],
        rejected: list[Rejection],
        **extra: Any,
    ) -> RoundOutcome:
        """The outcome of a round that produced `model` as version+1: its canonical blob and root."""
        blob = encode_tensors(model, metadata=model_metadata(job_id, version + 1))
        return cls(round, merkle_root(blob), blob, model, accepted, rejected, **extra)

    def carrying(self, carried: dict[str, np.ndarray], *, job_id: int, version: int) -> RoundOutcome:
        """The same outcome with tensors carried unchanged from the global model (the job's
        committed feature statistics) added to the new model, its blob and its root."""
        model = {**self.model, **carried}
        blob = encode_tensors(model, metadata=model_metadata(job_id, version + 1))
        return replace(self, aggregate=merkle_root(blob), blob=blob, model=model)

    @property
    def excluded(self) -> list[str]:
        return sorted({r.trainer for r in self.rejected}, key=lambda a: int(a, 16))

    @property
    def flagged(self) -> list[str]:
        return sorted({r.trainer for r in self.rejected if r.flagged}, key=lambda a: int(a, 16))


def model_metadata(job_id: int, version: int) -> dict[str, str]:
    return {"kind": "model", "job": str(job_id), "version": str(version)}


def update_metadata(job_id: int, round: int, trainer: str) -> dict[str, str]:
    return {"kind": "update", "job": str(job_id), "round": str(round), "trainer": trainer}
