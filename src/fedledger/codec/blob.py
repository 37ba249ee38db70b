"""Canonical tensor blobs: safetensors files with exactly one valid byte string per content.

Commitments hash blob bytes, so two validators holding equal tensors must produce equal bytes.
The safetensors library's writer gives no such promise across versions, hence our own writer:

    [8-byte little-endian header length N][N bytes of JSON header][tensor data]

The header is JSON with sorted keys and compact separators, UTF-8, padded with spaces to a
multiple of 8. Each entry is `{"data_offsets":[b,e],"dtype":"I64","shape":[...]}`; tensors are
laid out back to back in sorted-name order; `"__metadata__"` (str -> str) appears only when
non-empty. Only I64 is allowed: everything committed is integer.

The reader is strict: anything our writer would not have produced is `MalformedBlob`, so a
blob has one meaning and one commitment. Any safetensors reader can still load our blobs.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from fedledger.errors import CodecError, MalformedBlob

DTYPE = "I64"
ITEMSIZE = 8
METADATA_KEY = "__metadata__"
#: The safetensors format caps the header at 100 MB; we refuse anything larger too.
MAX_HEADER_LEN = 100_000_000
_LE_INT64 = np.dtype("<i8")


def _header_bytes(header: Mapping[str, Any]) -> bytes:
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raw = text.encode("utf-8")
    return raw + b" " * (-len(raw) % 8)


def _build_header(shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str]) -> dict[str, Any]:
    header: dict[str, Any] = {}
    offset = 0
    for name in sorted(shapes):
        shape = shapes[name]
        end = offset + math.prod(shape) * ITEMSIZE
        header[name] = {"dtype": DTYPE, "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    if metadata:
        header[METADATA_KEY] = dict(metadata)
    return header


def encode_header(shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes before the tensor data of the canonical blob of tensors shaped `shapes`: the
    8-byte length and the padded JSON header. A fraud proof compares a proposed aggregate's
    first bytes with these, so it needs them without building the tensors."""
    head = _header_bytes(
        _build_header({n: tuple(int(d) for d in s) for n, s in shapes.items()}, dict(metadata or {}))
    )
    return struct.pack("<Q", len(head)) + head


def data_offset(prefix: bytes) -> int:
    """Where the tensor data of a blob starts (8 + header length), read from its first 8 bytes:
    always a multiple of 8, so no int64 of the data section ever straddles a 4 KiB chunk."""
    if len(prefix) < 8:
        raise MalformedBlob(f"blob prefix is {len(prefix)} bytes, too short for the 8-byte header length")
    (n,) = struct.unpack_from("<Q", prefix)
    return 8 + int(n)


