"""Contribution scores: hand-checked games, then Monte Carlo against exact Shapley on real updates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from fedledger.codec.fixedpoint import quantize
from fedledger.incentives.shapley import exact_shapley, gtg_shapley, leave_one_out
from fedledger.incentives.utility import coalition_utility, linear_prefix, linear_utility
from fedledger.training.datasets import load_dataset


def test_additive_game_gives_each_its_own_value() -> None:
    value = [3.0, 1.0, 0.0, 5.0]

    def u(s: frozenset[int]) -> float:
        return sum(value[i] for i in s)

    assert exact_shapley(4, u) == pytest.approx(value)
    assert leave_one_out(4, u) == pytest.approx(value)
    est = gtg_shapley(4, u, eps=1e-9, seed=1)
    assert est.values == pytest.approx(value)


def test_glove_game() -> None:
    """One left glove (0), two right gloves (1, 2): a pair is worth 1. Shapley: 2/3, 1/6, 1/6."""

    def u(s: frozenset[int]) -> float:
        return float(0 in s and (1 in s or 2 in s))

    assert exact_shapley(3, u) == pytest.approx([2 / 3, 1 / 6, 1 / 6])
    # leave-one-out misses the shared value of the substitutes entirely
    assert leave_one_out(3, u) == pytest.approx([1.0, 0.0, 0.0])
    assert gtg_shapley(3, u, eps=1e-9, max_permutations=3000, tolerance=1e-4, seed=0).values == pytest.approx(
        [2 / 3, 1 / 6, 1 / 6], abs=0.05
    )


def test_a_round_that_adds_nothing_scores_zero() -> None:
    est = gtg_shapley(5, lambda s: 0.7, eps=1e-3)
    assert est.truncated and est.values == [0.0] * 5 and est.evaluations == 2


def test_exact_refuses_huge_rounds() -> None:
    with pytest.raises(ValueError, match="use gtg_shapley"):
        exact_shapley(17, lambda s: 0.0)


def _round(seed: int) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]], list[int], object]:
    """10 trainers of different value on digits (logistic regression, one local step each):
    clean, label noise, duplicated data, tiny data, and a free rider."""
    ds = load_dataset("digits", seed=seed)
    rng = np.random.default_rng(seed)
    x, y = ds.x_train.reshape(len(ds.y_train), -1), ds.y_train
    xv, yv = ds.x_test.reshape(len(ds.y_test), -1), ds.y_test
    w0 = rng.normal(0, 0.01, (x.shape[1], ds.num_classes))
    parts = np.array_split(rng.permutation(len(y)), 10)

    def grad_step(rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
        logits = x[rows] @ w0
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(rows)), labels] -= 1
        return -0.5 * x[rows].T @ p / len(rows)

    deltas, weights = [], []
    for i, rows in enumerate(parts):
        labels = y[rows].copy()
        if i in (2, 3):  # heavy label noise
            labels = rng.integers(0, ds.num_classes, len(rows))
        if i == 4:  # duplicated data: the same rows as trainer 0
            rows, labels = parts[0], y[parts[0]]
        if i == 5:  # tiny data
            rows, labels = rows[:5], labels[:5]
        step = np.zeros_like(w0) if i == 6 else grad_step(rows, labels)  # 6: free rider
        deltas.append(quantize({"w": step.astype(np.float32)}, 20))
        weights.append(len(rows))
    global_q = quantize({"w": w0.astype(np.float32)}, 20)

    def score(model: dict[str, np.ndarray]) -> float:
        w = model["w"].astype(np.float64) / 2**20
        return float(((xv @ w).argmax(1) == yv).mean())

    return global_q, deltas, weights, score


@pytest.mark.parametrize("seed", range(5))
def test_monte_carlo_ranks_like_exact_shapley_at_ten_trainers(seed: int) -> None:
    global_q, deltas, weights, score = _round(seed)
    u = coalition_utility(global_q, deltas, weights, score)  # type: ignore[arg-type]
    exact = exact_shapley(10, u)
    est = gtg_shapley(10, u, seed=seed, eps=1e-4)
    rho = spearmanr(exact, est.values).statistic
    assert rho >= 0.9, (rho, exact, est.values)
    assert est.evaluations < 2**10  # cheaper than the exact computation
    # the free rider earns (about) nothing; clean data outranks label noise
    assert abs(est.values[6]) <= 0.01 + 0.2 * max(abs(v) for v in est.values)
    assert min(est.values[0], est.values[1]) > max(est.values[2], est.values[3])


def test_linear_utility_prefix_fast_path_gives_the_same_estimate() -> None:
    rng = np.random.default_rng(3)
    p = rng.normal(size=12).tolist()
    w = rng.integers(1, 100, size=12).tolist()
    u = linear_utility(p, w)
    assert u(frozenset()) == 0.0
    assert u(frozenset({0, 1})) == pytest.approx(-(w[0] * p[0] + w[1] * p[1]) / (w[0] + w[1]))
    slow = gtg_shapley(12, u, seed=5, eps=1e-6)
    fast = gtg_shapley(12, u, seed=5, eps=1e-6, prefix=linear_prefix(p, w))
    assert fast.permutations == slow.permutations
    assert fast.values == pytest.approx(slow.values, abs=1e-12)
