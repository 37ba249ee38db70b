"""An organisation's source turned into the model's input: a float32 matrix and class indices.

The layout is fixed by the schema alone, so every organisation builds the same columns
whatever its table looked like: the numeric features in schema order, then one one-hot
block per categorical feature in vocabulary order. Numeric values are NOT standardised
here: the means and deviations come from the federated statistics round (`data/stats.py`),
never from one party's rows.

`load_local` is what a node calls: read only the schema's columns, check them (one-line
`DataError`s), encode. The encoder fills one preallocated (N, width) float32 matrix column
by column from the Arrow buffers (zero-copy where Arrow allows) and one-hots categories
from the codes the checks already computed, so loading costs little beyond the reading.

Image folders go through `read_images` (in `data/images.py`); schema inference for
`fedledger simulate` is in `data/infer.py`. Both are re-exported here.
"""

from __future__ import annotations

import bisect
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fedledger.data.check import Prepared, check_finite, prepare
from fedledger.data.columns import label_text, rows, text_values, where
from fedledger.data.images import infer_image_schema, read_images
from fedledger.data.infer import infer_schema
from fedledger.data.schema import ImageSchema, TableSchema
from fedledger.data.sources import DataSource, read_table
from fedledger.errors import DataError

__all__ = [
    "LocalData",
    "encode_table",
    "infer_image_schema",
    "infer_schema",
    "label_text",
    "load_local",
    "read_images",
]


@dataclass(frozen=True)
class LocalData:
    """One organisation's encoded rows, ready for training (not yet standardised)."""

    x: np.ndarray  # (N, *schema.input_shape) float32
    y: np.ndarray  # (N,) int64 class index into schema.classes
    groups: np.ndarray | None = None  # (N,) str: the `key` column's values, when asked for

    def __len__(self) -> int:
        return int(self.y.shape[0])


def encode_table(table: pa.Table, schema: TableSchema) -> tuple[np.ndarray, np.ndarray]:
    """(x (N, encoded_width) float32, y (N,) int64) of a table that matches `schema`.

    The table is checked on the way (a mismatch is a DataError); `load_local` does this with
    the organisation's name in the message.
    """
    prep = prepare(table, schema, organisation="table", source="encode_table")
    return _fill(prep, schema)


def load_local(
    src: DataSource, schema: TableSchema | ImageSchema, *, organisation: str, key: str = ""
) -> LocalData:
    """Reads, checks and encodes an organisation's own source against the job's schema.

    `key` names a column whose values (as text) come back as `groups`, for partitioning by a
    natural column (branch, region, hospital); it need not be a feature.
    """
    if isinstance(schema, ImageSchema):
        if key:
            raise DataError(
                f"{where(organisation, src.describe())}: key {key!r} partitions tables only; "
                "an image folder has no columns"
            )
        x, y = read_images(src, schema, organisation=organisation)
        return LocalData(x=x, y=y, groups=None)
    columns = [*schema.columns, key] if key and key not in schema.columns else list(schema.columns)
    table = read_table(src, organisation=organisation, columns=columns)
    prep = prepare(table, schema, organisation=organisation, source=src.describe(), finite=False)
    groups = _groups(table.column(key), key, organisation, src.describe()) if key else None
    del table  # the numeric columns live on in `prep` until they are copied into x
    try:
        x, y = _fill(prep, schema, check_finite=True)
    except _NotFinite:  # rare: let the exact check count the rows and name the column
        check_finite(prep.numeric, schema, organisation=organisation, source=src.describe())
        raise AssertionError("a numeric value is not finite in float32 but the check found none") from None
    return LocalData(x=x, y=y, groups=groups)


#: rows encoded at a time: a block of the output (rows × width float32) stays in cache while every
#: column is written into it, instead of each column sweeping the whole matrix
BLOCK_ROWS = 8192
#: threads that fill the matrix (each a share of the row blocks)
THREADS_MAX = 4


def _fill(
    prep: Prepared, schema: TableSchema, *, check_finite: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Encodes a prepared table block by block into one preallocated float32 matrix.

    With `check_finite`, the numeric block is tested as it is written (cheap: it is in cache);
    a NaN, inf or a value beyond float32 is then reported exactly by the Arrow-side check.
    Large tables are split between threads by row range (numpy releases the GIL while copying).
    """
    n = prep.n
    x = np.empty((n, schema.encoded_width), dtype=np.float32)  # (N, encoded_width)
    numeric = [_Pieces(col) for col in prep.numeric]
    widths = [len(f.vocabulary) for f in schema.categorical]
    codes = [c.codes for c in prep.categorical]
    blocks = range(0, n, BLOCK_ROWS)
    workers = min(os.cpu_count() or 1, THREADS_MAX, len(blocks))

    def run(part: int) -> bool:
        return _fill_rows(x, numeric, widths, codes, blocks[part::workers], check_finite)

    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            finite = all(pool.map(run, range(workers)))
    else:
        finite = run(0)
    if not finite:
        raise _NotFinite
    y = prep.label.codes.astype(np.int64)  # (N,)
    return x, y


def _fill_rows(
    x: np.ndarray,
    numeric: list[_Pieces],
    widths: list[int],
    codes: list[np.ndarray],
    starts: range,
    check_finite: bool,
) -> bool:
    """Writes the blocks of rows beginning at `starts`; False if a numeric value is not finite."""
    n, width = x.shape
    nn = len(numeric)
    row_starts = np.arange(BLOCK_ROWS, dtype=np.int64) * width  # (BLOCK_ROWS,)
    finite = True
    for a in starts:
        b = min(n, a + BLOCK_ROWS)
        block = x[a:b]  # (b - a, width), a view
        for j, pieces in enumerate(numeric):
            pieces.write(block[:, j], a, b)
        if check_finite and finite:
            finite = bool(np.isfinite(block[:, :nn]).all())
        if codes:
            block[:, nn:] = 0.0
            flat = block.reshape(-1)  # (rows * width,), a view: x is C-contiguous
            start = nn
            for v, c in zip(widths, codes, strict=True):
                flat[row_starts[: b - a] + (c[a:b] + start)] = 1.0
                start += v
    return finite


class _NotFinite(Exception):
    """A numeric value did not survive the float32 conversion (load_local then finds and names it)."""


class _Pieces:
    """A numeric column's chunks as numpy arrays (zero-copy where Arrow allows), written by row range."""

    def __init__(self, col: pa.ChunkedArray) -> None:
        self.parts: list[np.ndarray] = []
        self.starts: list[int] = []
        offset = 0
        for chunk in col.chunks:
            if len(chunk) == 0:
                continue
            if pa.types.is_decimal(chunk.type):
                chunk = chunk.cast(pa.float64())
            self.parts.append(chunk.to_numpy(zero_copy_only=False))  # (len(chunk),)
            self.starts.append(offset)
            offset += len(chunk)

    def write(self, out: np.ndarray, a: int, b: int) -> None:
        """out[:] = the column's rows a..b (out is a (b - a,) strided view)."""
        i = bisect.bisect_right(self.starts, a) - 1
        pos = a
        while pos < b:
            part, s = self.parts[i], self.starts[i]
            end = min(b, s + len(part))
            out[pos - a : end - a] = part[pos - s : end - s]
            pos, i = end, i + 1


def _groups(col: pa.ChunkedArray, key: str, organisation: str, source: str) -> np.ndarray:
    if col.null_count:
        raise DataError(
            f"{where(organisation, source)}: column {key!r} (the partition key): "
            f"{rows(col.null_count, len(col))} are empty (null); fill them or choose another key"
        )
    return text_values(col)
