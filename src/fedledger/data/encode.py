"""An organisation's source turned into the model's input: a float32 matrix and class indices.

The layout is fixed by the schema alone, so every organisation builds the same columns
whatever its table looked like: the numeric features in schema order, then one one-hot
block per categorical feature in vocabulary order. Numeric values are NOT standardised
here: the means and deviations come from the federated statistics round (`data/stats.py`),
never from one party's rows.

`load_local` is what a node calls: read only the schema's columns, check them (one-line
`DataError`s), encode. It streams: each batch of the source (a CSV block, a Parquet batch,
a database fetch) is checked and written into one growing (N, width) float32 matrix, column
by column from the Arrow buffers, one-hotting categories from the codes the checks already
computed. So loading costs little beyond the reading, and its peak memory is the output plus
one batch, never a whole Arrow table. A batch that fails a check sends the load to the
whole-table path, whose message counts the offending rows over the entire source.

Image folders go through `read_images` (in `data/images.py`); schema inference for
`fedledger simulate` is in `data/infer.py`. Both are re-exported here.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fedledger.data.check import Prepared, check_not_empty, prepare
from fedledger.data.columns import label_text, rows, text_values, where
from fedledger.data.images import infer_image_schema, read_images
from fedledger.data.infer import infer_schema
from fedledger.data.schema import ImageSchema, TableSchema
from fedledger.data.sources import DataSource, read_batches, read_table
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
    return _fill(prepare(table, schema, organisation="table", source="encode_table"), schema)


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
    try:
        return _load_batches(src, schema, organisation=organisation, key=key, columns=columns)
    except _Recheck:
        pass
    # a batch failed a check: the whole table, read again, gets the one-line message with the
    # counts over all its rows (and, if no check fails on the whole, it is the answer)
    table = read_table(src, organisation=organisation, columns=columns)
    prep = prepare(table, schema, organisation=organisation, source=src.describe())
    groups = _groups(table.column(key), key, organisation, src.describe()) if key else None
    del table
    x, y = _fill(prep, schema)
    return LocalData(x=x, y=y, groups=groups)


class _Recheck(Exception):
    """A batch did not pass a check, or a numeric value did not survive float32: check the whole."""


def _load_batches(
    src: DataSource, schema: TableSchema, *, organisation: str, key: str, columns: list[str]
) -> LocalData:
    """Reads and encodes the source a batch at a time into one growing output.

    Peak memory is the output plus one batch: no whole Arrow table is ever held. The output
    grows by `ndarray.resize`, which for large arrays is a remap of the same pages (no copy),
    and pages reserved but never written are never resident.
    """
    source = src.describe()
    batches = read_batches(src, organisation=organisation, columns=columns)
    out = _Output(schema.encoded_width, batches.rows if batches.rows is not None else batches.estimate)
    groups: list[np.ndarray] = []
    key_type: pa.DataType | None = None
    with ThreadPoolExecutor(THREADS_MAX) as pool:
        for table in _rechecked(batches):
            if table.num_rows == 0:
                continue
            try:
                prep = prepare(table, schema, organisation=organisation, source=source, finite=False)
                if key:
                    key_type = _same_type(key_type, table.column(key).type)
                    groups.append(_groups(table.column(key), key, organisation, source))
            except DataError:
                raise _Recheck from None
            del table
            x, y = out.take(prep.n)
            if not _fill_into(x, prep, schema, check_finite=True, pool=pool):
                raise _Recheck
            y[:] = prep.label.codes
    check_not_empty(out.n, at=where(organisation, source))
    x_all, y_all = out.finish()
    return LocalData(x=x_all, y=y_all, groups=np.concatenate(groups) if key else None)


def _same_type(seen: pa.DataType | None, now: pa.DataType) -> pa.DataType | None:
    """The partition key's type so far; _Recheck if this batch read it as another kind.

    A group's name is the key's text, and `01` read as an integer is `1`: a key that one batch
    infers as numbers and another as text would split a group, so the whole table decides.
    """
    if pa.types.is_null(now):
        return seen
    if (
        seen is not None
        and now != seen
        and not (pa.types.is_dictionary(now) and pa.types.is_dictionary(seen))
    ):
        raise _Recheck
    return now


def _rechecked(batches: Iterable[pa.Table]) -> Iterator[pa.Table]:
    """The batches; a read error part-way (a CSV block whose values change type) is re-judged whole."""
    try:
        yield from batches
    except DataError:
        raise _Recheck from None


class _Output:
    """(N, width) float32 and (N,) int64 buffers that grow as batches arrive."""

    def __init__(self, width: int, rows: int | None) -> None:
        capacity = rows if rows is not None else 1 << 16
        self.x = np.empty((max(capacity, 1), width), dtype=np.float32)  # (capacity, width)
        self.y = np.empty(max(capacity, 1), dtype=np.int64)  # (capacity,)
        self.n = 0

    def take(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Views of the next `rows` rows (valid until the next call: the buffers may move)."""
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


