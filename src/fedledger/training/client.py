"""The trainer-side client interface, shaped like Flower's `NumPyClient`.

Organisations that already run Flower should port by changing an import: the
method names, arguments and return tuples match `flwr.client.NumPyClient`. The
roles layer calls these methods; it never looks inside the model. The one
addition is `parameter_names`, because the codec names every tensor in a blob
and a stable name per position makes blobs self-describing and diffable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

Scalar = bool | bytes | float | int | str
NDArrays = list[np.ndarray]
Config = dict[str, Scalar]
Metrics = dict[str, Scalar]


class NumPyClient(ABC):
    """A participant's local learner: parameters in, parameters (or metrics) out."""

    @abstractmethod
    def get_parameters(self, config: Config) -> NDArrays:
        """The current local parameters, in a fixed order."""

    @abstractmethod
    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        """Trains from `parameters`; returns (new parameters, examples used, metrics)."""

    @abstractmethod
    def evaluate(self, parameters: NDArrays, config: Config) -> tuple[float, int, Metrics]:
        """Evaluates `parameters` on local data; returns (loss, examples used, metrics)."""

    def parameter_names(self) -> list[str]:
        """A name per parameter position; override when the model has real names."""
        return [f"param_{i:04d}" for i in range(len(self.get_parameters({})))]


class ClientWrapper(NumPyClient):
    """Delegates everything to `inner`; subclasses override what they change (usually `fit`).

    The simulator's faults and attacks are such wrappers around an honest client.
    """

    def __init__(self, inner: NumPyClient) -> None:
        self.inner = inner

    def get_parameters(self, config: Config) -> NDArrays:
        return self.inner.get_parameters(config)

    def parameter_names(self) -> list[str]:
        return self.inner.parameter_names()

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        return self.inner.fit(parameters, config)

    def evaluate(self, parameters: NDArrays, config: Config) -> tuple[float, int, Metrics]:
        return self.inner.evaluate(parameters, config)
