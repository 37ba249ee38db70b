"""Writing checked columns into the model's input: one (N, width) float32 matrix, row-major.

The layout is the schema's: the numeric features in schema order, then one one-hot block
per categorical feature in vocabulary order. Every reader (a CSV range, a database fetch, a
Parquet file read a column at a time) ends here, so every format encodes to the same bytes.

Rows are written a block at a time: a block of the output (`block_rows` × width float32) stays
in cache while every column is written into it, instead of each column sweeping the whole
matrix down its stride. The numeric columns of a block arrive column-major (contiguous per
column, the way Arrow holds them) and reach the row-major output by one transposing copy;
the categorical ones are scattered from the codes the checks computed. Large tables are split
between threads by row range (numpy releases the GIL).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import pyarrow as pa

from fedledger.data.check import Prepared
from fedledger.data.schema import TableSchema

#: most rows encoded at a time, and the bytes a block and its scratch may take (`block_rows`):
#: on a 36-wide table 4,096-row blocks (0.6 MB) took ~0.7 of the time of 16,384-row ones (2.4 MB,
#: past a core's 2 MB L2), measured on this project's 2-core machines
BLOCK_ROWS = 16384
BLOCK_BYTES = 1 << 21
#: threads that fill the matrix (each a share of the row blocks)
THREADS_MAX = 4


class Numeric(Protocol):
    """The numeric features of a table, handed out block by block, column-major."""

    width: int

    def block(self, a: int, b: int, scratch: np.ndarray) -> np.ndarray:
        """(width, b - a) float32: rows a..b of every numeric column (may be written into `scratch`)."""
        ...


class Output:
    """(N, width) float32 and (N,) int64 buffers that grow as batches arrive."""

    def __init__(self, width: int, rows: int | None) -> None:
        capacity = rows if rows is not None else 1 << 16
        self.x = np.empty((max(capacity, 1), width), dtype=np.float32)  # (capacity, width)
        self.y = np.empty(max(capacity, 1), dtype=np.int64)  # (capacity,)
        self.n = 0

    def take(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Views of the next `rows` rows (valid until the next call: the buffers may move).

        The buffers grow by `ndarray.resize`, which for large arrays is a remap of the same
        pages (no copy); pages reserved but never written are never resident.
        """
        need = self.n + rows
        if need > len(self.y):
            capacity = max(need, 2 * len(self.y))
            self.x.resize((capacity, self.x.shape[1]), refcheck=False)
            self.y.resize(capacity, refcheck=False)
        a, self.n = self.n, need
        return self.x[a:need], self.y[a:need]

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        self.x.resize((self.n, self.x.shape[1]), refcheck=False)
        self.y.resize(self.n, refcheck=False)
        return self.x, self.y


def fill(prep: Prepared, schema: TableSchema) -> tuple[np.ndarray, np.ndarray]:
    """A checked table's (x (N, encoded_width) float32, y (N,) int64)."""
    x = np.zeros((prep.n, schema.encoded_width), dtype=np.float32)  # (N, encoded_width)
    with ThreadPoolExecutor(THREADS_MAX) as pool:
        numeric = ArrowNumeric(prep.numeric)
        finite = fill_into(x, numeric, _codes(prep), schema, check_finite=False, pool=pool, zeroed=True)
    assert finite
    return x, prep.label.codes.astype(np.int64)


def fill_prepared(
    x: np.ndarray, prep: Prepared, schema: TableSchema, *, check_finite: bool, pool: ThreadPoolExecutor
) -> bool:
    """`fill_into` for a prepared batch (its numeric columns as Arrow arrays)."""
    numeric = ArrowNumeric(prep.numeric)
    return fill_into(x, numeric, _codes(prep), schema, check_finite=check_finite, pool=pool)


def _codes(prep: Prepared) -> list[np.ndarray]:
    return [c.codes for c in prep.categorical]


def fill_into(
    x: np.ndarray,
    numeric: Numeric,
    codes: Sequence[np.ndarray],
    schema: TableSchema,
    *,
    check_finite: bool,
    pool: ThreadPoolExecutor,
    zeroed: bool = False,
) -> bool:
    """Encodes the numeric columns and category codes block by block into `x`
    ((N, encoded_width) float32, C-contiguous).

    `zeroed`: the caller made `x` with `np.zeros` (fresh pages the kernel hands out zeroed,
    at no cost), so the one-hot columns need no zeroing before their ones are scattered.

    With `check_finite`, each numeric block is tested as it is written (cheap: it is in cache);
    False then means a NaN, inf or a value beyond float32, which the Arrow-side check reports
    exactly.
    """
    n = x.shape[0]
    widths = [len(f.vocabulary) for f in schema.categorical]
    blocks = range(0, n, block_rows(schema.encoded_width))
    workers = min(os.cpu_count() or 1, THREADS_MAX, len(blocks))

    def run(part: int) -> bool:
        return _fill_rows(x, numeric, widths, codes, blocks[part::workers], check_finite, zeroed)

    if workers > 1:
        return all(pool.map(run, range(workers)))
    return run(0)


