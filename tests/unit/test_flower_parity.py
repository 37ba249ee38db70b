"""Parity with Flower's own robust aggregates on identical inputs, up to our final rounding.

Flower gets the exact float64 values our quantised ints stand for (q / 2**20, exact in
float64), so the only difference left is that we round the result to the nearest
quantisation step: at most half a step, and never more than one. Our rules aggregate deltas
against one global model; Flower's functions take full weights, and feeding them the deltas
is the same computation (every rule here commutes with adding a common offset).
"""

from __future__ import annotations

from typing import Any

import flwr.server.strategy.aggregate as flower
import numpy as np
import pytest

from fedledger.aggregation.base import Update, get_rule
from fedledger.aggregation.krum import multikrum, multikrum_select
from fedledger.aggregation.median import median
from fedledger.aggregation.trimmed_mean import trimmed_mean
from fedledger.codec.fixedpoint import dequantize, quantize

SCALE_BITS = 20
STEP = 2.0**-SCALE_BITS
SHAPES = {"conv.weight": (5, 3), "bias": (4,), "scale": ()}
N_TRAINERS = 10
BYZANTINE = 2
SEEDS = [0, 1, 2, 3, 4, 5]


def quantised_round(seed: int, attackers: int = 0) -> tuple[list[dict[str, np.ndarray]], list[int]]:
    """N_TRAINERS float updates quantised at 2**-20; the last `attackers` are far-off outliers."""
    rng = np.random.default_rng(seed)
    direction = {k: rng.normal(0.0, 0.05, s) for k, s in SHAPES.items()}
    floats = []
    for i in range(N_TRAINERS):
        update = {k: d + rng.normal(0.0, 0.02, d.shape) for k, d in direction.items()}
        if i >= N_TRAINERS - attackers:
            update = {k: -4.0 * v + rng.normal(0.0, 0.5, v.shape) for k, v in update.items()}
        floats.append({k: v.astype(np.float32) for k, v in update.items()})
    # np.asarray: quantize hands back a NumPy scalar, not a 0-d array, for a 0-d tensor (see
    # test_quantised_0d_tensor_is_an_array); the rules rightly insist on ndarrays.
    deltas = [{k: np.asarray(v) for k, v in quantize(f, SCALE_BITS).items()} for f in floats]
    weights = rng.integers(10, 500, N_TRAINERS).tolist()
    return deltas, weights


