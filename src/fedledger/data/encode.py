"""An organisation's source turned into the model's input: a float32 matrix and class indices.

The layout is fixed by the schema alone, so every organisation builds the same columns
whatever its table looked like: the numeric features in schema order, then one one-hot
block per categorical feature in vocabulary order. Numeric values are NOT standardised
here: the means and deviations come from the federated statistics round (`data/stats.py`),
never from one party's rows.

`load_local` is what a node calls: read only the schema's columns, check them (one-line
`DataError`s), encode (`data/fill.py`). It never holds a whole Arrow table. A Parquet file is
read a column at a time, the way it is stored (`data/parquet.py`): each column is checked
against all rows as it is decoded, so its messages need no second pass. A CSV or a database
streams: each batch (a CSV block, a database fetch) is checked and written into one growing
(N, width) float32 matrix, one-hotting categories from the codes the checks already
computed, so its peak memory is the output plus one batch. A batch that fails a check sends
the load to the whole-table path, whose message counts the offending rows over the entire
source.

Image folders go through `read_images` (in `data/images.py`); schema inference for
`fedledger simulate` is in `data/infer.py`. Both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fedledger.data.check import check_not_empty, prepare
from fedledger.data.columns import label_text, rows, text_values, where
from fedledger.data.fill import THREADS_MAX, Output, fill, fill_prepared
from fedledger.data.images import infer_image_schema, read_images
from fedledger.data.infer import infer_schema
from fedledger.data.parquet import load_parquet
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
    return fill(prepare(table, schema, organisation="table", source="encode_table"), schema)


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
    if not src.is_url and Path(src.source).suffix.lower() in (".parquet", ".pq"):
        x, y, keys = load_parquet(
            Path(src.source), schema, organisation=organisation, source=src.describe(), key=key
        )
        groups = _groups(keys, key, organisation, src.describe()) if keys is not None else None
        return LocalData(x=x, y=y, groups=groups)
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
    x, y = fill(prep, schema)
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
    out = Output(schema.encoded_width, batches.rows if batches.rows is not None else batches.estimate)
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
            if not fill_prepared(x, prep, schema, check_finite=True, pool=pool):
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


def _groups(col: pa.ChunkedArray, key: str, organisation: str, source: str) -> np.ndarray:
    if pa.types.is_nested(col.type):  # a list or a struct per row names no one group
        raise DataError(
            f"{where(organisation, source)}: column {key!r} (the partition key) is {col.type}; a key "
            "must be one value per row: text, a number, a date or a boolean"
        )
    if col.null_count:
        raise DataError(
            f"{where(organisation, source)}: column {key!r} (the partition key): "
            f"{rows(col.null_count, len(col))} are empty (null); fill them or choose another key"
        )
    return text_values(col)
