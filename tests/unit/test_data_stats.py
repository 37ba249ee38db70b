"""Federated feature statistics: exact integer sums, linear digit vectors, honest checks."""

from __future__ import annotations

import re

import numpy as np
import pytest

from fedledger.data import stats
from fedledger.errors import DataError, InvalidUpdate


def _python_sums(x: np.ndarray, bits: int) -> tuple[list[int], list[int]]:
    q = np.rint(x.astype(np.float64) * 2**bits).astype(np.int64)
    return (
        [sum(int(v) for v in q[:, j]) for j in range(x.shape[1])],
        [sum(int(v) * int(v) for v in q[:, j]) for j in range(x.shape[1])],
    )


def test_sums_are_exact_against_python_integers_at_every_magnitude() -> None:
    rng = np.random.default_rng(1)
    scales = np.array([1e6, 1.0, 1e-4, 3e3])  # incomes, rates, tiny ratios, amounts
    x = (rng.normal(size=(5000, 4)) * scales).astype(np.float32)
    t = stats.contribution(x, 20)
    s, ss = _python_sums(x, 20)
    assert [stats.from_limbs(d) for d in t[stats.SUM]] == s
    assert [stats.from_limbs(d) for d in t[stats.SUMSQ]] == ss
    assert stats.from_limbs(t[stats.COUNT]) == 5000


def test_sums_stay_exact_across_the_int64_block_boundary() -> None:
    x = np.full((stats._BLOCK + 7, 1), 123456.75, dtype=np.float32)  # q² ≈ 2**74 a row
    t = stats.contribution(x, 20)
    q = int(np.rint(np.float64(np.float32(123456.75)) * 2**20))
    assert stats.from_limbs(t[stats.SUMSQ][0]) == q * q * len(x)


def test_digit_vectors_add_linearly_so_the_sum_of_parts_is_the_whole() -> None:
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(900, 3)) * 50).astype(np.float32)
    parts = [stats.contribution(p, 16) for p in np.array_split(x, 4)]
    whole = stats.contribution(x, 16)
    total = stats.sum_contributions(parts)
    for name in stats.NAMES:
        got = [stats.from_limbs(d) for d in np.atleast_2d(total[name])]
        want = [stats.from_limbs(d) for d in np.atleast_2d(whole[name])]
        assert got == want


def test_two_independent_computations_give_identical_bytes() -> None:
    x = np.random.default_rng(3).normal(size=(400, 5)).astype(np.float32)
    a = stats.contribution(x.copy(), 20)
    b = stats.contribution(np.ascontiguousarray(x[::1]), 20)
    assert all(a[n].tobytes() == b[n].tobytes() for n in stats.NAMES)


@pytest.mark.parametrize("value", [0, 1, -1, 2**24, -(2**100) + 12345, 2**191 - 1])
def test_limbs_round_trip(value: int) -> None:
    assert stats.from_limbs(stats.to_limbs(value)) == value


def test_a_value_beyond_the_digits_is_refused() -> None:
    with pytest.raises(OverflowError):
        stats.to_limbs(2**192)


def test_a_feature_too_large_for_the_fixed_point_names_the_column() -> None:
    x = np.array([[1.0, 3e14]], dtype=np.float32)
    with pytest.raises(DataError, match=r"^org-02: numeric feature 1: values reach 3e\+14, too large"):
        stats.contribution(x, 20, organisation="org-02")


def test_standardiser_matches_numpy_and_keeps_constant_features_at_std_one() -> None:
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.normal(5, 2, 2000), np.full(2000, 7.0)]).astype(np.float32)
    mean, std = stats.standardiser(stats.contribution(x, 20), 20)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std[0], x[:, 0].astype(np.float64).std(), rtol=1e-5)
    assert std[1] == 1.0


def _valid(rows: int = 50) -> dict[str, np.ndarray]:
    return stats.contribution(np.random.default_rng(5).normal(size=(rows, 2)).astype(np.float32), 20)


def test_a_valid_contribution_passes() -> None:
    stats.check_contribution(_valid(), features=2, num_examples=50)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.update({stats.COUNT: stats.to_limbs(49)}),
            "statistics count 49 differs from the committed 50",
        ),
        (lambda t: t.pop(stats.SUMSQ), "a statistics update holds stats.count, stats.sum, stats.sumsq"),
        (lambda t: t.update({"w": np.zeros(1, dtype=np.int64)}), "a statistics update holds"),
        (lambda t: t.update({stats.SUM: t[stats.SUM].astype(np.int32)}), "tensor 'stats.sum': dtype int32"),
        (lambda t: t.update({stats.SUM: t[stats.SUM][:1]}), "tensor 'stats.sum': shape (1, 8), expected"),
        (lambda t: t[stats.SUM].__setitem__((0, 0), 2**30), "tensor 'stats.sum': a digit is outside ±2**24"),
        (lambda t: t.update({stats.SUMSQ: -t[stats.SUMSQ]}), "feature 0: sums describe no real data"),
        (lambda t: t[stats.SUM].__setitem__((1, 3), 2**23), "feature 1: sums describe no real data"),
    ],
)
def test_a_malformed_contribution_is_rejected_with_its_reason(edit: object, message: str) -> None:
    t = {k: v.copy() for k, v in _valid().items()}
    edit(t)  # type: ignore[operator]
    with pytest.raises(InvalidUpdate, match="^" + re.escape(message)):
        stats.check_contribution(t, features=2, num_examples=50)


def test_local_features_standardise_once_and_refuse_changed_statistics() -> None:
    x = np.random.default_rng(6).normal(3, 4, size=(300, 2)).astype(np.float32)
    features = stats.LocalFeatures(x, numeric=2, scale_bits=20)
    committed = stats.sum_contributions([features.update])
    features.standardise(committed)
    once = x.copy()
    features.standardise(committed)  # version 2, 3, … carry the same statistics: no second z-scoring
    np.testing.assert_array_equal(x, once)
    np.testing.assert_allclose(x.astype(np.float64).mean(axis=0), 0.0, atol=1e-5)
    other = {k: v.copy() for k, v in committed.items()}
    other[stats.SUM][0, 0] += 1
    with pytest.raises(ValueError, match="changed after version 1"):
        features.standardise(other)