#: rows encoded at a time: a block of the output (rows × width float32) stays in cache while every
#: column is written into it, instead of each column sweeping the whole matrix (16,384 measured
#: fastest of 4k–32k on a 36-wide table)
BLOCK_ROWS = 16384
#: threads that fill the matrix (each a share of the row blocks)
THREADS_MAX = 4


def _fill(prep: Prepared, schema: TableSchema) -> tuple[np.ndarray, np.ndarray]:
    """A checked table's (x (N, encoded_width) float32, y (N,) int64)."""
    x = np.empty((prep.n, schema.encoded_width), dtype=np.float32)  # (N, encoded_width)
    with ThreadPoolExecutor(THREADS_MAX) as pool:
        finite = _fill_into(x, prep, schema, check_finite=False, pool=pool)
    assert finite
    return x, prep.label.codes.astype(np.int64)


def _fill_into(
    x: np.ndarray, prep: Prepared, schema: TableSchema, *, check_finite: bool, pool: ThreadPoolExecutor
) -> bool:
    """Encodes a prepared table block by block into `x` ((N, encoded_width) float32, C-contiguous).

    With `check_finite`, the numeric block is tested as it is written (cheap: it is in cache);
    False then means a NaN, inf or a value beyond float32, which the Arrow-side check reports
    exactly. Large tables are split between threads by row range (numpy releases the GIL).
    """
    n = prep.n
    numeric = [_Pieces(col) for col in prep.numeric]
    widths = [len(f.vocabulary) for f in schema.categorical]
    codes = [c.codes for c in prep.categorical]
    blocks = range(0, n, BLOCK_ROWS)
    workers = min(os.cpu_count() or 1, THREADS_MAX, len(blocks))

    def run(part: int) -> bool:
        return _fill_rows(x, numeric, widths, codes, blocks[part::workers], check_finite)

    if workers > 1:
        return all(pool.map(run, range(workers)))
    return run(0)


def _fill_rows(
    x: np.ndarray,
    numeric: list[_Pieces],
    widths: list[int],
    codes: list[np.ndarray],
    starts: range,
    check_finite: bool,
) -> bool:
    """Writes the blocks of rows beginning at `starts`; False if a numeric value is not finite.

    Numeric columns go first into a column-major scratch block (contiguous writes and a
    contiguous finiteness test), then into the output by one transposing copy: cheaper than
    writing each column down the output's stride.
    """
    n, width = x.shape
    nn = len(numeric)
    row_starts = np.arange(BLOCK_ROWS, dtype=np.int64) * width  # (BLOCK_ROWS,)
    scratch = np.empty((nn, BLOCK_ROWS), dtype=np.float32)  # (numeric columns, BLOCK_ROWS)
    finite = True
    for a in starts:
        b = min(n, a + BLOCK_ROWS)
        block = x[a:b]  # (b - a, width), a view
        if nn:
            cols = scratch[:, : b - a]  # (nn, b - a)
            for j, pieces in enumerate(numeric):
                pieces.write(cols[j], a, b)
            if check_finite and finite:
                finite = bool(np.isfinite(cols).all())
            block[:, :nn] = cols.T
        if codes:
            block[:, nn:] = 0.0
            flat = block.reshape(-1)  # (rows * width,), a view: x is C-contiguous
            start = nn
            for v, c in zip(widths, codes, strict=True):
                flat[row_starts[: b - a] + (c[a:b] + start)] = 1.0
                start += v
    return finite


class _Pieces:
    """A numeric column's chunks as numpy arrays (zero-copy where Arrow allows), written by row range.

    Every number reaches float32 through float64: an int64 beyond 2^53 cast straight to float32
    rounds once, through float64 twice, and a column may arrive as int64 in one batch and
    float64 in another, so one rule for all keeps streamed and whole-table loads identical.
    A value beyond float32 becomes inf silently here; the caller's finiteness test catches it.
    """

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
        """out[:] = the column's rows a..b (out is a (b - a,) view)."""
        i = bisect.bisect_right(self.starts, a) - 1
        pos = a
        while pos < b:
            part, s = self.parts[i], self.starts[i]
            end = min(b, s + len(part))
            values = part[pos - s : end - s]
            if values.dtype.kind in "iu":
                values = values.astype(np.float64)  # (end - pos,)
            with np.errstate(over="ignore"):
                out[pos - a : end - a] = values
            pos, i = end, i + 1


def _groups(col: pa.ChunkedArray, key: str, organisation: str, source: str) -> np.ndarray:
    if col.null_count:
        raise DataError(
            f"{where(organisation, source)}: column {key!r} (the partition key): "
            f"{rows(col.null_count, len(col))} are empty (null); fill them or choose another key"
        )
    return text_values(col)
