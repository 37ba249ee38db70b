"""Where an organisation's rows come from: a CSV or Parquet file, or a SQL query on its database.

Each organisation trains on its own table where it already lives; the node's
configuration names it as a `DataSource` (a file path, or a SQLAlchemy URL and a
SELECT). `read_table` turns it into an Arrow table of just the columns the job's
schema needs and nothing else: Parquet and CSV read only those columns, a query is
wrapped in `SELECT <columns> FROM (<query>)`. Every way a source can fail (missing
file, corrupt file, wrong URL, unreachable server, failing query, missing column, no
rows) is one line of `DataError`; a database password never appears in it.

`read_batches` gives the same rows as a stream of small tables, so `load_local` holds one
batch at a time: CSV in byte ranges parsed by Arrow's multithreaded reader, Parquet a batch at
a time with bounded reads, a database a fetch at a time (`data/sql.py`), read ahead on a thread
(`data/stream.py`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from fedledger.data.check import check_columns, check_not_empty
from fedledger.data.columns import first_line, is_text_type, where
from fedledger.data.sql import concat, sql_batches
from fedledger.data.stream import FileRange, estimate_lines, line_ranges, prefetched
from fedledger.errors import DataError

#: rows per Parquet batch when streaming
PARQUET_BATCH = 65_536
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class DataSource:
    """An organisation's data: a .csv / .parquet / .pq file, an image folder, or a database URL.

    `query` is the SELECT that yields the rows of a database source ("sqlite:///x.db",
    "postgresql://user@host:5432/db"); it is refused for files.
    """

    source: str
    query: str = ""

    @property
    def is_url(self) -> bool:
        return "://" in self.source

    def describe(self) -> str:
        """A short name for messages: the file's name, or the URL without its password."""
        if not self.is_url:
            return Path(self.source).name or self.source
        return _url_without_password(self.source)


def read_table(src: DataSource, *, organisation: str, columns: Sequence[str]) -> pa.Table:
    """The source's rows, just `columns` (in that order), as an Arrow table; DataError on any failure.

    Empty `columns` reads every column (schema inference). When columns are named, Parquet
    text columns come back dictionary-encoded (as they are stored), which is what the encoder
    wants for categories.
    """
    at = where(organisation, src.describe())
    cols = list(dict.fromkeys(columns))
    _check_kind(src, at)
    if src.is_url:
        table = concat(list(sql_batches(src.source, src.query, cols, at)), cols)
    else:
        table = _read_file(Path(src.source), cols, at)
    check_not_empty(table.num_rows, at=at)
    return table


def read_batches(src: DataSource, *, organisation: str, columns: Sequence[str]) -> Batches:
    """The source's rows as a stream of small Arrow tables, for loading in bounded memory.

    The same columns, types and failures as `read_table`, except that each batch's types are
    inferred on its own (a CSV block, a database fetch), so a column whose values change kind
    part-way may read differently; `load_local` then re-reads the whole table for its check.
    A missing column, file or database fails before the first batch; an empty source yields
    no batches (the caller says so).
    """
    at = where(organisation, src.describe())
    cols = list(dict.fromkeys(columns))
    _check_kind(src, at)
    if src.is_url:
        return Batches(sql_batches(src.source, src.query, cols, at), rows=None)
    path = Path(src.source)
    check_file(path, at)
    if path.suffix.lower() == ".csv":
        return Batches(prefetched(_csv_batches(path, cols, at)), rows=None, estimate=estimate_lines(path))
    try:
        text = parquet_text(pq.read_schema(path), cols, at)
        file = pq.ParquetFile(path, read_dictionary=text, buffer_size=PARQUET_BUFFER, pre_buffer=False)
    except (pa.ArrowException, OSError) as e:
        raise file_error(e, ".parquet", at) from None
    return Batches(prefetched(_parquet_batches(file, cols, at)), rows=file.metadata.num_rows)


@dataclass
class Batches:
    """An iterator of Arrow tables, and the total row count when the source knows it up front.

    `estimate`: a likely row count when the exact one is not known (a CSV file's line count
    from its first megabyte), for sizing the output once.
    """

    tables: Iterator[pa.Table]
    rows: int | None
    estimate: int | None = None

    def __iter__(self) -> Iterator[pa.Table]:
        return self.tables


def _check_kind(src: DataSource, at: str) -> None:
    if src.is_url and not src.query.strip():
        raise DataError(f"{at}: a database source needs a query (the SELECT that yields the rows)")
    if not src.is_url and src.query:
        raise DataError(f"{at}: a query is only for database URLs; remove it for a file source")


# --------------------------------------------------------------------------------------- files


