"""Robust rules in integers: hand-computed answers, exact screening, identical bytes every time.

Every expected value below is either worked out by hand in a comment or recomputed in plain
Python ints (no numpy, no floats), so a test fails on any rounding, ordering or overflow slip.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedledger.aggregation import trimmed_mean as trimmed_mean_module
from fedledger.aggregation.base import RULES, AggregationRule, Update, get_rule
from fedledger.aggregation.clipped import ClippedFedAvg, clip, clipped_fedavg
from fedledger.aggregation.fedavg import fedavg
from fedledger.aggregation.fltrust import FLTrust, trust_scores
from fedledger.aggregation.krum import (
    Krum,
    MultiKrum,
    krum_min_updates,
    krum_scores,
    multikrum,
    multikrum_select,
)
from fedledger.aggregation.median import Median, median
from fedledger.aggregation.screen import Screen, _cosine_below, screen_updates
from fedledger.aggregation.stats import squared_norm
from fedledger.aggregation.trimmed_mean import TrimmedMean, trim_count, trimmed_mean
from fedledger.codec.blob import encode_tensors
from fedledger.errors import InvalidUpdate, SpecError

INT64 = np.iinfo(np.int64)


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def col(*values: int) -> list[dict[str, np.ndarray]]:
    """One single-coordinate delta per value: the shape order statistics are checked on."""
    return [{"w": i64(v)} for v in values]


def addr(i: int) -> str:
    return f"0x{i:040x}"


def upd(i: int, delta: dict[str, np.ndarray], num_examples: int = 10, order: int | None = None) -> Update:
    return Update(addr(i), bytes([i % 256]) * 32, num_examples, delta, order=i if order is None else order)


def as_ints(delta: dict[str, np.ndarray]) -> list[int]:
    """All coordinates of a delta as Python ints, tensors in key order."""
    return [int(x) for arr in delta.values() for x in arr.reshape(-1).tolist()]


def honest_deltas(seed: int, n: int, noise: float = 0.3) -> list[dict[str, np.ndarray]]:
    """n updates that share one direction plus independent noise (what honest trainers send)."""
    rng = np.random.default_rng(seed)
    base = {"conv": rng.normal(size=(4, 3)), "bias": rng.normal(size=5)}
    return [
        {k: np.rint((v + noise * rng.normal(size=v.shape)) * 2**16).astype(np.int64) for k, v in base.items()}
        for _ in range(n)
    ]


def scaled(delta: dict[str, np.ndarray], factor: int) -> dict[str, np.ndarray]:
    return {k: v * np.int64(factor) for k, v in delta.items()}


# ---------------------------------------------------------------- pure-Python references


def ref_median(values: list[int]) -> int:
    s, n = sorted(values), len(values)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2] + 1) // 2


def ref_trimmed(values: list[int], k: int) -> int:
    middle = sorted(values)[k : len(values) - k]
    return (2 * sum(middle) + len(middle)) // (2 * len(middle))


def ref_krum_scores(vectors: list[list[int]], f: int) -> list[int]:
    n = len(vectors)
    closest = max(1, n - f - 2)
    scores = []
    for i in range(n):
        dists = sorted(
            sum((a - b) ** 2 for a, b in zip(vectors[i], vectors[j], strict=True)) for j in range(n) if j != i
        )
        scores.append(sum(dists[:closest]))
    return scores


def ref_cosine_below(dot: int, na2: int, nb2: int, bound: Fraction) -> bool:
    """cos < b  <=>  cos*|cos| < b*|b| (x -> x|x| is strictly increasing), all in Fractions."""
    signed_cos2 = Fraction(dot * abs(dot), na2 * nb2)
    return signed_cos2 < bound * abs(bound)


# ---------------------------------------------------------------- median


def test_median_odd_count_hand_computed() -> None:
    # columns: [1, 2, 9] -> 2 ; [5, -7, 0] -> 0 ; [-3, 0, 4] -> 0 ; [7, 7, -1] -> 7
    out = median([{"w": i64(1, 5, -3, 7)}, {"w": i64(2, -7, 0, 7)}, {"w": i64(9, 0, 4, -1)}], [1, 1, 1])
    assert out["w"].dtype == np.int64
    assert out["w"].tolist() == [2, 0, 0, 7]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((1, 2), 2),  # 1.5 -> 2 (half up)
        ((-2, -1), -1),  # -1.5 -> -1 (half up, towards +inf)
        ((2, 3), 3),
        ((-3, -2), -2),
        ((-1, 0), 0),  # -0.5 -> 0
        ((0, 1), 1),  # 0.5 -> 1
        ((-5, 5), 0),
        ((4, 4), 4),
        ((1, 3), 2),  # exact mean, no rounding
        ((100, 1, 3, 2), 3),  # middle pair 2, 3 -> 2.5 -> 3
        ((-100, -1, -3, -2), -2),  # middle pair -3, -2 -> -2.5 -> -2
        ((9, -4, 7, 0, 1, 3), 2),  # middle pair 1, 3 -> 2
        ((2**62 - 1, 2**62 - 2), 2**62 - 1),  # near the quantisation limit: no wrap
        ((-(2**62) + 1, 2**62 - 1), 0),
    ],
)
def test_median_even_count_rounds_half_up(values: tuple[int, ...], expected: int) -> None:
    assert median(col(*values), [1] * len(values))["w"].tolist() == [expected]


def test_median_keeps_shapes_key_order_and_0d_tensors() -> None:
    deltas = [
        {"z": np.full((2, 3), v, dtype=np.int64), "a": np.array(10 * v, dtype=np.int64)} for v in (3, -1, 8)
    ]
    out = median(deltas, [1, 1, 1])
    assert list(out) == ["z", "a"]
    assert out["z"].shape == (2, 3) and out["z"].dtype == np.int64
    assert out["z"].tolist() == [[3] * 3] * 2
    assert out["a"].shape == () and out["a"].dtype == np.int64
    assert int(out["a"]) == 30


def test_median_ignores_weights() -> None:
    deltas = col(0, 10, 1000)
    assert median(deltas, [1, 1, 1])["w"].tolist() == [10]
    assert median(deltas, [1, 1, 10**9])["w"].tolist() == [10]  # FedAvg would give ~1000


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-1000, 1000), min_size=2, max_size=9).flatmap(
        lambda honest: st.tuples(
            st.just(honest),
            st.lists(
                st.sampled_from([2**61, -(2**61), 10**15, -(10**15)]), min_size=1, max_size=len(honest) - 1
            ),
        )
    )
)
def test_median_minority_of_huge_outliers_stays_in_honest_range(data: tuple[list[int], list[int]]) -> None:
    honest, outliers = data
    values = honest + outliers
    out = int(median(col(*values), [1] * len(values))["w"][0])
    assert min(honest) <= out <= max(honest)
    assert out == ref_median(values)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-(2**62) + 1, 2**62 - 1), min_size=1, max_size=8))
def test_median_matches_python_reference(values: list[int]) -> None:
    assert median(col(*values), [1] * len(values))["w"].tolist() == [ref_median(values)]


def test_median_even_count_does_not_wrap_at_int64_extremes() -> None:
    assert median(col(-(2**62) - 1, 2**62 + 1), [1, 1])["w"].tolist() == [0]
    assert median(col(INT64.min, INT64.max), [1, 1])["w"].tolist() == [0]


# ---------------------------------------------------------------- trimmed mean


@pytest.mark.parametrize(
    ("n", "beta", "k"),
    [
        (10, Fraction(1, 5), 2),
        (10, Fraction(1, 10), 1),
        (10, Fraction(0), 0),
        (9, Fraction(1, 5), 1),  # 1.8 -> 1
        (4, Fraction(1, 5), 0),  # 0.8 -> 0
        (100, Fraction(29, 100), 29),  # float 0.29 * 100 = 28.999999999999996: exact here
    ],
)
def test_trim_count_is_exact_floor(n: int, beta: Fraction, k: int) -> None:
    assert trim_count(n, beta) == k


# ten values per coordinate; column 0 hand-worked, column 1 sums to -15 (mean -1.5 -> -1)
TRIM_COLUMNS = [
    [-100, 0, 1, 2, 3, 4, 5, 6, 50, 1000],
    [-1, -1, -1, -1, -1, -2, -2, -2, -2, -2],
]


@pytest.mark.parametrize(
    ("beta", "expected"),
    [
        # 0.2: drop -100, 0 and 50, 1000 -> 1..6 = 21/6 = 3.5 -> 4 ; -1,-1,-1,-2,-2,-2 -> -1.5 -> -1
        (0.2, [4, -1]),
        # 0.1: drop -100 and 1000 -> 0..6, 50 = 71/8 = 8.875 -> 9 ; -12/8 = -1.5 -> -1
        (0.1, [9, -1]),
        # 0: plain unweighted mean: 971/10 = 97.1 -> 97 ; -15/10 = -1.5 -> -1
        (0.0, [97, -1]),
        (Fraction(1, 5), [4, -1]),
    ],
)
def test_trimmed_mean_hand_computed(beta: float | Fraction, expected: list[int]) -> None:
    order = [3, 9, 0, 7, 1, 8, 2, 6, 4, 5]  # shuffled so sorting is what trims
    deltas = [{"w": i64(TRIM_COLUMNS[0][j], TRIM_COLUMNS[1][j])} for j in order]
    weights = [10**6 if j == 9 else 1 for j in order]  # ignored: the 1000 would dominate FedAvg
    assert trimmed_mean(deltas, weights, beta)["w"].tolist() == expected


def test_trimmed_mean_beta_zero_is_plain_mean() -> None:
    deltas = [{"w": i64(1, -1, 2)}, {"w": i64(2, -2, 2)}, {"w": i64(2, -2, 3)}, {"w": i64(2, -1, 3)}]
    # 7/4 = 1.75 -> 2 ; -6/4 = -1.5 -> -1 ; 10/4 = 2.5 -> 3
    assert trimmed_mean(deltas, [1, 1, 1, 1], 0.0)["w"].tolist() == [2, -1, 3]
    assert trimmed_mean(deltas, [5, 1, 9, 1], 0.0)["w"].tolist() == fedavg(deltas, [1, 1, 1, 1])["w"].tolist()


@pytest.mark.parametrize("beta", [0.5, -0.1, 0.6, 1.0, Fraction(1, 2)])
def test_trimmed_mean_rejects_bad_beta(beta: float | Fraction) -> None:
    with pytest.raises(SpecError, match="trim_fraction"):
        trimmed_mean(col(1, 2, 3), [1, 1, 1], beta)
    if isinstance(beta, float):
        with pytest.raises(SpecError, match="trim_fraction"):
            TrimmedMean(trim_fraction=beta)
        with pytest.raises(SpecError, match="trim_fraction"):
            get_rule("trimmed_mean", trim_fraction=beta)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(INT64.min, INT64.max), min_size=3, max_size=3), min_size=1, max_size=10),
    st.sampled_from([Fraction(0), Fraction(1, 10), Fraction(1, 5), Fraction(1, 3), Fraction(49, 100)]),
)
def test_trimmed_mean_big_values_exact(rows: list[list[int]], beta: Fraction) -> None:
    deltas = [{"w": np.array(r, dtype=np.int64)} for r in rows]
    k = int(beta * len(rows))
    out = trimmed_mean(deltas, [1] * len(rows), beta)["w"]
    assert out.dtype == np.int64
    assert out.tolist() == [ref_trimmed([r[j] for r in rows], k) for j in range(3)]


def test_trimmed_mean_python_int_path_taken_and_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [2**62, 2**62 + 5, INT64.max, INT64.max - 1, 2**62 + 3]  # sum of kept values >> 2**63
    expected = ref_trimmed(values, 0)
    assert trimmed_mean(col(*values), [1] * 5, 0.0)["w"].tolist() == [expected]
    # int64 and Python-int paths agree on small values
    small = [7, -3, 12, 5, 0, 9]
    fast = trimmed_mean(col(*small), [1] * 6, 0.2)["w"].tolist()
    monkeypatch.setattr(trimmed_mean_module, "INT64_SAFE_BOUND", 0)
    assert trimmed_mean(col(*small), [1] * 6, 0.2)["w"].tolist() == fast == [ref_trimmed(small, 1)]


# ---------------------------------------------------------------- Krum and Multi-Krum

KRUM_VALUES = [0, 1, 3, 10, 11]
# f = 1, n = 5: each score sums the n - f - 2 = 2 smallest squared distances
#   0: 1, 9, 100, 121 -> 10   1: 1, 4, 81, 100 -> 5   3: 9, 4, 49, 64 -> 13
#  10: 100, 81, 49, 1 -> 50  11: 121, 100, 64, 1 -> 65
KRUM_SCORES = [10, 5, 13, 50, 65]


def test_krum_scores_hand_computed() -> None:
    assert krum_scores(col(*KRUM_VALUES), 1) == KRUM_SCORES
    # f = 0: three neighbours: 0 -> 1+9+100 = 110 ; 1 -> 1+4+81 = 86 ; 3 -> 4+9+49 = 62 ;
    # 10 -> 1+49+81 = 131 ; 11 -> 1+64+100 = 165
    assert krum_scores(col(*KRUM_VALUES), 0) == [110, 86, 62, 131, 165]
    # n < f + 3: one neighbour still counts
    assert krum_scores(col(0, 2, 7), 5) == [4, 4, 25]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_krum_scores_match_python_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    deltas = [
        {
            "a": rng.integers(-50, 50, (3, 2), dtype=np.int64),
            "b": rng.integers(-(2**40), 2**40, 4, dtype=np.int64),
        }
        for _ in range(7)
    ]
    vectors = [as_ints(d) for d in deltas]
    for f in range(4):
        assert krum_scores(deltas, f) == ref_krum_scores(vectors, f)


def test_krum_scores_exact_beyond_int64() -> None:
    # squared distances of ~2**62-sized values exceed int64 by far; scores must stay exact
    values = [2**62, -(2**62), 2**61, 3, -(2**61) + 7]
    assert krum_scores(col(*values), 1) == ref_krum_scores([[v] for v in values], 1)


def test_krum_picks_smallest_score() -> None:
    assert multikrum_select(col(*KRUM_VALUES), 1, 1) == [1]
    assert multikrum(col(*KRUM_VALUES), [1, 1, 1, 1, 1], byzantine=1, keep=1)["w"].tolist() == [1]


def test_krum_ties_go_to_lower_index() -> None:
    # f = 0, two neighbours: 0 -> 4+100 ; 2 -> 4+64 ; 10 -> 4+64 ; 12 -> 4+100: tie at 68
    assert krum_scores(col(0, 2, 10, 12), 0) == [104, 68, 68, 104]
    assert multikrum_select(col(0, 2, 10, 12), 0, 1) == [1]
    assert multikrum_select(col(0, 10, 2, 12), 0, 1) == [1]  # now the value 10 wins the tie
    # the rule ties on trainer address, whatever the input order
    global_model = {"w": i64(1000)}
    updates = [upd(3, {"w": i64(12)}), upd(2, {"w": i64(2)}), upd(1, {"w": i64(10)}), upd(0, {"w": i64(0)})]
    result = Krum(byzantine=0).aggregate(global_model, updates)
    assert result.model["w"].tolist() == [1010]
    assert result.used == (addr(1),)
    assert result.flagged == {}


def test_multikrum_averages_best_weighted_by_examples() -> None:
    deltas, weights = col(*KRUM_VALUES), [1, 3, 5, 7, 9]
    # keep 3: scores 5, 10, 13 -> values 1, 0, 3 with weights 3, 1, 5: (3 + 0 + 15) / 9 = 2
    assert multikrum_select(deltas, 1, 3) == [0, 1, 2]
    assert multikrum(deltas, weights, byzantine=1, keep=3)["w"].tolist() == [2]
    # keep 0 means n - f = 4: drops 11 (score 65): (0 + 3 + 15 + 70) / 16 = 5.5 -> 6
    assert multikrum_select(deltas, 1, 4) == [0, 1, 2, 3]
    assert multikrum(deltas, weights, byzantine=1, keep=0)["w"].tolist() == [6]
    assert multikrum(deltas, weights, byzantine=1, keep=0) == multikrum(deltas, weights, byzantine=1, keep=4)
    # keep larger than n is clamped to n
    assert multikrum_select(deltas, 1, 99) == [0, 1, 2, 3, 4]


def test_multikrum_rule_used_and_weights() -> None:
    global_model = {"w": i64(-50)}
    updates = [
        upd(i, {"w": i64(v)}, num_examples=w)
        for i, (v, w) in enumerate(zip(KRUM_VALUES, [1, 3, 5, 7, 9], strict=True))
    ]
    random.Random(1).shuffle(updates)
    result = MultiKrum(byzantine=1).aggregate(global_model, updates)
    assert result.model["w"].tolist() == [-50 + 6]
    assert result.used == tuple(addr(i) for i in range(4))
    result = get_rule("multikrum", byzantine=1, keep=3).aggregate(global_model, updates)
    assert result.model["w"].tolist() == [-48]
    assert result.used == (addr(0), addr(1), addr(2))
    # Krum ignores `keep`: always the single best
    assert get_rule("krum", byzantine=1, keep=3).aggregate(global_model, updates).used == (addr(1),)


@pytest.mark.parametrize("f", [0, 1, 2, 5, 10])
def test_krum_min_updates(f: int) -> None:
    assert krum_min_updates(f) == 2 * f + 3
    assert Krum(byzantine=f).min_updates == 2 * f + 3
    assert MultiKrum(byzantine=f).min_updates == 2 * f + 3


def test_krum_rejects_negative_parameters() -> None:
    with pytest.raises(SpecError):
        Krum(byzantine=-1)
    with pytest.raises(SpecError):
        MultiKrum(byzantine=1, keep=-2)


# ---------------------------------------------------------------- clipped FedAvg


def test_clip_leaves_short_deltas_unchanged() -> None:
    d = {"a": i64(3, 4), "s": np.array(0, dtype=np.int64)}  # norm 5
    for bound in (5, 6, 10**12):
        out = clip(d, bound)
        assert list(out) == ["a", "s"] and out["s"].shape == ()
        assert out["a"].tolist() == [3, 4] and out["a"].dtype == np.int64


def test_clip_hand_computed() -> None:
    # norm 5 -> bound 2: 3*2/5 = 1.2 -> 1 ; 4*2/5 = 1.6 -> 2 ; -4*2/5 = -1.6 -> -2
    assert clip({"a": i64(3, 4)}, 2)["a"].tolist() == [1, 2]
    assert clip({"a": i64(-3, -4)}, 2)["a"].tolist() == [-1, -2]
    # norm 25 -> bound 5: exact fifths; halves round up: 5*3/10 = 1.5 -> 2 (norm of (5,5,5,5) is 10)
    assert clip({"a": i64(15, 20), "b": i64(0)}, 5)["a"].tolist() == [3, 4]
    assert clip({"a": i64(5, 5, -5, -5)}, 3)["a"].tolist() == [2, 2, -1, -1]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_clip_exact_against_python_ints(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = {"a": rng.integers(-(2**40), 2**40, (6, 5), dtype=np.int64), "b": rng.integers(-(2**40), 2**40, 7)}
    xs = as_ints(d)
    norm = math.isqrt(sum(x * x for x in xs))
    bound = norm // (seed + 2)
    out = clip(d, bound)
    got = as_ints(out)
    assert got == [(2 * x * bound + norm) // (2 * norm) for x in xs]
    clipped_norm = math.sqrt(sum(x * x for x in got))
    slack = 1 + math.sqrt(len(xs)) / 2
    assert bound - slack <= clipped_norm <= bound + slack


def test_clipped_fedavg_bound_zero_uses_lower_median_norm() -> None:
    # norms 5, 10, 50 -> lower median 10: [3,4] and [6,8] kept, [30,40] -> [6,8]
    # mean: (3+6+6)/3 = 5 ; (4+8+8)/3 = 6.67 -> 7
    deltas = [{"w": i64(3, 4)}, {"w": i64(30, 40)}, {"w": i64(6, 8)}]
    assert clipped_fedavg(deltas, [1, 1, 1])["w"].tolist() == [5, 7]
    # even count: lower median of norms 5, 10, 50, 100 is 10 (not 30)
    deltas.append({"w": i64(60, 80)})
    # clipped: [3,4], [6,8], [6,8], [6,8]; weights 1,1,1,1: 21/4 = 5.25 -> 5 ; 28/4 = 7
    assert clipped_fedavg(deltas, [1, 1, 1, 1])["w"].tolist() == [5, 7]
    # an explicit bound overrides: bound 5 -> all [3,4]
    assert clipped_fedavg(deltas, [1, 2, 3, 4], bound_q=5)["w"].tolist() == [3, 4]


def test_clipped_fedavg_rule() -> None:
    global_model = {"w": i64(100, 100)}
    deltas = [i64(3, 4), i64(30, 40), i64(6, 8)]
    updates = [
        upd(i, {"w": d}, num_examples=n) for i, (d, n) in enumerate(zip(deltas, [2, 1, 1], strict=True))
    ]
    # clipped to 10: [3,4] w2, [6,8] w1, [6,8] w1 -> (6+6+6)/4 = 4.5 -> 5 ; (8+8+8)/4 = 6
    result = ClippedFedAvg().aggregate(global_model, updates)
    assert result.model["w"].tolist() == [105, 106]
    assert result.used == (addr(0), addr(1), addr(2)) and result.flagged == {}


# ---------------------------------------------------------------- FLTrust


def test_trust_scores_hand_computed() -> None:
    root = {"w": i64(3, 4)}  # norm 5
    deltas = [
        {"w": i64(6, 8)},  # cos 1 -> 2**20
        {"w": i64(4, 3)},  # cos 24/25 -> floor(0.96 * 2**20) = 1006632
        {"w": i64(-3, -4)},  # cos -1 -> 0
        {"w": i64(-4, 3)},  # cos 0 (orthogonal) -> 0
        {"w": i64(0, 0)},  # zero update -> 0
        {"w": i64(5, -12)},  # cos (15 - 48) / 65 < 0 -> 0
    ]
    assert trust_scores(deltas, root) == [2**20, 1006632, 0, 0, 0, 0]
    assert trust_scores(deltas, {"w": i64(0, 0)}) == [0] * 6  # zero root trusts nobody


def test_fltrust_rule_hand_computed() -> None:
    root_trainer = addr(7)
    global_model = {"w": i64(10, 20)}
    updates = [
        upd(7, {"w": i64(3, 4)}),  # the root update, norm 5
        upd(1, {"w": i64(6, 8)}),  # trust 2**20, rescaled to [3, 4]
        upd(2, {"w": i64(-3, -4)}),  # trust 0: not used
        upd(3, {"w": i64(0, 5)}),  # trust floor(0.8 * 2**20) = 838860, already norm 5
    ]
    # (3 * 1048576) / 1887436 = 1.67 -> 2 ; (4 * 1048576 + 5 * 838860) / 1887436 = 4.44 -> 4
    result = FLTrust(root_trainer=root_trainer.upper().replace("0X", "0x")).aggregate(global_model, updates)
    assert result.model["w"].tolist() == [12, 24]
    assert result.used == (addr(1), addr(3))
    assert root_trainer not in result.used
    assert result.flagged == {}


def test_fltrust_without_root_changes_nothing() -> None:
    global_model = {"w": i64(10, 20)}
    updates = [upd(1, {"w": i64(6, 8)}), upd(3, {"w": i64(0, 5)})]
    for rule in (FLTrust(root_trainer=addr(7)), FLTrust()):
        result = rule.aggregate(global_model, updates)
        assert result.model["w"].tolist() == [10, 20] and result.model["w"].dtype == np.int64
        assert result.used == () and result.flagged == {}
    # only the root: nobody to aggregate
    result = FLTrust(root_trainer=addr(1)).aggregate(global_model, updates[:1])
    assert result.model["w"].tolist() == [10, 20] and result.used == ()
    # nobody earns trust: unchanged, nobody used
    result = FLTrust(root_trainer=addr(1)).aggregate(global_model, [updates[0], upd(4, {"w": i64(-6, -8)})])
    assert result.model["w"].tolist() == [10, 20] and result.used == ()


# ---------------------------------------------------------------- screening


@pytest.mark.parametrize(
    ("dot", "na2", "nb2", "bound", "expected"),
    [
        (3, 25, 1, Fraction(3, 5), False),  # cos 0.6 exactly: not below 0.6
        (3, 25, 1, Fraction(7, 10), True),
        (-3, 25, 1, Fraction(-3, 5), False),  # cos -0.6 exactly: not below -0.6
        (-4, 25, 1, Fraction(-3, 5), True),  # -0.8 < -0.6
        (-2, 25, 1, Fraction(-3, 5), False),  # -0.4 > -0.6
        (0, 4, 9, Fraction(0), False),
        (-1, 4, 9, Fraction(0), True),
        (1, 4, 9, Fraction(0), False),
        (1, 4, 9, Fraction(-1, 2), False),
        (-1, 4, 9, Fraction(-1, 2), False),  # -1/6 > -1/2
        (-5, 4, 9, Fraction(-1, 2), True),  # -5/6 < -1/2
        (-3, 4, 9, Fraction(-1, 2), False),  # -1/2 exactly
        (3, 4, 9, Fraction(1, 2), False),  # 1/2 exactly
        (1, 2, 1, Fraction(7, 10), False),  # 0.7071 > 0.7
        (1, 2, 1, Fraction(71, 100), True),  # 0.7071 < 0.71
        (-1, 2, 1, Fraction(-7, 10), True),  # -0.7071 < -0.7
        (-1, 2, 1, Fraction(-71, 100), False),  # -0.7071 > -0.71
        (-6, 4, 9, Fraction(-1), False),  # cos -1 is not below -1
        (6, 4, 9, Fraction(1), False),
        (5, 4, 9, Fraction(1), True),
    ],
)
def test_cosine_below_hand_cases(dot: int, na2: int, nb2: int, bound: Fraction, expected: bool) -> None:
    assert ref_cosine_below(dot, na2, nb2, bound) is expected
    assert _cosine_below(dot, na2, nb2, bound) is expected


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(-20, 20), min_size=3, max_size=3),
    st.lists(st.integers(-20, 20), min_size=3, max_size=3),
    st.fractions(min_value=-1, max_value=1, max_denominator=50),
)
def test_cosine_below_matches_fractions(a: list[int], b: list[int], bound: Fraction) -> None:
    na2, nb2 = sum(x * x for x in a), sum(x * x for x in b)
    if na2 == 0 or nb2 == 0:
        return
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    assert _cosine_below(dot, na2, nb2, bound) == ref_cosine_below(dot, na2, nb2, bound)


def test_screen_flags_empty_updates() -> None:
    ds = honest_deltas(0, 5)
    updates = [upd(i, d) for i, d in enumerate(ds)]
    updates.append(upd(9, {k: np.zeros_like(v) for k, v in ds[0].items()}))
    for screen in (Screen(), Screen(None, None)):
        flagged = screen_updates(updates, median([u.delta for u in updates], [1] * 6), screen)
        assert set(flagged) == {addr(9)}
        assert "empty update" in flagged[addr(9)]


def test_screen_flags_later_copy_not_original() -> None:
    ds = honest_deltas(1, 5)
    copied = {k: v.copy() for k, v in ds[3].items()}
    # the original (address 8) was committed first; the copy has the lower address
    updates = [upd(i, d, order=10 + i) for i, d in enumerate(ds[:3])]
    updates += [upd(8, ds[3], order=2), upd(1 + 0x10, copied, order=40), upd(0x20, copied, order=41)]
    reference = median([u.delta for u in updates], [1] * len(updates))
    for screen in (Screen(), Screen(None, None)):
        flagged = screen_updates(updates, reference, screen)
        assert set(flagged) == {addr(0x11), addr(0x20)}
        assert all(addr(8) in reason and "identical" in reason for reason in flagged.values())
    # equal commit order: the lower address counts as first
    same_order = [upd(5, ds[0], order=3), upd(4, {k: v.copy() for k, v in ds[0].items()}, order=3)]
    assert set(screen_updates(same_order, ds[0], Screen())) == {addr(5)}


def test_screen_flags_sign_flipped_update() -> None:
    ds = honest_deltas(2, 8)
    attacker = scaled(ds[0], -1)
    updates = [upd(i, d) for i, d in enumerate(ds)] + [upd(50, attacker)]
    reference = median([u.delta for u in updates], [1] * len(updates))
    flagged = screen_updates(updates, reference, Screen(min_cosine=Fraction(0), max_norm_ratio=None))
    assert set(flagged) == {addr(50)}
    assert "points away" in flagged[addr(50)]
    assert screen_updates(updates, reference, Screen(min_cosine=None, max_norm_ratio=Fraction(5))) == {}


def test_screen_flags_ten_times_longer_update() -> None:
    ds = honest_deltas(3, 8)
    updates = [upd(i, d) for i, d in enumerate(ds)] + [upd(50, scaled(ds[2], 10))]
    reference = median([u.delta for u in updates], [1] * len(updates))
    flagged = screen_updates(updates, reference, Screen(min_cosine=None, max_norm_ratio=Fraction(5)))
    assert set(flagged) == {addr(50)}
    assert "norm" in flagged[addr(50)]
    # same direction: the cosine test alone does not flag it
    assert screen_updates(updates, reference, Screen(min_cosine=Fraction(0), max_norm_ratio=None)) == {}
    # a bound above the ratio lets it through
    assert screen_updates(updates, reference, Screen(min_cosine=None, max_norm_ratio=Fraction(12))) == {}


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_screen_does_not_flag_honest_updates(seed: int) -> None:
    ds = honest_deltas(100 + seed, 10, noise=0.5)
    updates = [upd(i, d) for i, d in enumerate(ds)]
    for combine in (median, trimmed_mean):
        reference = combine([u.delta for u in updates], [1] * 10)
        assert screen_updates(updates, reference, Screen()) == {}


def test_screen_thresholds_none_disable_tests() -> None:
    ds = honest_deltas(4, 6)
    updates = [upd(i, d) for i, d in enumerate(ds)]
    updates += [upd(50, scaled(ds[0], -1)), upd(51, scaled(ds[1], 10))]
    reference = median([u.delta for u in updates], [1] * len(updates))
    assert set(screen_updates(updates, reference, Screen())) == {addr(50), addr(51)}
    assert set(screen_updates(updates, reference, Screen(None, Fraction(5)))) == {addr(51)}
    assert set(screen_updates(updates, reference, Screen(Fraction(0), None))) == {addr(50)}
    assert screen_updates(updates, reference, Screen(None, None)) == {}


def test_screened_median_reaggregates_without_flagged() -> None:
    ds = honest_deltas(5, 6)
    global_model = {k: np.full_like(v, 7) for k, v in ds[0].items()}
    updates = [upd(i, d) for i, d in enumerate(ds)] + [upd(50, scaled(ds[0], -3)), upd(51, scaled(ds[1], 20))]
    result = Median(screen=Screen()).aggregate(global_model, updates)
    assert set(result.flagged) == {addr(50), addr(51)}
    assert result.used == tuple(addr(i) for i in range(6))
    expected = median(ds, [1] * 6)
    assert encode_tensors(result.model) == encode_tensors(
        {k: global_model[k] + v for k, v in expected.items()}
    )
    # without a screen nothing is flagged and every update counts
    plain = Median().aggregate(global_model, updates)
    assert plain.flagged == {} and len(plain.used) == 8


# ---------------------------------------------------------------- every rule

RULE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("fedavg", {}),
    ("median", {}),
    ("median", {"screen": Screen()}),
    ("trimmed_mean", {"trim_fraction": 0.2}),
    ("trimmed_mean", {"trim_fraction": 0.1, "screen": Screen()}),
    ("krum", {"byzantine": 2}),
    ("krum", {"byzantine": 2, "screen": Screen()}),
    ("multikrum", {"byzantine": 2}),
    ("multikrum", {"byzantine": 2, "keep": 4, "screen": Screen()}),
    ("clipped_fedavg", {}),
    ("clipped_fedavg", {"clip_norm_q": 2**17, "screen": Screen()}),
    ("fltrust", {"root_trainer": addr(0)}),
    ("fltrust", {"root_trainer": addr(0), "screen": Screen()}),
]
CASE_IDS = [f"{name}{'-screened' if 'screen' in kw else ''}-{i}" for i, (name, kw) in enumerate(RULE_CASES)]


def round_updates(seed: int) -> tuple[dict[str, np.ndarray], list[Update]]:
    """Nine honest updates, a sign-flipped one and a scaled one, with varied example counts."""
    ds = honest_deltas(seed, 9)
    rng = np.random.default_rng(seed + 1000)
    global_model = {k: rng.integers(-(2**30), 2**30, v.shape, dtype=np.int64) for k, v in ds[0].items()}
    ds += [scaled(ds[1], -2), scaled(ds[2], 15)]
    counts = rng.integers(1, 500, len(ds)).tolist()
    updates = [
        upd(i, d, num_examples=n, order=(7 * i) % 11) for i, (d, n) in enumerate(zip(ds, counts, strict=True))
    ]
    return global_model, updates


def test_registry_has_every_robust_rule() -> None:
    get_rule("fedavg")
    expected = {"median": Median, "trimmed_mean": TrimmedMean, "krum": Krum, "multikrum": MultiKrum}
    expected |= {"clipped_fedavg": ClippedFedAvg, "fltrust": FLTrust}
    for name, cls in expected.items():
        assert RULES[name] is cls
        assert isinstance(get_rule(name), AggregationRule)


@pytest.mark.parametrize(("name", "kwargs"), RULE_CASES, ids=CASE_IDS)
def test_input_order_does_not_change_result(name: str, kwargs: dict[str, Any]) -> None:
    global_model, updates = round_updates(7)
    rule = get_rule(name, **kwargs)
    first = rule.aggregate(global_model, updates)
    assert first.model["conv"].dtype == np.int64
    for seed in range(3):
        shuffled = list(updates)
        random.Random(seed).shuffle(shuffled)
        again = rule.aggregate(global_model, shuffled)
        assert encode_tensors(again.model) == encode_tensors(first.model)
        assert again.used == first.used and dict(again.flagged) == dict(first.flagged)
    reverse = rule.aggregate(global_model, updates[::-1])
    assert encode_tensors(reverse.model) == encode_tensors(first.model)


@pytest.mark.parametrize(("name", "kwargs"), RULE_CASES, ids=CASE_IDS)
def test_independent_runs_give_identical_bytes(name: str, kwargs: dict[str, Any]) -> None:
    g1, u1 = round_updates(11)
    g2, u2 = round_updates(11)
    first = get_rule(name, **kwargs).aggregate(g1, u1)
    second = get_rule(name, **kwargs).aggregate(g2, u2)
    assert encode_tensors(first.model) == encode_tensors(second.model)
    assert first.used == second.used and dict(first.flagged) == dict(second.flagged)
    # the inputs are untouched
    assert all(encode_tensors(a.delta) == encode_tensors(b.delta) for a, b in zip(u1, u2, strict=True))


@pytest.mark.parametrize(("name", "kwargs"), RULE_CASES, ids=CASE_IDS)
def test_screened_rules_flag_attackers_only(name: str, kwargs: dict[str, Any]) -> None:
    global_model, updates = round_updates(3)
    result = get_rule(name, **kwargs).aggregate(global_model, updates)
    attackers = {addr(9), addr(10)}
    if "screen" in kwargs:
        assert set(result.flagged) == attackers
        assert not attackers & set(result.used)
    else:
        assert result.flagged == {}
    if name == "fltrust":
        assert addr(0) not in result.used


@pytest.mark.parametrize(("name", "kwargs"), RULE_CASES, ids=CASE_IDS)
def test_duplicate_trainers_rejected(name: str, kwargs: dict[str, Any]) -> None:
    global_model, updates = round_updates(5)
    rule = get_rule(name, **kwargs)
    dup = Update(updates[3].trainer, b"\xff" * 32, 5, updates[4].delta, order=99)
    with pytest.raises(InvalidUpdate, match="more than one update"):
        rule.aggregate(global_model, [*updates, dup])
    upper = updates[10].trainer.upper().replace("0X", "0x")  # ...0a -> ...0A
    assert upper != updates[10].trainer
    case_dup = Update(upper, b"\xfe" * 32, 5, updates[4].delta, order=98)
    with pytest.raises(InvalidUpdate, match="more than one update"):
        rule.aggregate(global_model, [case_dup, *updates])
    with pytest.raises(InvalidUpdate, match="no updates"):
        rule.aggregate(global_model, [])


def test_norms_used_by_screen_are_exact() -> None:
    # a guard for the helpers the screen relies on: exact beyond int64
    d = {"w": i64(2**40, -(2**40), 3)}
    assert squared_norm(d) == 2 * 2**80 + 9