def exact_floats(delta: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The float64 values the ints represent, exactly, as Flower's NDArrays."""
    return [arr.astype(np.float64) * STEP for arr in delta.values()]


def flower_results(
    deltas: list[dict[str, np.ndarray]], weights: list[int]
) -> list[tuple[list[np.ndarray], int]]:
    return [(exact_floats(d), w) for d, w in zip(deltas, weights, strict=True)]


def assert_close(ours: dict[str, np.ndarray], theirs: list[np.ndarray], max_steps: float) -> None:
    """Ours (int64) is within `max_steps` quantisation steps of Flower's float result, per element."""
    assert len(ours) == len(theirs)
    dequantised = dequantize(ours, SCALE_BITS)
    for (name, q), dq, ref in zip(ours.items(), dequantised.values(), theirs, strict=True):
        assert q.dtype == np.int64 and q.shape == np.shape(ref) == SHAPES[name]
        # dequantised (float32, as evaluation sees it): within one step
        assert np.max(np.abs(dq.astype(np.float64) - ref), initial=0.0) <= STEP
        # in steps, exactly: |q - ref * 2**20| <= max_steps (ref * 2**20 is exact in float64)
        assert np.max(np.abs(q.astype(np.float64) - ref / STEP), initial=0.0) <= max_steps + 1e-6


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [N_TRAINERS, N_TRAINERS - 1])
def test_median_matches_flower(seed: int, n: int) -> None:
    deltas, weights = quantised_round(seed, attackers=3)
    deltas, weights = deltas[:n], weights[:n]
    ours = median(deltas, weights)
    theirs = flower.aggregate_median(flower_results(deltas, weights))
    assert_close(ours, theirs, max_steps=0.5)
    if n % 2:  # an odd count has a member as its median: no rounding at all
        assert_close(ours, theirs, max_steps=0.0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("beta", [0.1, 0.2])
def test_trimmed_mean_matches_flower(seed: int, beta: float) -> None:
    deltas, weights = quantised_round(seed, attackers=2)
    ours = trimmed_mean(deltas, weights, beta)
    theirs = flower.aggregate_trimmed_avg(flower_results(deltas, weights), proportiontocut=beta)
    assert_close(ours, theirs, max_steps=0.5)


def flower_krum_selection(
    results: list[tuple[list[np.ndarray], int]], to_keep: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[np.ndarray], list[int]]:
    """Flower's Krum/Multi-Krum output and the indices of the results it chose (ascending).

    Krum returns the chosen weights object itself; Multi-Krum averages its choice through the
    module's `aggregate`, which a spy records on the way.
    """
    chosen: list[list[tuple[list[np.ndarray], int]]] = []
    original = flower.aggregate

    def spy(best: list[tuple[list[np.ndarray], int]]) -> Any:
        chosen.append(list(best))
        return original(best)

    monkeypatch.setattr(flower, "aggregate", spy)
    out = flower.aggregate_krum(results, num_malicious=BYZANTINE, to_keep=to_keep)
    if to_keep == 0:
        assert chosen == []
        return out, [i for i, (w, _) in enumerate(results) if w is out]
    assert len(chosen) == 1
    return out, sorted(i for i, r in enumerate(results) if any(r is c for c in chosen[0]))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("attackers", [0, BYZANTINE])
def test_krum_matches_flower(seed: int, attackers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    deltas, weights = quantised_round(seed, attackers=attackers)
    results = flower_results(deltas, weights)
    theirs, their_choice = flower_krum_selection(results, 0, monkeypatch)
    ours_choice = multikrum_select(deltas, BYZANTINE, 1)
    assert len(their_choice) == 1 and ours_choice == their_choice
    assert ours_choice[0] < N_TRAINERS - attackers  # an honest update was chosen
    ours = multikrum(deltas, weights, byzantine=BYZANTINE, keep=1)
    assert_close(ours, theirs, max_steps=0.0)  # Krum returns the chosen delta itself
    for name, q in ours.items():
        assert np.array_equal(q, deltas[ours_choice[0]][name])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("keep", [3, 5, 8])
def test_multikrum_matches_flower(seed: int, keep: int, monkeypatch: pytest.MonkeyPatch) -> None:
    deltas, weights = quantised_round(seed, attackers=BYZANTINE)
    results = flower_results(deltas, weights)
    theirs, their_choice = flower_krum_selection(results, keep, monkeypatch)
    ours_choice = multikrum_select(deltas, BYZANTINE, keep)
    assert len(their_choice) == keep and ours_choice == their_choice
    assert max(ours_choice) < N_TRAINERS - BYZANTINE  # no attacker among the chosen
    # Flower averages the chosen weighted by num_examples, in floats; we round once at the end
    assert_close(multikrum(deltas, weights, byzantine=BYZANTINE, keep=keep), theirs, max_steps=0.5)


@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize(("rule", "keep"), [("krum", 1), ("multikrum", 5), ("multikrum", 0)])
def test_krum_rules_use_the_trainers_flower_selects(
    seed: int, rule: str, keep: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    deltas, weights = quantised_round(seed, attackers=BYZANTINE)
    trainers = [f"0x{i + 1:040x}" for i in range(N_TRAINERS)]  # address order = input order
    global_model = {k: np.zeros(s, dtype=np.int64) for k, s in SHAPES.items()}
    updates = [
        Update(t, bytes(32), w, d, order=i)
        for i, (t, d, w) in enumerate(zip(trainers, deltas, weights, strict=True))
    ]
    result = get_rule(rule, byzantine=BYZANTINE, keep=keep).aggregate(global_model, updates[::-1])
    to_keep = 0 if rule == "krum" else keep or N_TRAINERS - BYZANTINE
    theirs, their_choice = flower_krum_selection(flower_results(deltas, weights), to_keep, monkeypatch)
    assert result.used == tuple(trainers[i] for i in their_choice)
    assert result.flagged == {}
    assert_close(result.model, theirs, max_steps=0.0 if rule == "krum" else 0.5)


def test_quantised_0d_tensor_is_an_array() -> None:
    deltas = [quantize({"scale": np.array(x, dtype=np.float32)}, SCALE_BITS) for x in (0.5, 0.25, 1.0)]
    assert all(isinstance(d["scale"], np.ndarray) for d in deltas)
    assert int(median(deltas, [1, 1, 1])["scale"]) == 2**19
