"""Update validation: every rejection reason, and an exact (float-free) norm bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedledger.aggregation.validate import l2_norm_q, validate_update
from fedledger.errors import InvalidUpdate, SpecError

REFERENCE = {
    "conv1.weight": np.zeros((16, 1, 3, 3), dtype=np.int64),
    "conv1.bias": np.zeros(16, dtype=np.int64),
}


def delta(fill: int = 1) -> dict[str, np.ndarray]:
    return {name: np.full(ref.shape, fill, dtype=np.int64) for name, ref in REFERENCE.items()}


def test_valid_update_passes() -> None:
    validate_update(delta(), REFERENCE, max_norm_q=1000)


def test_missing_tensor() -> None:
    d = delta()
    del d["conv1.bias"]
    with pytest.raises(InvalidUpdate, match=r"missing tensors \['conv1.bias'\]"):
        validate_update(d, REFERENCE, 1000)


def test_extra_tensor() -> None:
    d = {**delta(), "fc.weight": np.zeros(3, dtype=np.int64)}
    with pytest.raises(InvalidUpdate, match=r"unexpected tensors \['fc.weight'\]"):
        validate_update(d, REFERENCE, 1000)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint64])
def test_wrong_dtype(dtype: type) -> None:
    d = delta()
    d["conv1.bias"] = d["conv1.bias"].astype(dtype)
    with pytest.raises(InvalidUpdate, match=r"tensor 'conv1\.bias': dtype .* is not int64"):
        validate_update(d, REFERENCE, 1000)


def test_not_an_array() -> None:
    d: dict[str, object] = {**delta(), "conv1.bias": [1] * 16}
    with pytest.raises(InvalidUpdate, match="dtype list is not int64"):
        validate_update(d, REFERENCE, 1000)  # type: ignore[arg-type]


def test_wrong_shape() -> None:
    d = delta()
    d["conv1.weight"] = np.zeros((16, 1, 5, 5), dtype=np.int64)
    with pytest.raises(InvalidUpdate, match=r"tensor 'conv1.weight': shape \(16, 1, 5, 5\) != expected"):
        validate_update(d, REFERENCE, 1000)


def test_norm_bound_is_exact_at_the_boundary() -> None:
    # 160 elements of 3 (weight 144 + bias 16): sum of squares 1440 -> bound sqrt(1440) = 37.9
    d = delta(3)
    assert l2_norm_q(d) == math.isqrt(1440) == 37
    with pytest.raises(InvalidUpdate, match="L2 norm 37 exceeds the bound 37"):
        validate_update(d, REFERENCE, 37)  # 37**2 = 1369 < 1440
    validate_update(d, REFERENCE, 38)  # 38**2 = 1444 >= 1440


def test_exact_where_float_would_be_wrong() -> None:
    # sum of squares = bound**2 + 1 with bound ~ 2**31: float64 sqrt would round to the bound
    bound = 2**31 + 12345
    ref = {"a": np.zeros(2, dtype=np.int64)}
    d = {"a": np.array([bound, 1], dtype=np.int64)}
    assert math.sqrt(float(bound**2 + 1)) == float(bound)  # float cannot see the excess
    with pytest.raises(InvalidUpdate, match="L2 norm"):
        validate_update(d, ref, bound)
    validate_update({"a": np.array([bound, 0], dtype=np.int64)}, ref, bound)


def test_single_large_element_rejected_first() -> None:
    d = delta()
    d["conv1.bias"][3] = -(2**63)  # would wrap under np.abs and overflow any square
    with pytest.raises(InvalidUpdate, match=r"tensor 'conv1\.bias': element of magnitude"):
        validate_update(d, REFERENCE, 10**6)


def test_large_bound_uses_small_chunks_without_overflow() -> None:
    # elements near 2**31: 4096 squares would overflow int64, so chunks must shrink
    ref = {"w": np.zeros(10_000, dtype=np.int64)}
    d = {"w": np.full(10_000, 2**31 - 1, dtype=np.int64)}
    exact = 10_000 * (2**31 - 1) ** 2
    assert l2_norm_q(d) == math.isqrt(exact)
    validate_update(d, ref, math.isqrt(exact) + 1)
    with pytest.raises(InvalidUpdate, match="L2 norm"):
        validate_update(d, ref, math.isqrt(exact) - 1)


def test_huge_values_fall_back_to_python_ints() -> None:
    d = {"w": np.array([2**62, -(2**62), 3], dtype=np.int64)}
    assert l2_norm_q(d) == math.isqrt(2 * 2**124 + 9)


def test_bad_bound() -> None:
    with pytest.raises(SpecError, match="max_update_norm"):
        validate_update(delta(), REFERENCE, -1)
    with pytest.raises(SpecError, match="max_update_norm"):
        validate_update(delta(), REFERENCE, 10.0)  # type: ignore[arg-type]


@given(st.lists(st.integers(-(2**40), 2**40), max_size=50))
def test_l2_norm_matches_python(values: list[int]) -> None:
    d = {"x": np.array(values, dtype=np.int64), "y": np.array(values[::-1], dtype=np.int64)}
    assert l2_norm_q(d) == math.isqrt(2 * sum(v * v for v in values))