def check_file(path: Path, at: str) -> None:
    if not path.exists():
        raise DataError(f"{at}: file {str(path)!r} does not exist; check the data source path")
    if path.is_dir():
        raise DataError(
            f"{at}: {str(path)!r} is a folder; a table source is a .csv or .parquet file or a database URL"
        )
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(
            f"{at}: unknown data format {suffix or '(no suffix)'!r}; use a .csv, .parquet or .pq file, "
            "an image folder or a database URL"
        )


def file_error(e: BaseException, suffix: str, at: str) -> DataError:
    if isinstance(e, pa.ArrowException):
        kind = "CSV" if suffix == ".csv" else "Parquet"
        return DataError(f"{at}: cannot read the {kind} file: {first_line(e)}")
    assert isinstance(e, OSError)
    return DataError(f"{at}: cannot read the file: {e.strerror or first_line(e)}")


def _read_file(path: Path, cols: list[str], at: str) -> pa.Table:
    check_file(path, at)
    suffix = path.suffix.lower()
    try:
        return _read_csv(path, cols, at) if suffix == ".csv" else _read_parquet(path, cols, at)
    except (pa.ArrowException, OSError) as e:
        raise file_error(e, suffix, at) from None


def _read_csv(path: Path, cols: list[str], at: str) -> pa.Table:
    try:
        return pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(include_columns=cols))
    except pa.ArrowKeyError:  # a column in include_columns is not in the header
        with pa_csv.open_csv(path) as reader:
            check_columns(reader.schema.names, cols, at=at)
        raise


def parquet_text(schema: pa.Schema, cols: list[str], at: str) -> list[str]:
    """The text columns among `cols` (read dictionary-encoded, as stored); checks `cols` exist."""
    check_columns(schema.names, cols, at=at)
    twice = [c for c in cols if schema.names.count(c) > 1]
    if twice:
        raise DataError(
            f"{at}: column {twice[0]!r} appears {schema.names.count(twice[0])} times in the file; "
            "give each column one name"
        )
    return [c for c in cols if is_text_type(schema.field(c).type)]


def _read_parquet(path: Path, cols: list[str], at: str) -> pa.Table:
    schema = pq.read_schema(path)
    if not cols:
        return pq.read_table(path)
    return pq.read_table(path, columns=cols, read_dictionary=parquet_text(schema, cols, at))


#: bytes of a CSV file read as one table when streaming (~90k rows of a 20-column table): each
#: range is parsed by Arrow's multithreaded reader, so streaming costs no parallelism
CSV_RANGE = 1 << 25
#: Parquet: rows per batch, and bytes read at a time from a column chunk (not the whole chunk)
PARQUET_BUFFER = 1 << 20


def _csv_batches(path: Path, cols: list[str], at: str) -> Iterator[pa.Table]:
    """The file as tables of ~CSV_RANGE bytes each, split at line ends.

    Splitting at a newline is what Arrow's own reader assumes of a CSV unless told that
    values may hold newlines (`newlines_in_values`, off by default), so no file that
    `read_csv` reads is split differently; a quoted newline fails the read of its range
    like it fails `read_csv`, and the load then falls back to reading the file whole.
    """
    try:
        with pa_csv.open_csv(path) as probe:
            names = probe.schema.names
        check_columns(names, cols, at=at)
        # text columns arrive dictionary-encoded, as Parquet's do: Arrow's parser threads build
        # the dictionaries, so the categorical checks look up a few values instead of hashing
        # every row's text (no range holds 2^24 rows, so none falls back to plain text)
        options = pa_csv.ConvertOptions(
            include_columns=cols, auto_dict_encode=True, auto_dict_max_cardinality=1 << 24
        )
        for start, end in line_ranges(path, CSV_RANGE):
            reader = io.BufferedReader(FileRange(path, start, end), buffer_size=1 << 20)
            with reader:
                yield pa_csv.read_csv(
                    reader, read_options=pa_csv.ReadOptions(column_names=names), convert_options=options
                )
    except (pa.ArrowException, OSError) as e:
        raise file_error(e, ".csv", at) from None


def _parquet_batches(file: pq.ParquetFile, cols: list[str], at: str) -> Iterator[pa.Table]:
    try:
        for batch in file.iter_batches(batch_size=PARQUET_BATCH, columns=cols or None):
            yield pa.Table.from_batches([batch])
    except (pa.ArrowException, OSError) as e:
        raise file_error(e, ".parquet", at) from None


# ----------------------------------------------------------------------------------------- text


def _url_without_password(source: str) -> str:
    try:
        from sqlalchemy.engine import URL, make_url

        url = make_url(source)
        if url.password is None:
            return source
        bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, url.query)
        return str(bare.render_as_string(hide_password=False))
    except Exception:  # not a URL SQLAlchemy parses: drop anything between user: and @
        return re.sub(r"(://[^:/@]*):[^@]*@", r"\1@", source)
