"""Splitting a train pool among trainers: pure functions of (data, parts, seed).

A simulation stands in for organisations that each hold their own data, so the
split must be reproducible (every party, and the auditor, derives the same one
from the spec) and honest about skew: real organisations differ in label mix
(Dirichlet) or hold whole natural groups (key). Every function returns sorted,
disjoint index arrays that together cover every row, and refuses a split that
leaves a trainer with nothing to train on rather than letting it fail later.
"""

from __future__ import annotations

import heapq
from typing import Literal

import numpy as np

from fedledger.errors import DatasetError, SpecError
from fedledger.training.datasets import Dataset

Method = Literal["iid", "dirichlet", "key"]
METHODS: tuple[str, ...] = ("iid", "dirichlet", "key")
MAX_DIRICHLET_TRIES = 1000


def _check_parts(n_rows: int, n_parts: int, min_size: int = 1) -> None:
    if n_parts < 1:
        raise DatasetError(f"cannot partition into {n_parts} parts; need at least 1")
    if n_rows < n_parts * min_size:
        raise DatasetError(
            f"cannot give {n_parts} trainers at least {min_size} row(s) each "
            f"from only {n_rows} training rows; use fewer trainers"
        )


def partition_iid(n_rows: int, n_parts: int, seed: int) -> list[np.ndarray]:
    """A uniform random split into near-equal parts (sizes differ by at most one)."""
    _check_parts(n_rows, n_parts)
    order = np.random.default_rng(seed).permutation(n_rows)  # (n_rows,)
    return [np.sort(part).astype(np.int64) for part in np.array_split(order, n_parts)]


def partition_dirichlet(
    labels: np.ndarray, n_parts: int, alpha: float, seed: int, min_size: int = 10
) -> list[np.ndarray]:
    """The per-class Dirichlet split of Hsu et al. 2019 as implemented in NIID-Bench.

    Each class is divided among the parts in proportions drawn from Dir(alpha);
    small alpha gives each part few classes. Parts already holding their fair
    share (n_rows / n_parts) get no more, which keeps sizes from exploding. The
    whole draw repeats until every part has `min_size` rows, a bounded number of
    times, so a hopeless request fails instead of spinning.
    """
    labels = np.asarray(labels)  # (n_rows,)
    n_rows = len(labels)
    if alpha <= 0:
        raise DatasetError(f"Dirichlet alpha must be positive, got {alpha}")
    _check_parts(n_rows, n_parts, max(min_size, 1))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    fair_share = n_rows / n_parts
    for _ in range(MAX_DIRICHLET_TRIES):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_parts)]
        sizes = np.zeros(n_parts, dtype=np.int64)  # (n_parts,)
        for cls in classes:
            rows = rng.permutation(np.flatnonzero(labels == cls))  # (n_cls,)
            props = rng.dirichlet(np.full(n_parts, alpha))  # (n_parts,)
            masked = props * (sizes < fair_share)
            props = masked / masked.sum() if masked.sum() > 0 else props
            cuts = (np.cumsum(props) * len(rows)).astype(np.int64)[:-1]  # (n_parts - 1,)
            for j, chunk in enumerate(np.split(rows, cuts)):
                parts[j].append(chunk)
                sizes[j] += len(chunk)
        if sizes.min() >= min_size:
            return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]
    raise DatasetError(
        f"Dirichlet split (alpha={alpha}) of {n_rows} rows into {n_parts} parts left a part "
        f"with fewer than {min_size} rows in {MAX_DIRICHLET_TRIES} draws; "
        "raise alpha or use fewer trainers"
    )


def partition_by_key(keys: np.ndarray, n_parts: int) -> list[np.ndarray]:
    """Keeps each natural group (ward, branch, writer) whole on one trainer.

    Greedy longest-processing-time: groups in decreasing size (ties by key
    order) each go to the currently smallest part (ties by part index), which
    is deterministic and balances sizes well without any randomness.
    """
    keys = np.asarray(keys)  # (n_rows,)
    _check_parts(len(keys), n_parts)
    uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    if len(uniq) < n_parts:
        raise DatasetError(
            f"only {len(uniq)} distinct keys for {n_parts} trainers; a key partition "
            "keeps groups whole, so some trainer would get no rows; use fewer trainers"
        )
    order = np.argsort(-counts, kind="stable")  # largest group first, ties by key order
    heap = [(0, j) for j in range(n_parts)]  # (rows so far, part index)
    owner = np.empty(len(uniq), dtype=np.int64)  # (n_groups,) part of each group
    for g in order:
        size, j = heapq.heappop(heap)
        owner[g] = j
        heapq.heappush(heap, (size + int(counts[g]), j))
    row_owner = owner[inverse.reshape(-1)]  # (n_rows,)
    return [np.flatnonzero(row_owner == j).astype(np.int64) for j in range(n_parts)]


def partition(
    dataset: Dataset,
    n_parts: int,
    method: str,
    *,
    alpha: float,
    seed: int,
    min_size: int = 10,
) -> list[np.ndarray]:
    """Splits `dataset`'s train pool as a job spec's `partition` field asks."""
    n_rows = len(dataset.y_train)
    if method == "iid":
        return partition_iid(n_rows, n_parts, seed)
    if method == "dirichlet":
        return partition_dirichlet(dataset.y_train, n_parts, alpha, seed, min_size=min_size)
    if method == "key":
        if dataset.groups_train is None:
            raise DatasetError(
                f"dataset {dataset.name!r} has no natural key per row, so partition='key' "
                "cannot apply; use 'iid' or 'dirichlet'"
            )
        return partition_by_key(dataset.groups_train, n_parts)
    raise SpecError("partition", f"unknown method {method!r}; known: {', '.join(METHODS)}")
