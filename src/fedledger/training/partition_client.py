"""An organisation's client as a recipe: its rows as an index array, its model built only to train.

A simulation of a thousand organisations cannot afford a thousand copies of the data and a
thousand models that sit idle between the rounds they are sampled for. A `PartitionClient`
holds only the sorted row indices of its partition into the one shared train array (a view,
not a copy) and its seed; `fit` builds the seeded client the in-process simulation would
have built (`consortium.make_client`), trains it and lets it go. Because `TorchClient.fit`
keeps no state between rounds (it loads the global weights and reseeds its shuffling from
(seed, round)), the weights come out bit for bit what a long-lived client gives.

`make_client` (re-exported by consortium.py) builds every simulated organisation's client,
eager or lazy. `fit_rows` is the same step as a free function of plain arrays, so a Ray worker can run it
on the shared train array it maps from the object store without a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from fedledger.spec import JobSpec
from fedledger.training.client import Config, Metrics, NDArrays, NumPyClient
from fedledger.training.datasets import Dataset
from fedledger.training.dpsgd import DpSgd
from fedledger.training.models import build_model
from fedledger.training.torch_client import TorchClient


def make_client(
    spec: JobSpec, ds: Dataset, x: np.ndarray, y: np.ndarray, seed: int, *, trainer: bool = True
) -> TorchClient:
    """A seeded client with the spec's model and training settings.

    A trainer's client in a record-level DP job runs DP-SGD; the sponsor's (FLTrust's root,
    `trainer=False`) trains on the sponsor's own data and is not private.
    """
    return TorchClient(
        build_model(spec.model, ds.input_shape, ds.num_classes, seed=spec.seed),
        x,
        y,
        ds.x_test[:0],
        ds.y_test[:0],
        epochs=spec.local_epochs,
        batch_size=spec.batch_size,
        lr=spec.learning_rate,
        momentum=spec.momentum,
        seed=seed,
        dp=DpSgd.from_spec(spec) if spec.record_dp and trainer else None,
    )


def fit_rows(
    spec: JobSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    rows: np.ndarray,
    seed: int,
    parameters: NDArrays,
    config: Config,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    threads: int | None = None,
) -> tuple[NDArrays, int, Metrics]:
    """Trains organisation `rows` of the shared arrays from `parameters`; the model then goes.

    Indexing by `rows` copies only this partition, and only while it trains. `threads`: a
    worker process (Ray's) takes the driver's torch thread count, so kernels reduce alike.
    """
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    # x_test is only sliced empty by make_client: the train arrays stand in, no copy
    ds = Dataset("shared", x_train, y_train, x_train[:0], y_train[:0], num_classes, input_shape, None)
    client = make_client(spec, ds, x_train[rows], y_train[rows], seed=seed)
    client.seeded_noise = True  # a simulation reruns bit for bit (as SimulationSetup sets it)
    return client.fit(parameters, config)


@dataclass
class PartitionClient(NumPyClient):
    """Organisation `seed - spec.seed`'s client: the shared dataset, its row indices and its seed."""

    spec: JobSpec
    dataset: Dataset
    rows: np.ndarray  # (n,) sorted int64 indices into dataset.x_train
    seed: int

    def get_parameters(self, config: Config) -> NDArrays:
        from fedledger.training.torch_client import get_weights

        ds = self.dataset
        return get_weights(build_model(self.spec.model, ds.input_shape, ds.num_classes, seed=self.spec.seed))

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        ds = self.dataset
        return fit_rows(self.spec, ds.x_train, ds.y_train, self.rows, self.seed, parameters, config,
                        input_shape=ds.input_shape, num_classes=ds.num_classes)  # fmt: skip

    def evaluate(self, parameters: NDArrays, config: Config) -> tuple[float, int, Metrics]:
        raise NotImplementedError("a simulated organisation holds no validation split")
