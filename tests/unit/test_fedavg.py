"""FedAvg in integers: hand-checked answers, defined rounding, identical bytes every time."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedledger.aggregation import fedavg as fedavg_module
from fedledger.aggregation.base import RULES, AggregationRule, Update, apply_delta, get_rule
from fedledger.aggregation.fedavg import FedAvg, fedavg
from fedledger.codec.blob import encode_tensors
from fedledger.errors import InvalidUpdate, SpecError


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_hand_computed_weighted_mean() -> None:
    # weights 1 and 3: (1*4 + 3*8) / 4 = 7 exactly; (1*(-4) + 3*(-1)) / 4 = -1.75 -> -2
    out = fedavg([{"w": i64(4, -4)}, {"w": i64(8, -1)}], [1, 3])
    assert out["w"].dtype == np.int64
    assert out["w"].tolist() == [7, -2]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (2, 3, 3),  # 2.5 -> 3 (half up)
        (-2, -3, -2),  # -2.5 -> -2 (half up, towards +inf)
        (0, 1, 1),  # 0.5 -> 1
        (-1, 0, 0),  # -0.5 -> 0
        (1, 2, 2),  # 1.5 -> 2 (not to even)
        (-5, 5, 0),
    ],
)
def test_half_rounds_up(a: int, b: int, expected: int) -> None:
    assert fedavg([{"w": i64(a)}, {"w": i64(b)}], [1, 1])["w"].tolist() == [expected]


def test_thirds_round_to_nearest() -> None:
    # (1 + 1 + 2) / 3 = 1.33 -> 1 ; (2 + 2 + 1) / 3 = 1.67 -> 2 ; (-1-1-2)/3 = -1.33 -> -1
    out = fedavg([{"w": i64(1, 2, -1)}, {"w": i64(1, 2, -1)}, {"w": i64(2, 1, -2)}], [1, 1, 1])
    assert out["w"].tolist() == [1, 2, -1]


def test_shapes_and_key_order_kept() -> None:
    d = {"z": np.ones((2, 3), dtype=np.int64), "a": np.array(5, dtype=np.int64)}
    out = fedavg([d, d], [2, 5])
    assert list(out) == ["z", "a"]
    assert out["z"].shape == (2, 3) and out["a"].shape == ()
    assert out["a"].tolist() == 5


def _random_deltas(seed: int, n: int, size: int, magnitude: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "conv.weight": rng.integers(-magnitude, magnitude, (size, 3), dtype=np.int64),
            "bias": rng.integers(-magnitude, magnitude, size, dtype=np.int64),
        }
        for _ in range(n)
    ]


def test_two_independent_aggregations_give_identical_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    global_model = _random_deltas(99, 1, 50, 2**30)[0]
    deltas = _random_deltas(1, 7, 50, 2**20)
    updates = [
        Update(f"0x{i:040x}", bytes([i]) * 32, num_examples=10 + 3 * i, delta=d) for i, d in enumerate(deltas)
    ]
    first = encode_tensors(FedAvg().aggregate(global_model, updates).model)

    shuffled = list(updates)
    random.Random(5).shuffle(shuffled)
    assert shuffled != updates
    monkeypatch.setattr(fedavg_module, "INT64_SAFE_BOUND", 0)  # force the Python-int path
    second = encode_tensors(get_rule("fedavg").aggregate(global_model, shuffled).model)
    assert first == second


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 10**6),
            st.lists(st.integers(-(2**40), 2**40), min_size=4, max_size=4),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_int64_and_bigint_paths_agree(rows: list[tuple[int, list[int]]]) -> None:
    weights = [w for w, _ in rows]
    arrays = [np.array(v, dtype=np.int64) for _, v in rows]
    total = sum(weights)
    fast = fedavg_module._mean_int64(arrays, weights, total)
    slow = fedavg_module._mean_bigint(arrays, weights, total)
    assert fast.dtype == slow.dtype == np.int64
    assert fast.tolist() == slow.tolist()
    # and both equal the definition, in plain Python ints
    for j in range(4):
        s = sum(w * v[j] for w, v in rows)
        assert fast[j] == (2 * s + total) // (2 * total)


def test_overflow_falls_back_instead_of_wrapping() -> None:
    big = 2**62
    out = fedavg([{"w": i64(big, -big)}, {"w": i64(big, -big)}], [3, 1])
    assert out["w"].tolist() == [big, -big]  # 4 * 2**62 would wrap in int64
    extreme = np.iinfo(np.int64)
    out = fedavg([{"w": i64(extreme.max, extreme.min)}] * 2, [2**40, 2**40])
    assert out["w"].tolist() == [extreme.max, extreme.min]


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(st.integers(1, 1000), st.lists(st.integers(-(10**9), 10**9), min_size=3, max_size=3)),
        min_size=1,
        max_size=8,
    )
)
def test_within_one_unit_of_float_mean(rows: list[tuple[int, list[int]]]) -> None:
    weights = [w for w, _ in rows]
    out = fedavg([{"w": np.array(v, dtype=np.int64)} for _, v in rows], weights)["w"]
    mean = np.average(np.array([v for _, v in rows], dtype=np.float64), axis=0, weights=weights)
    assert np.all(np.abs(out.astype(np.float64) - mean) <= 1.0)


def test_fedavg_rule_applies_delta() -> None:
    global_model = {"w": i64(100, 200)}
    updates = [
        Update("0xB", b"\x02" * 32, 1, {"w": i64(2, -3)}),
        Update("0xa", b"\x01" * 32, 1, {"w": i64(3, -2)}),
    ]
    assert FedAvg().aggregate(global_model, updates).model["w"].tolist() == [103, 198]


@pytest.mark.parametrize(
    ("deltas", "weights", "match"),
    [
        ([], [], "no updates"),
        ([{"w": i64(1)}], [1, 2], "1 deltas but 2 weights"),
        ([{"w": i64(1)}], [-1], "weight 0 is -1"),
        ([{"w": i64(1)}], [True], "weight 0 is True"),
        ([{"w": i64(1)}], [0], "sum to 0"),
        ([{"w": i64(1)}, {"v": i64(1)}], [1, 1], r"delta 1: missing tensors \['w'\]"),
        ([{"w": i64(1)}, {"w": i64(1, 2)}], [1, 1], r"shape \(2,\) != expected \(1,\)"),
        ([{"w": i64(1)}, {"w": np.ones(1)}], [1, 1], "dtype float64 is not int64"),
    ],
)
def test_fedavg_rejects(deltas: list[dict[str, np.ndarray]], weights: list[int], match: str) -> None:
    with pytest.raises(InvalidUpdate, match=match):
        fedavg(deltas, weights)


def test_rule_rejects_duplicates_and_empty() -> None:
    g = {"w": i64(0)}
    with pytest.raises(InvalidUpdate, match="more than one update"):
        FedAvg().aggregate(g, [Update("0xA", b"", 1, g), Update("0xa", b"", 1, g)])
    with pytest.raises(InvalidUpdate, match="no updates"):
        FedAvg().aggregate(g, [])


def test_apply_delta_checks_overflow() -> None:
    top = np.iinfo(np.int64).max
    assert apply_delta({"w": i64(top - 1, -5)}, {"w": i64(1, 5)})["w"].tolist() == [top, 0]
    with pytest.raises(InvalidUpdate, match="tensor 'w': global \\+ delta overflows int64"):
        apply_delta({"w": i64(top)}, {"w": i64(1)})
    with pytest.raises(InvalidUpdate, match="overflows"):
        apply_delta({"w": i64(-top)}, {"w": i64(-2)})
    with pytest.raises(InvalidUpdate, match="overflows"):
        apply_delta({"s": np.array(top, dtype=np.int64)}, {"s": np.array(1, dtype=np.int64)})


def test_registry() -> None:
    assert RULES["fedavg"] is FedAvg
    assert isinstance(get_rule("fedavg"), AggregationRule)
    with pytest.raises(SpecError, match="unknown rule 'bulyan' \\(known: clipped_fedavg, fedavg, fltrust"):
        get_rule("bulyan")
    with pytest.raises(SpecError, match="bad parameters"):
        get_rule("fedavg", trim=0.1)