def _fill_rows(
    x: np.ndarray,
    numeric: Numeric,
    widths: list[int],
    codes: Sequence[np.ndarray],
    starts: range,
    check_finite: bool,
    zeroed: bool,
) -> bool:
    """Writes the blocks of rows beginning at `starts`; False if a numeric value is not finite."""
    n, width = x.shape
    nn = numeric.width
    rows = block_rows(width)
    row_starts = np.arange(rows, dtype=np.int64) * width  # (rows,)
    scratch = np.empty((nn, rows), dtype=np.float32)  # (numeric columns, rows)
    finite = True
    for a in starts:
        b = min(n, a + rows)
        block = x[a:b]  # (b - a, width), a view
        if nn:
            cols = numeric.block(a, b, scratch)  # (nn, b - a)
            if check_finite and finite:
                finite = bool(np.isfinite(cols).all())
            block[:, :nn] = cols.T
        if codes:
            if not zeroed:
                block[:, nn:] = 0.0
            flat = block.reshape(-1)  # (rows * width,), a view: x is C-contiguous
            start = nn
            for v, c in zip(widths, codes, strict=True):
                flat[row_starts[: b - a] + (c[a:b] + start)] = 1.0
                start += v
    return finite


def block_rows(width: int) -> int:
    """Rows per block: a block of the output and its numeric scratch within a core's L2 cache."""
    rows = BLOCK_BYTES // (8 * max(width, 1))
    return int(min(BLOCK_ROWS, max(256, 1 << (rows.bit_length() - 1))))


class ArrowNumeric:
    """Numeric columns as Arrow chunks (zero-copy numpy views where Arrow allows), cast per block.

    Every number reaches float32 through float64: an int64 beyond 2^53 cast straight to float32
    rounds once, through float64 twice, and a column may arrive as int64 in one batch and
    float64 in another, so one rule for all keeps streamed and whole-table loads identical.
    A value beyond float32 becomes inf silently here; the caller's finiteness test catches it.
    """

    def __init__(self, columns: Sequence[pa.ChunkedArray]) -> None:
        self.columns = [_Pieces(col) for col in columns]
        self.width = len(self.columns)

    def block(self, a: int, b: int, scratch: np.ndarray) -> np.ndarray:
        cols = scratch[:, : b - a]  # (width, b - a)
        for j, pieces in enumerate(self.columns):
            pieces.write(cols[j], a, b)
        return cols


class StagedNumeric:
    """Numeric columns already cast to float32 into one column-major array (width, N)."""

    def __init__(self, staged: np.ndarray) -> None:
        self.staged = staged  # (width, N) float32
        self.width = staged.shape[0]

    def block(self, a: int, b: int, scratch: np.ndarray) -> np.ndarray:
        return self.staged[:, a:b]


def to_float32(chunks: Sequence[np.ndarray], out: np.ndarray) -> None:
    """out[:] = the chunks one after another, each number through float64 (`ArrowNumeric`'s rule)."""
    pos = 0
    for values in chunks:
        if values.dtype.kind in "iu":
            values = values.astype(np.float64)
        with np.errstate(over="ignore"):
            out[pos : pos + len(values)] = values
        pos += len(values)


class _Pieces:
    """One numeric column's chunks as numpy arrays, written by row range."""

    def __init__(self, col: pa.ChunkedArray) -> None:
        self.parts: list[np.ndarray] = []
        self.starts: list[int] = []
        offset = 0
        for chunk in col.chunks:
            if len(chunk) == 0:
                continue
            self.parts.append(numeric_numpy(chunk))  # (len(chunk),)
            self.starts.append(offset)
            offset += len(chunk)

    def write(self, out: np.ndarray, a: int, b: int) -> None:
        """out[:] = the column's rows a..b (out is a (b - a,) view)."""
        i = bisect.bisect_right(self.starts, a) - 1
        pos = a
        while pos < b:
            part, s = self.parts[i], self.starts[i]
            end = min(b, s + len(part))
            to_float32([part[pos - s : end - s]], out[pos - a : end - a])
            pos, i = end, i + 1


def numeric_numpy(chunk: pa.Array) -> np.ndarray:
    """A checked numeric chunk (no nulls) as numpy: zero-copy for ints and floats, decimals via float64."""
    if pa.types.is_decimal(chunk.type):
        chunk = chunk.cast(pa.float64())
    values: np.ndarray = chunk.to_numpy(zero_copy_only=False)
    return values
