"""A Parquet file loaded a column at a time: each column read, checked and cast on its own.

Parquet stores a table column by column, so reading it row batch by row batch (as a CSV
must be read) decodes every column in small pieces and pays that per batch: on a 1M × 20
file, `iter_batches` alone took about as long as `read_table` plus our checks. Read a column
at a time instead, and each column is decoded whole by one worker while another decodes the
next (Arrow releases the GIL). Each column is checked the moment it is read, against the
whole source, so a message counts the offending rows over every row with no second pass:
a numeric column is cast (through float64, like every reader) into one column-major float32
staging array and tested for NaN/inf there; a categorical one, or the label, becomes its
vocabulary codes. Only then are the staged numbers and codes written into the row-major
matrix (`data/fill.py`).

Peak memory is the output, the float32 staging of the numeric columns (at most half their
Arrow size), the codes, and one decoded column per worker; never a whole Arrow table.
The first problem reported is the one `prepare` would report on the whole table: column
types in schema order, then NaN/inf, then categories, then the label.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fedledger.data.check import check_categories, check_finite_column, check_not_empty, check_numeric
from fedledger.data.columns import Codes, where
from fedledger.data.fill import THREADS_MAX, StagedNumeric, fill_into, numeric_numpy, to_float32
from fedledger.data.schema import TableSchema
from fedledger.data.sources import check_file, file_error, parquet_text
from fedledger.errors import DataError

T = TypeVar("T")


def load_parquet(
    path: Path, schema: TableSchema, *, organisation: str, source: str, key: str = ""
) -> tuple[np.ndarray, np.ndarray, pa.ChunkedArray | None]:
    """(x (N, encoded_width) float32, y (N,) int64, the `key` column or None) of a Parquet file.

    A DataError, one line, for anything `prepare` would refuse on the whole table, and for
    a file Arrow cannot read.
    """
    at = where(organisation, source)
    check_file(path, at)
    columns = [*schema.columns, key] if key and key not in schema.columns else list(schema.columns)
    try:
        meta = pq.ParquetFile(path)
        text = parquet_text(meta.schema_arrow, columns, at)
        n = meta.metadata.num_rows
    except (pa.ArrowException, OSError) as e:
        raise file_error(e, ".parquet", at) from None
    check_not_empty(n, at=at)
    reader = _Reader(path, text, at, n)
    staged = np.empty((len(schema.numeric), n), dtype=np.float32)  # (numeric columns, N)
    workers = max(1, min(os.cpu_count() or 1, THREADS_MAX))
    with ThreadPoolExecutor(workers, thread_name_prefix="fedledger-parquet") as pool:
        try:
            numeric = [
                pool.submit(_stage, reader, f.name, n, at, staged[j]) for j, f in enumerate(schema.numeric)
            ]
            categorical = [
                pool.submit(_codes, reader, f.name, f.vocabulary, n, at, False) for f in schema.categorical
            ]
            label = pool.submit(_codes, reader, schema.label, schema.classes, n, at, True)
            group = pool.submit(reader.column, key) if key else None
            finite = _in_order(numeric)
            for f, ok in zip(schema.numeric, finite, strict=True):
                if not ok:  # the staged float32 has a NaN or inf: say exactly how many, from Arrow
                    check_finite_column(check_numeric(reader.column(f.name), f.name, n, at), f.name, at)
                    raise AssertionError(f"column {f.name!r} staged a non-finite value Arrow does not have")
            codes: list[Codes] = _in_order(categorical)
            y = label.result().codes.astype(np.int64)  # (N,)
            keys = group.result() if group is not None else None
            x = np.zeros((n, schema.encoded_width), dtype=np.float32)  # (N, encoded_width)
            onehot = [c.codes for c in codes]
            fill_into(x, StagedNumeric(staged), onehot, schema, check_finite=False, pool=pool, zeroed=True)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return x, y, keys


def _stage(reader: _Reader, name: str, n: int, at: str, out: np.ndarray) -> bool:
    """Reads and checks numeric column `name` into `out` ((N,) float32); False if it holds NaN/inf."""
    col = check_numeric(reader.column(name), name, n, at)
    to_float32([numeric_numpy(chunk) for chunk in col.chunks if len(chunk)], out)
    del col
    pa.default_memory_pool().release_unused()
    return bool(np.isfinite(out).all())


def _codes(reader: _Reader, name: str, vocabulary: tuple[str, ...], n: int, at: str, label: bool) -> Codes:
    return check_categories(reader.column(name), name, vocabulary, n, at, label=label)


def _in_order(futures: list[Future[T]]) -> list[T]:
    """Every future's result, the first failure in list order raised (not the first to finish)."""
    results: list[T] = []
    for f in futures:
        results.append(f.result())
    return results


class _Reader:
    """One `ParquetFile` per worker thread (a file object is not shared between threads)."""

    def __init__(self, path: Path, text: list[str], at: str, rows: int) -> None:
        self.path, self.text, self.at, self.rows = path, text, at, rows
        self._local = threading.local()

    def column(self, name: str) -> pa.ChunkedArray:
        """Column `name`, every row group, text dictionary-encoded as stored."""
        try:
            file = getattr(self._local, "file", None)
            if file is None:
                file = self._local.file = pq.ParquetFile(
                    self.path, read_dictionary=self.text, buffer_size=1 << 20, pre_buffer=False
                )
            col = file.read(columns=[name], use_threads=False).column(0)
        except (pa.ArrowException, OSError) as e:
            raise file_error(e, ".parquet", self.at) from None
        except (KeyError, IndexError):  # another file was put in its place after its columns were checked
            col = None
        if col is None or len(col) != self.rows:
            raise DataError(f"{self.at}: the file changed while it was being read; load it again")
        return col
