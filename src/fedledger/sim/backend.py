"""Where a simulation's organisations train: in this process (the default) or on Ray.

The protocol (quantise, upload, commit, validate, propose) always runs in the simulation's
own process, one organisation after another, exactly as before: a backend decides only
where `client.fit` runs. That is the one step whose cost grows with the data and the
model, and the one step that is floating point, so the backends can be compared byte for
byte: the same fit on the same rows from the same weights gives the same commitments.

`InProcessBackend` keeps each organisation's long-lived client. `RayBackend` (ray_backend.py)
gives each a `PartitionClient` (row indices into one shared array), launches every sampled
organisation's fit as a Ray task when the round opens, and hands each trainer its result
when the trainer asks for it; the trainers then commit in order as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from fedledger.training.client import NDArrays, NumPyClient


class Backend(Protocol):
    """How the organisations' local training is run; the simulation owns nothing else of it."""

    #: a one-line description for the run's header
    description: str
    #: clients should be `PartitionClient`s (views into one array, models built only to train)
    lazy: bool

    def attach(self, clients: Sequence[NumPyClient]) -> list[NumPyClient]:
        """The clients the trainers will call, given the ones the consortium built."""
        ...

    def start_round(self, round: int, parameters: NDArrays, clients: Sequence[NumPyClient]) -> None:
        """The round is open and these clients will be asked to fit `parameters`: start them."""
        ...

    def close(self) -> None:
        """Releases what the backend started (a local Ray); idempotent."""
        ...


@dataclass
class InProcessBackend:
    """Every client trains in this process when its trainer asks: the small-job default."""

    description: str = "in-process"
    lazy: bool = False

    def attach(self, clients: Sequence[NumPyClient]) -> list[NumPyClient]:
        return list(clients)

    def start_round(self, round: int, parameters: NDArrays, clients: Sequence[NumPyClient]) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> InProcessBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