def encode_tensors(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None) -> bytes:
    """The canonical blob of `tensors` (int64 only) with optional string metadata."""
    arrays: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise CodecError(f"tensor name {name!r} must be a non-empty string")
        if name == METADATA_KEY:
            raise CodecError(f"tensor name '{METADATA_KEY}' is reserved for metadata")
        arr = np.asarray(value)
        if arr.dtype.kind != "i" or arr.dtype.itemsize != ITEMSIZE:
            raise CodecError(f"tensor '{name}': dtype {arr.dtype} is not int64 (blobs hold I64)")
        arrays[name] = arr
    meta = dict(metadata or {})
    for key, val in meta.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise CodecError(f"metadata {key!r}: keys and values must be strings")
    header = _build_header({n: tuple(int(d) for d in a.shape) for n, a in arrays.items()}, meta)
    head = _header_bytes(header)
    parts = [struct.pack("<Q", len(head)), head]
    parts += [np.ascontiguousarray(arrays[n], dtype=_LE_INT64).tobytes() for n in sorted(arrays)]
    return b"".join(parts)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedBlob(f"header has duplicate key '{key}'")
        out[key] = value
    return out


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_header(data: bytes) -> tuple[int, dict[str, Any]]:
    """Checks the framing and returns (header length, parsed header object)."""
    if len(data) < 8:
        raise MalformedBlob(f"blob is {len(data)} bytes, too short for the 8-byte header length")
    (n,) = struct.unpack_from("<Q", data)
    if n < 2 or n > MAX_HEADER_LEN or n > len(data) - 8:
        raise MalformedBlob(
            f"header length {n} is out of range for a {len(data)}-byte blob "
            f"(must be 2..min({MAX_HEADER_LEN}, {len(data) - 8}))"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MalformedBlob(f"header is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise MalformedBlob(f"header is a JSON {type(header).__name__}, not an object")
    return n, header


def _parse_entry(name: str, entry: object) -> tuple[tuple[int, ...], int, int]:
    """Checks one tensor entry; returns (shape, begin, end)."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise MalformedBlob(
            f"tensor '{name}': entry must be an object with exactly dtype, shape, data_offsets"
        )
    if entry["dtype"] != DTYPE:
        raise MalformedBlob(f"tensor '{name}': dtype {entry['dtype']!r} is not allowed (only I64)")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise MalformedBlob(f"tensor '{name}': shape {shape!r} is not a list of non-negative ints")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) and o >= 0 for o in offsets):
        raise MalformedBlob(f"tensor '{name}': data_offsets {offsets!r} is not [begin, end]")
    begin, end = offsets
    expected = math.prod(shape) * ITEMSIZE
    if end - begin != expected:
        raise MalformedBlob(
            f"tensor '{name}': shape {tuple(shape)} needs {expected} bytes "
            f"but data_offsets [{begin}, {end}] span {end - begin}"
        )
    return tuple(shape), begin, end


def _check_layout(spans: dict[str, tuple[int, int]], data_len: int) -> None:
    """Tensors must tile the data section exactly, in sorted-name order."""
    cursor = 0
    for name, (begin, end) in sorted(spans.items(), key=lambda kv: (kv[1], kv[0])):
        if begin < cursor:
            raise MalformedBlob(f"tensor '{name}': data_offsets [{begin}, {end}] overlap")
        if begin > cursor:
            raise MalformedBlob(f"tensor '{name}': gap of {begin - cursor} bytes before it")
        cursor = end
    by_offset = sorted(spans, key=lambda n: (spans[n], n))
    if by_offset != sorted(spans):
        raise MalformedBlob(f"tensors are out of order: data laid out as {by_offset}, not sorted")
    if cursor > data_len:
        raise MalformedBlob(f"data section is {data_len} bytes, offsets need {cursor}")
    if cursor < data_len:
        raise MalformedBlob(f"{data_len - cursor} trailing bytes after the last tensor")


def decode_blob(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors (sorted by name, read-only int64 views) and metadata of a canonical blob."""
    data = bytes(data)  # no copy for bytes; detaches views from a caller's mutable buffer
    n, header = _parse_header(data)
    metadata = header.pop(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise MalformedBlob("__metadata__ must be an object of string to string")
    entries = {name: _parse_entry(name, entry) for name, entry in header.items()}
    _check_layout({name: (b, e) for name, (_, b, e) in entries.items()}, len(data) - 8 - n)
    # The data section is now fully determined by the header, so re-encoding the header
    # is the same as re-encoding the whole blob, without copying the tensor bytes.
    canonical = _header_bytes(_build_header({k: s for k, (s, _, _) in entries.items()}, metadata))
    if canonical != data[8 : 8 + n]:
        raise MalformedBlob("blob is not canonical (header differs from its re-encoding)")
    tensors: dict[str, np.ndarray] = {}
    for name in sorted(entries):
        shape, begin, end = entries[name]
        flat = np.frombuffer(data, dtype=_LE_INT64, count=(end - begin) // 8, offset=8 + n + begin)
        tensors[name] = flat.astype(np.int64, copy=False).reshape(shape)
    return tensors, metadata


def decode_tensors(data: bytes) -> dict[str, np.ndarray]:
    """Tensors of a canonical blob; see `decode_blob`."""
    return decode_blob(data)[0]
