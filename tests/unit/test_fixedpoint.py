"""Fixed-point quantisation: exact rounding rule, loud failures, order kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedledger.codec.fixedpoint import dequantize, quantize
from fedledger.errors import CodecError


def test_round_half_to_even() -> None:
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.25, -0.75], dtype=np.float64)
    q = quantize({"w": x}, 0)["w"]
    assert q.dtype == np.int64
    assert q.tolist() == [0, 2, 2, 0, -2, 0, -1]


def test_scale_and_shape() -> None:
    x = np.array([[1.0, -0.5], [0.125, 3.0]], dtype=np.float32)
    q = quantize({"w": x}, 4)["w"]
    assert q.shape == (2, 2)
    assert q.tolist() == [[16, -8], [2, 48]]
    back = dequantize({"w": q}, 4)["w"]
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, x)


def test_key_order_kept() -> None:
    tensors = {"z": np.zeros(1), "a": np.ones(2), "m": np.ones(())}
    assert list(quantize(tensors, 8)) == ["z", "a", "m"]
    assert list(dequantize(quantize(tensors, 8), 8)) == ["z", "a", "m"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rejected_naming_tensor(bad: float) -> None:
    with pytest.raises(CodecError, match=r"tensor 'fc\.bias'.*NaN or infinite"):
        quantize({"ok": np.zeros(2), "fc.bias": np.array([1.0, bad])}, 10)


def test_too_large_rejected() -> None:
    quantize({"w": np.array([2.0**41 - 1])}, 20)  # just below 2**61: fine
    with pytest.raises(CodecError, match=r"tensor 'w'.*2\*\*62"):
        quantize({"w": np.array([0.0, -(2.0**42)])}, 20)


def test_bad_scale_bits() -> None:
    with pytest.raises(CodecError, match="scale_bits"):
        quantize({"w": np.zeros(1)}, 63)
    with pytest.raises(CodecError, match="scale_bits"):
        dequantize({"w": np.zeros(1, dtype=np.int64)}, -1)


def test_dequantize_rejects_floats() -> None:
    with pytest.raises(CodecError, match=r"tensor 'w'.*not an integer"):
        dequantize({"w": np.zeros(1)}, 4)


@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(max_dims=3, max_side=5),
        elements=st.floats(-1e3, 1e3, width=32),
    ),
    st.integers(4, 30),
)
def test_roundtrip_error_at_most_half_a_unit(x: np.ndarray, bits: int) -> None:
    q = quantize({"x": x}, bits)["x"]
    back = dequantize({"x": q}, bits)["x"].astype(np.float64)
    # half a unit from rounding, plus float32 rounding of the result
    tol = 0.5 * 2.0**-bits + np.abs(x.astype(np.float64)) * 2.0**-23
    assert np.all(np.abs(back - x.astype(np.float64)) <= tol)
