"""The organisations of a simulated consortium: data split, initial model, one client each.

Both the full simulation and its plain-FedAvg baseline build their clients here,
so the overhead benchmark compares the same workload by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from fedledger.spec import JobSpec
from fedledger.training.datasets import Dataset, load_dataset
from fedledger.training.models import build_model
from fedledger.training.partition import partition
from fedledger.training.torch_client import TorchClient, weight_names


@dataclass
class Consortium:
    dataset: Dataset
    initial_model: nn.Module  # also the evaluation model
    names: list[str]  # parameter names, in client order
    clients: list[TorchClient]  # clients[i] belongs to organisation i + 1


def build_consortium(spec: JobSpec) -> Consortium:
    """Loads the data, splits it among `spec.trainers` and gives each a seeded client."""
    ds = load_dataset(spec.dataset, test_fraction=spec.test_fraction, seed=spec.seed)
    parts = partition(ds, spec.trainers, spec.partition, alpha=spec.alpha, seed=spec.seed)
    init = build_model(spec.model, ds.input_shape, ds.num_classes, seed=spec.seed)
    clients = [
        TorchClient(
            build_model(spec.model, ds.input_shape, ds.num_classes, seed=spec.seed),
            ds.x_train[idx],
            ds.y_train[idx],
            ds.x_test[:0],
            ds.y_test[:0],
            epochs=spec.local_epochs,
            batch_size=spec.batch_size,
            lr=spec.learning_rate,
            momentum=spec.momentum,
            seed=spec.seed + i,
        )
        for i, idx in enumerate(parts, start=1)
    ]
    return Consortium(dataset=ds, initial_model=init, names=weight_names(init), clients=clients)
