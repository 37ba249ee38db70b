"""Partitions are disjoint, complete, reproducible, and refuse to starve a trainer."""

from __future__ import annotations

import numpy as np
import pytest

from fedledger.errors import DatasetError, SpecError
from fedledger.training.datasets import Dataset, load_dataset
from fedledger.training.partition import (
    partition,
    partition_by_key,
    partition_dirichlet,
    partition_iid,
)


def _assert_exact_cover(parts: list[np.ndarray], n_rows: int) -> None:
    for part in parts:
        assert part.dtype == np.int64
        assert np.all(np.diff(part) > 0), "each part is sorted with no repeats"
    joined = np.concatenate(parts)
    assert len(joined) == n_rows
    np.testing.assert_array_equal(np.sort(joined), np.arange(n_rows))


def _labels(n_per_class: int = 100, classes: int = 10) -> np.ndarray:
    return np.repeat(np.arange(classes), n_per_class)


def test_iid_cover_balance_and_determinism() -> None:
    parts = partition_iid(1003, 10, seed=1)
    _assert_exact_cover(parts, 1003)
    assert {len(p) for p in parts} <= {100, 101}
    again = partition_iid(1003, 10, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    other = partition_iid(1003, 10, seed=2)
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_dirichlet_cover_min_size_and_determinism() -> None:
    labels = _labels()
    parts = partition_dirichlet(labels, 10, alpha=0.5, seed=0, min_size=10)
    _assert_exact_cover(parts, len(labels))
    assert min(len(p) for p in parts) >= 10
    again = partition_dirichlet(labels, 10, alpha=0.5, seed=0, min_size=10)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def _mean_dominant_share(labels: np.ndarray, parts: list[np.ndarray]) -> float:
    """How much of each part its most common class takes, averaged: 0.1 is balanced."""
    return float(np.mean([np.bincount(labels[p]).max() / len(p) for p in parts]))


def test_dirichlet_skew_visible_at_small_alpha() -> None:
    labels = _labels()
    iid = _mean_dominant_share(labels, partition_iid(len(labels), 10, seed=0))
    skewed = _mean_dominant_share(labels, partition_dirichlet(labels, 10, alpha=0.1, seed=0))
    assert iid < 0.25
    assert skewed > 0.5


def test_dirichlet_impossible_requests() -> None:
    with pytest.raises(DatasetError, match="fewer trainers"):
        partition_dirichlet(_labels(5), 10, alpha=0.5, seed=0, min_size=10)
    with pytest.raises(DatasetError, match="alpha"):
        partition_dirichlet(_labels(), 10, alpha=0.0, seed=0)
    # feasible in size but hopeless in practice: bounded retries, then a clear error
    with pytest.raises(DatasetError, match="draws"):
        lopsided = np.array([0] * 99 + [1])  # one class is nearly everything
        partition_dirichlet(lopsided, 10, alpha=0.001, seed=0, min_size=10)


def test_iid_errors_on_empty_trainer() -> None:
    with pytest.raises(DatasetError, match="3 training rows"):
        partition_iid(3, 4, seed=0)
    with pytest.raises(DatasetError, match="at least 1"):
        partition_iid(3, 0, seed=0)


def test_key_partition_keeps_groups_whole_and_balances() -> None:
    rng = np.random.default_rng(0)
    keys = rng.choice(
        np.array(["ward-a", "ward-b", "ward-c", "ward-d", "ward-e", "ward-f"]),
        size=600,
        p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05],
    )
    parts = partition_by_key(keys, 3)
    _assert_exact_cover(parts, len(keys))
    owners = [{str(k) for k in keys[p]} for p in parts]
    for i, a in enumerate(owners):
        for b in owners[i + 1 :]:
            assert not a & b, "a key never spans two parts"
    assert partition_by_key(keys, 3)[0].tolist() == parts[0].tolist()
    sizes = sorted(len(p) for p in parts)
    assert sizes[-1] - sizes[0] < 0.3 * len(keys)


def test_key_partition_needs_enough_keys() -> None:
    with pytest.raises(DatasetError, match="only 2 distinct keys"):
        partition_by_key(np.array([1, 1, 2, 2]), 3)


def test_dispatch() -> None:
    ds = load_dataset("digits")
    n = len(ds.y_train)
    _assert_exact_cover(partition(ds, 4, "iid", alpha=0.5, seed=0), n)
    _assert_exact_cover(partition(ds, 4, "dirichlet", alpha=0.5, seed=0), n)
    with pytest.raises(DatasetError, match="no natural key"):
        partition(ds, 4, "key", alpha=0.5, seed=0)
    with pytest.raises(SpecError, match="unknown method 'shards'"):
        partition(ds, 4, "shards", alpha=0.5, seed=0)
    keyed = Dataset(**{**ds.__dict__, "groups_train": np.arange(n) % 7})
    parts = partition(keyed, 4, "key", alpha=0.5, seed=0)
    _assert_exact_cover(parts, n)
