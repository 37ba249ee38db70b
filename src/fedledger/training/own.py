"""Consortia that train on the organisations' own data instead of a bundled dataset.

`fedledger simulate --data …` runs every organisation on one machine, each on its own
source (or on its share of one table split by a natural column); `fedledger node`
loads exactly one source, its organisation's, and nothing else. Both check each
source against the job's schema before anything is committed, and both give each
trainer its encoded, not yet standardised, rows: z-scoring waits for the statistics
round (`data/stats.py`), so no party's statistics shape anyone's preprocessing.

The simulation's test set is the sponsor's held-out evaluation: `--test-data`, or, if
none is given, a seeded `test_fraction` of each organisation's rows. That is a
simulation convenience; a real sponsor evaluates on data of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedledger.data.encode import LocalData, load_local
from fedledger.data.sources import DataSource
from fedledger.data.stats import LocalFeatures
from fedledger.errors import DataError, SpecError
from fedledger.spec import JobSpec
from fedledger.training.consortium import Consortium
from fedledger.training.datasets import Dataset
from fedledger.training.models import build_model
from fedledger.training.partition import partition_by_key, partition_dirichlet, partition_iid
from fedledger.training.partition_client import make_client
from fedledger.training.torch_client import TorchClient, weight_names


@dataclass(frozen=True)
class OwnSources:
    """Where a simulation's organisations read their own data: one source each, or one to split."""

    sources: tuple[DataSource, ...]
    organisations: tuple[str, ...] = ()  # names, one per source (default org-01, org-02, …)
    test: DataSource | None = None  # the sponsor's held-out evaluation


@dataclass
class LocalTrainer:
    """One organisation's side of an own-data job: its client, features and raw rows."""

    client: TorchClient
    names: list[str]
    features: LocalFeatures | None  # None unless the job standardises federatedly
    #: its rows as read and encoded, before any standardisation: what its data commitment binds
    #: (a simulation's held-out test share included: those rows are the organisation's too)
    data: LocalData
    #: a simulation that splits one table: which of its rows are this organisation's share
    rows: np.ndarray | None = None


def _features(spec: JobSpec, x: np.ndarray, organisation: str) -> LocalFeatures | None:
    if not spec.federated_stats:
        return None
    assert spec.data_schema is not None and spec.data_schema.kind == "table"
    return LocalFeatures(
        x, numeric=len(spec.data_schema.numeric), scale_bits=spec.scale_bits, organisation=organisation
    )


def _schema_dataset(spec: JobSpec, *, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                    y_test: np.ndarray) -> Dataset:  # fmt: skip
    assert spec.data_schema is not None
    return Dataset(
        name=spec.dataset,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        num_classes=spec.data_schema.num_classes,
        input_shape=spec.data_schema.input_shape,
        groups_train=None,
    )


def local_trainer(spec: JobSpec, source: DataSource, *, organisation: str, seed: int) -> LocalTrainer:
    """A node's trainer on its own source: checked against the schema, encoded, seeded."""
    if spec.data_schema is None:
        raise SpecError("data_schema", "this job trains on a bundled dataset; a node's [data] is not used")
    data = load_local(source, spec.data_schema, organisation=organisation)
    raw = LocalData(x=data.x.copy(), y=data.y, groups=None)  # the client's copy is standardised later
    empty = data.x[:0]
    ds = _schema_dataset(spec, x_train=data.x, y_train=data.y, x_test=empty, y_test=data.y[:0])
    client = make_client(spec, ds, data.x, data.y, seed=seed)
    return LocalTrainer(client, client.parameter_names(), _features(spec, client.x_train, organisation), raw)


def _held_out(n: int, fraction: float, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, test rows) of one organisation's n rows: a seeded share held out."""
    order = np.random.default_rng([seed, 0x7E57, index]).permutation(n)
    k = min(n - 1, max(1, math.floor(fraction * n))) if n > 1 else 0
    return np.sort(order[k:]), np.sort(order[:k])


