"""Canonical blobs: one byte string per content, a strict reader, safetensors-compatible."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedledger.codec.blob import decode_blob, decode_tensors, encode_tensors
from fedledger.errors import CodecError, MalformedBlob


def _raw(header: dict[str, Any] | list[Any] | str, data: bytes = b"", pad: bool = True) -> bytes:
    """A blob from an arbitrary header, bypassing the canonical writer."""
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    head = text.encode()
    if pad:
        head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + data


def _entry(shape: list[int], begin: int, end: int, dtype: str = "I64") -> dict[str, Any]:
    return {"data_offsets": [begin, end], "dtype": dtype, "shape": shape}


SAMPLE = {
    "conv1.weight": np.arange(-12, 12, dtype=np.int64).reshape(2, 3, 4),
    "bias": np.array([2**62, -(2**63), 7], dtype=np.int64),
    "scalar": np.array(-5, dtype=np.int64),
    "empty": np.zeros((0, 3), dtype=np.int64),
}


def test_roundtrip_sorted_and_exact() -> None:
    blob = encode_tensors(SAMPLE, {"round": "3", "job": "x"})
    tensors, meta = decode_blob(blob)
    assert list(tensors) == sorted(SAMPLE)
    assert meta == {"job": "x", "round": "3"}
    for name, arr in SAMPLE.items():
        assert tensors[name].dtype == np.int64
        np.testing.assert_array_equal(tensors[name], arr)
        assert tensors[name].shape == arr.shape


def test_layout_is_the_documented_one() -> None:
    blob = encode_tensors({"b": np.array([1], dtype=np.int64), "a": np.array([2, 3])})
    (n,) = struct.unpack_from("<Q", blob)
    assert n % 8 == 0
    head = blob[8 : 8 + n]
    assert head.rstrip(b" ") == (
        b'{"a":{"data_offsets":[0,16],"dtype":"I64","shape":[2]},'
        b'"b":{"data_offsets":[16,24],"dtype":"I64","shape":[1]}}'
    )
    assert blob[8 + n :] == struct.pack("<3q", 2, 3, 1)


def test_insertion_order_and_memory_layout_do_not_matter() -> None:
    a = np.arange(12, dtype=np.int64).reshape(3, 4)
    one = encode_tensors({"x": a, "y": a.T.copy()})
    two = encode_tensors({"y": np.asfortranarray(a.T), "x": a.astype(">i8")})
    assert one == two


def test_empty_metadata_is_omitted() -> None:
    assert encode_tensors(SAMPLE, {}) == encode_tensors(SAMPLE)
    assert b"__metadata__" not in encode_tensors(SAMPLE)


def test_decode_is_readonly_or_detached() -> None:
    blob = bytearray(encode_tensors({"w": np.arange(3)}))
    arr = decode_tensors(bytes(blob))["w"]
    assert not arr.flags.writeable


@pytest.mark.parametrize(
    ("tensors", "match"),
    [
        ({"w": np.zeros(2, dtype=np.float32)}, "tensor 'w': dtype float32 is not int64"),
        ({"w": np.zeros(2, dtype=np.int32)}, "tensor 'w': dtype int32 is not int64"),
        ({"__metadata__": np.zeros(2, dtype=np.int64)}, "reserved"),
        ({"": np.zeros(2, dtype=np.int64)}, "non-empty"),
    ],
)
def test_encode_rejects(tensors: dict[str, np.ndarray], match: str) -> None:
    with pytest.raises(CodecError, match=match):
        encode_tensors(tensors)


def test_encode_rejects_non_string_metadata() -> None:
    with pytest.raises(CodecError, match="metadata"):
        encode_tensors({}, {"round": 3})  # type: ignore[dict-item]


def test_safetensors_library_reads_our_blobs() -> None:
    blob = encode_tensors(SAMPLE, {"job": "interop"})
    theirs = safetensors.numpy.load(blob)
    assert sorted(theirs) == sorted(SAMPLE)
    for name, arr in SAMPLE.items():
        assert theirs[name].dtype == np.int64
        np.testing.assert_array_equal(theirs[name], arr)


EIGHT = struct.pack("<q", 1)
HEAD = b'{"a":{"data_offsets":[0,8],"dtype":"I64","shape":[1]}}'  # 54 bytes, canonical JSON


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"", "0 bytes, too short"),
        (b"\x01\x02\x03", "3 bytes, too short"),
        (struct.pack("<Q", 1000) + b"{}      ", "header length 1000 is out of range"),
        (struct.pack("<Q", 0), "header length 0 is out of range"),
        (struct.pack("<Q", 2**63) + b"{}", "out of range"),
        (_raw("{not json"), "not valid UTF-8 JSON"),
        (struct.pack("<Q", 8) + b"\xff\xfe{}    ", "not valid UTF-8 JSON"),
        (_raw([1, 2]), "JSON list, not an object"),
        (_raw('{"a":' + json.dumps(_entry([1], 0, 8)) + ',"a":1}', EIGHT), "duplicate key 'a'"),
        (_raw({"w": _entry([1], 0, 8, "F64")}, EIGHT), "dtype 'F64' is not allowed"),
        (_raw({"w": {"dtype": "I64", "shape": [1]}}, EIGHT), "exactly dtype, shape"),
        (_raw({"w": _entry([-1], 0, 8)}, EIGHT), "not a list of non-negative ints"),
        (_raw({"w": _entry([1.0], 0, 8)}, EIGHT), "not a list of non-negative ints"),  # type: ignore[list-item]
        (_raw({"w": {"data_offsets": [0], "dtype": "I64", "shape": [1]}}), "not \\[begin, end\\]"),
        (_raw({"w": _entry([2], 0, 8)}, EIGHT), r"shape \(2,\) needs 16 bytes .* span 8"),
        (
            _raw({"a": _entry([1], 0, 8), "b": _entry([1], 0, 8)}, EIGHT),
            "tensor 'b': data_offsets \\[0, 8\\] overlap",
        ),
        (_raw({"a": _entry([1], 8, 16)}, EIGHT * 2), "gap of 8 bytes before it"),
        (
            _raw({"a": _entry([1], 8, 16), "b": _entry([1], 0, 8)}, EIGHT * 2),
            "out of order",
        ),
        (_raw({"a": _entry([1], 0, 8)}, EIGHT + b"x"), "1 trailing bytes"),
        (_raw({"a": _entry([2], 0, 16)}, EIGHT), "data section is 8 bytes, offsets need 16"),
        (_raw({"__metadata__": {"k": 1}}), "__metadata__ must be an object of string"),
    ],
)
def test_malformed(blob: bytes, match: str) -> None:
    with pytest.raises(MalformedBlob, match=match):
        decode_blob(blob)


@pytest.mark.parametrize(
    "blob",
    [
        # keys not sorted
        _raw({"b": _entry([1], 8, 16), "a": _entry([1], 0, 8)}, EIGHT * 2),
        # whitespace in JSON
        _raw('{"a": {"data_offsets":[0,8],"dtype":"I64","shape":[1]}}', EIGHT),
        # not padded to a multiple of 8, or padded with something other than spaces
        struct.pack("<Q", len(HEAD)) + HEAD + EIGHT,
        struct.pack("<Q", len(HEAD) + 2) + HEAD + b"\n " + EIGHT,
        # an empty __metadata__ must be omitted
        _raw({"__metadata__": {}}),
        # \u escapes where the canonical writer writes UTF-8
        _raw('{"\\u00e9":{"data_offsets":[0,8],"dtype":"I64","shape":[1]}}', EIGHT),
    ],
)
def test_non_canonical_rejected(blob: bytes) -> None:
    with pytest.raises(MalformedBlob, match="blob is not canonical"):
        decode_blob(blob)


def test_safetensors_library_output_is_not_necessarily_canonical() -> None:
    """Whatever the library writes, we accept it only if it equals our own encoding."""
    theirs = safetensors.numpy.save({"b": np.arange(3), "a": np.arange(2)})
    ours = encode_tensors({"b": np.arange(3), "a": np.arange(2)})
    try:
        decoded = decode_tensors(theirs)
    except MalformedBlob:
        return
    assert theirs == ours
    assert sorted(decoded) == ["a", "b"]


names = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1).filter(
    lambda s: s != "__metadata__"
)
arrays = hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))


@given(st.dictionaries(names, arrays, max_size=5), st.dictionaries(names, st.text(), max_size=3))
def test_roundtrip_property(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
    blob = encode_tensors(tensors, meta)
    decoded, meta_back = decode_blob(blob)
    assert meta_back == meta
    assert sorted(decoded) == sorted(tensors)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(decoded[name], arr)
    assert encode_tensors(decoded, meta_back) == blob
