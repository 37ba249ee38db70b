"""Datasets load offline with the documented shapes, and the test split is held out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedledger import spec
from fedledger.errors import DatasetError
from fedledger.training import datasets
from fedledger.training.datasets import DATASETS, load_dataset


def test_registry_matches_spec() -> None:
    assert set(DATASETS) == set(spec.DATASETS)


@pytest.mark.parametrize(
    ("name", "shape", "classes", "rows"),
    [
        ("mnist", (1, 28, 28), 10, 5000),
        ("digits", (1, 8, 8), 10, 1797),
        ("breast_cancer", (30,), 2, 569),
    ],
)
def test_shapes_and_disjoint_split(name: str, shape: tuple[int, ...], classes: int, rows: int) -> None:
    ds = load_dataset(name, test_fraction=0.2, seed=0)
    assert ds.input_shape == shape
    assert ds.num_classes == classes
    assert ds.x_train.shape[1:] == shape and ds.x_test.shape[1:] == shape
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert len(ds.x_train) + len(ds.x_test) == rows
    assert len(ds.x_test) == pytest.approx(0.2 * rows, abs=1)
    # stratified: every class appears in both splits
    assert set(np.unique(ds.y_test)) == set(range(classes))
    # held out: no test image is also a training image
    train_rows = {row.tobytes() for row in ds.x_train.reshape(len(ds.x_train), -1)}
    overlap = sum(row.tobytes() in train_rows for row in ds.x_test.reshape(len(ds.x_test), -1))
    assert overlap <= 2  # digits has a couple of exact duplicate images in the raw data
    assert ds.groups_train is None


def test_images_scaled_to_unit_range() -> None:
    for name in ("mnist", "digits"):
        ds = load_dataset(name)
        assert ds.x_train.min() >= 0.0 and ds.x_train.max() == pytest.approx(1.0)


def test_breast_cancer_standardised_on_train_only() -> None:
    ds = load_dataset("breast_cancer")
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-4)
    assert not np.allclose(ds.x_test.mean(axis=0), 0.0, atol=1e-3)


def test_split_is_deterministic_and_seeded() -> None:
    a, b = load_dataset("digits", seed=3), load_dataset("digits", seed=3)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    c = load_dataset("digits", seed=4)
    assert not np.array_equal(a.y_test, c.y_test)


def test_unknown_dataset_lists_known_ones() -> None:
    with pytest.raises(DatasetError, match="known datasets: breast_cancer, digits"):
        load_dataset("cifar10")


def test_bad_test_fraction() -> None:
    with pytest.raises(DatasetError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.5)


def test_fashion_mnist_missing_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        datasets._load_fashion_mnist(tmp_path / "absent")


def _write_idx(path: Path, array: np.ndarray, *, gz: bool) -> None:
    import gzip

    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_gzipped_or_not(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", 40), ("t10k", 10)):
        _write_idx(
            tmp_path / f"{split}-images-idx3-ubyte{suffix}",
            rng.integers(0, 256, (n, 28, 28)),
            gz=gz,
        )
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, gz=gz)
    raw = datasets._load_fashion_mnist(tmp_path)
    assert raw.x.shape == (50, 1, 28, 28) and raw.y.shape == (50,)
    assert raw.x.min() >= 0.0 and raw.x.max() <= 1.0