def build_own_consortium(
    spec: JobSpec,
    sources: Sequence[DataSource],
    *,
    test: DataSource | None = None,
    organisations: Sequence[str] = (),
) -> tuple[Consortium, list[LocalTrainer]]:
    """Every organisation of a simulation on its own data, as `build_consortium` builds bundled ones.

    `sources` is one source per organisation (partition=organisation) or one table that
    the spec's partition splits (key: by `partition_key`; iid or dirichlet: by seed).
    """
    schema = spec.data_schema
    if schema is None:
        raise SpecError("data_schema", "own data needs the job's data_schema")
    names = list(organisations) or [f"org-{i:02d}" for i in range(1, spec.trainers + 1)]
    shares: list[np.ndarray | None] = [None] * spec.trainers
    if spec.partition == "organisation":
        if len(sources) != spec.trainers:
            raise SpecError(
                "data", f"{len(sources)} sources for {spec.trainers} trainers: give one per organisation"
            )
        loaded = [load_local(s, schema, organisation=n) for s, n in zip(sources, names, strict=True)]
    else:
        if len(sources) != 1:
            raise SpecError("data", f"partition={spec.partition} splits one table; {len(sources)} were given")
        key = spec.partition_key if spec.partition == "key" else ""
        whole = load_local(sources[0], schema, organisation="sponsor", key=key)
        n = len(whole.y)
        if spec.partition == "key":
            assert whole.groups is not None
            parts = partition_by_key(whole.groups, spec.trainers)
        elif spec.partition == "iid":
            parts = partition_iid(n, spec.trainers, spec.seed)
        else:
            parts = partition_dirichlet(whole.y, spec.trainers, spec.alpha, spec.seed)
        loaded = [LocalData(x=whole.x[p], y=whole.y[p], groups=None) for p in parts]
        shares = list(parts)

    trains: list[tuple[np.ndarray, np.ndarray]] = []
    tests_x, tests_y = [], []
    for i, data in enumerate(loaded, start=1):
        if test is None:
            tr, te = _held_out(len(data.y), spec.test_fraction, spec.seed, i)
            tests_x.append(data.x[te])
            tests_y.append(data.y[te])
            trains.append((data.x[tr], data.y[tr]))
        else:
            trains.append((data.x, data.y))
        if len(trains[-1][1]) == 0:
            raise DataError(f"{names[i - 1]}: no rows left to train on after the held-out test share")
    if test is not None:
        t = load_local(test, schema, organisation="sponsor (test data)")
        x_test, y_test = t.x, t.y
    else:
        x_test, y_test = np.concatenate(tests_x), np.concatenate(tests_y)
    if len(y_test) == 0:
        raise DataError("sponsor: the held-out test set is empty; give --test-data or more rows")
    sizes = [len(y) for _, y in trains]
    bounds = np.cumsum([0, *sizes])
    ds = _schema_dataset(
        spec,
        x_train=np.concatenate([x for x, _ in trains]),
        y_train=np.concatenate([y for _, y in trains]),
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=y_test,
    )
    parts = [np.arange(bounds[i], bounds[i + 1], dtype=np.int64) for i in range(len(trains))]
    init = build_model(spec.model, ds.input_shape, ds.num_classes, seed=spec.seed)
    locals_: list[LocalTrainer] = []
    for i, ((x, y), name) in enumerate(zip(trains, names, strict=True), start=1):
        # what the organisation brought (its data commitment), held-out share included
        raw = LocalData(x=loaded[i - 1].x, y=loaded[i - 1].y, groups=None)
        client = make_client(spec, ds, np.array(x, dtype=np.float32), y, seed=spec.seed + i)
        features = _features(spec, client.x_train, name)
        locals_.append(LocalTrainer(client, weight_names(init), features, raw, rows=shares[i - 1]))
    consortium = Consortium(
        dataset=ds,
        initial_model=init,
        names=weight_names(init),
        clients=[lt.client for lt in locals_],
        parts=parts,
    )
    return consortium, locals_
