"""The organisations of a simulated consortium: data split, initial model, one client each.

Both the full simulation and its plain-FedAvg baseline build their clients here,
so the overhead benchmark compares the same workload by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from eth_utils.crypto import keccak
from torch import nn

from fedledger.spec import JobSpec
from fedledger.training.client import NumPyClient
from fedledger.training.datasets import Dataset, load_dataset
from fedledger.training.models import build_model
from fedledger.training.partition import partition
from fedledger.training.partition_client import PartitionClient, make_client
from fedledger.training.torch_client import TorchClient, weight_names


@dataclass
class Consortium:
    dataset: Dataset
    initial_model: nn.Module  # also the evaluation model
    names: list[str]  # parameter names, in client order
    clients: list[NumPyClient]  # clients[i] belongs to organisation i + 1
    parts: list[np.ndarray]  # parts[i]: organisation i + 1's rows of dataset.x_train
    root: TorchClient | None = None  # FLTrust: the sponsor's client on the root dataset
    root_hash: str = ""  # keccak256 of the root dataset, for the spec
    validation: tuple[np.ndarray, np.ndarray] | None = None  # scoring: (x, y) held out
    validation_hash: str = ""


def dataset_hash(x: np.ndarray, y: np.ndarray) -> str:
    """keccak256 over the rows' float32 inputs and int64 labels, little-endian."""
    data = np.ascontiguousarray(x, dtype="<f4").tobytes() + np.ascontiguousarray(y, dtype="<i8").tobytes()
    return "0x" + bytes(keccak(data)).hex()


def build_consortium(spec: JobSpec, *, only: int | None = None, lazy: bool = False) -> Consortium:
    """Loads the data, splits it among `spec.trainers` and gives each a seeded client.

    `only` (a partition index from 0): a node needs just its own organisation's Flower client,
    and a client_fn that loads its own organisation's data may fail for anyone else's, so only
    that one is loaded (the others keep the built-in client, which nobody trains with).

    For FLTrust, `root_examples` seeded rows are first held out of the trainers' pool as
    the sponsor's root dataset.

    `lazy`: each client is a `PartitionClient` (its row indices into the one train array;
    its model built only while it trains), for simulations of many organisations.
    """
    ds = load_dataset(spec.dataset, test_fraction=spec.test_fraction, seed=spec.seed)
    pool = np.arange(len(ds.y_train))
    root = None
    root_hash = ""
    if spec.aggregation == "fltrust":
        order = np.random.default_rng([spec.seed, 0xF17]).permutation(len(pool))
        root_rows, pool = np.sort(order[: spec.root_examples]), np.sort(order[spec.root_examples :])
        rx, ry = ds.x_train[root_rows], ds.y_train[root_rows]
        root = make_client(spec, ds, rx, ry, seed=spec.seed, trainer=False)
        root_hash = dataset_hash(rx, ry)
    validation = None
    validation_hash = ""
    if spec.scoring != "none":
        order = np.random.default_rng([spec.seed, 0x5C0]).permutation(len(pool))
        val_rows, pool = (
            pool[np.sort(order[: spec.validation_examples])],
            pool[np.sort(order[spec.validation_examples :])],
        )
        validation = (ds.x_train[val_rows], ds.y_train[val_rows])
        validation_hash = dataset_hash(*validation)
    pool_ds = ds if len(pool) == len(ds.y_train) else _subset(ds, pool)
    parts = [
        pool[idx]
        for idx in partition(pool_ds, spec.trainers, spec.partition, alpha=spec.alpha, seed=spec.seed)
    ]
    init = build_model(spec.model, ds.input_shape, ds.num_classes, seed=spec.seed)
    clients: list[NumPyClient] = [
        PartitionClient(spec, ds, idx, spec.seed + i)
        if lazy
        else make_client(spec, ds, ds.x_train[idx], ds.y_train[idx], seed=spec.seed + i)
        for i, idx in enumerate(parts, start=1)
    ]
    if spec.client:  # an organisation's own Flower client: it loads its own data, as in Flower
        from fedledger.training.flower import load_flower_client

        clients = [
            load_flower_client(spec.client, partition_id=i, num_partitions=spec.trainers)
            if only is None or i == only
            else clients[i]
            for i in range(spec.trainers)
        ]
    return Consortium(
        dataset=ds,
        initial_model=init,
        names=weight_names(init),
        clients=clients,
        parts=parts,
        root=root,
        root_hash=root_hash,
        validation=validation,
        validation_hash=validation_hash,
    )


def _subset(ds: Dataset, rows: np.ndarray) -> Dataset:
    return Dataset(
        name=ds.name,
        x_train=ds.x_train[rows],
        y_train=ds.y_train[rows],
        x_test=ds.x_test,
        y_test=ds.y_test,
        num_classes=ds.num_classes,
        input_shape=ds.input_shape,
        groups_train=None if ds.groups_train is None else ds.groups_train[rows],
    )


def initial_model(spec: JobSpec) -> nn.Module:
    """The job's seeded initial model, as its sponsor builds it before creating the job.

    An own-data job needs only its schema for the input shape and classes; a bundled job
    reads its dataset's.
    """
    if spec.data_schema is not None:
        schema = spec.data_schema
        return build_model(spec.model, schema.input_shape, schema.num_classes, seed=spec.seed)
    ds = load_dataset(spec.dataset, test_fraction=spec.test_fraction, seed=spec.seed)
    return build_model(spec.model, ds.input_shape, ds.num_classes, seed=spec.seed)
