"""Where an organisation's rows come from: a CSV or Parquet file, or a SQL query on its database.

Each organisation trains on its own table where it already lives; the node's
configuration names it as a `DataSource` (a file path, or a SQLAlchemy URL and a
SELECT). `read_table` turns it into an Arrow table of just the columns the job's
schema needs and nothing else: Parquet and CSV read only those columns, a query is
wrapped in `SELECT <columns> FROM (<query>)`. Every way a source can fail (missing
file, corrupt file, wrong URL, unreachable server, failing query, missing column, no
rows) is one line of `DataError`; a database password never appears in it.

SQLite URLs take a fast path (the standard library's `sqlite3`, opened read-only, rows
batched into Arrow arrays): SQLAlchemy's row objects cost more than the reading itself.
Every other URL goes through SQLAlchemy (PostgreSQL through psycopg 3) with a streamed,
server-side cursor, so a large table is never held as Python rows all at once.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from fedledger.data.check import check_columns, check_not_empty
from fedledger.data.columns import is_numeric_type, is_text_type, label_text, where
from fedledger.errors import DataError

#: rows fetched from a database cursor at a time (each batch becomes one Arrow chunk)
BATCH = 65_536
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
    if src.is_url:
        if not src.query.strip():
            raise DataError(f"{at}: a database source needs a query (the SELECT that yields the rows)")
        table = _read_sql(src, cols, at)
    else:
        if src.query:
            raise DataError(f"{at}: a query is only for database URLs; remove it for a file source")
        table = _read_file(Path(src.source), cols, at)
    check_not_empty(table.num_rows, at=at)
    return table


# --------------------------------------------------------------------------------------- files


def _read_file(path: Path, cols: list[str], at: str) -> pa.Table:
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
    try:
        return _read_csv(path, cols, at) if suffix == ".csv" else _read_parquet(path, cols, at)
    except pa.ArrowException as e:
        kind = "CSV" if suffix == ".csv" else "Parquet"
        raise DataError(f"{at}: cannot read the {kind} file: {_first_line(e)}") from None
    except OSError as e:
        raise DataError(f"{at}: cannot read the file: {e.strerror or _first_line(e)}") from None


def _read_csv(path: Path, cols: list[str], at: str) -> pa.Table:
    try:
        return pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(include_columns=cols))
    except pa.ArrowKeyError:  # a column in include_columns is not in the header
        with pa_csv.open_csv(path) as reader:
            check_columns(reader.schema.names, cols, at=at)
        raise


def _read_parquet(path: Path, cols: list[str], at: str) -> pa.Table:
    schema = pq.read_schema(path)
    check_columns(schema.names, cols, at=at)
    if not cols:
        return pq.read_table(path)
    text = [c for c in cols if is_text_type(schema.field(c).type)]
    return pq.read_table(path, columns=cols, read_dictionary=text)


# ------------------------------------------------------------------------------------ databases


def _read_sql(src: DataSource, cols: list[str], at: str) -> pa.Table:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(src.source)
    except ArgumentError:
        raise DataError(
            f"{at}: not a database URL; write it as dialect://user@host:port/database, "
            "e.g. postgresql://alice@db.example:5432/claims or sqlite:///claims.db"
        ) from None
    query = src.query.strip().rstrip(";").strip()
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        return _read_sqlite(url.database or "", query, cols, at)
    return _read_sqlalchemy(url, query, cols, at)


def _select(query: str, cols: Sequence[str]) -> str:
    names = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
    return f"SELECT {names} FROM ({query}) AS fedledger_source"


def _probe(query: str) -> str:
    return f"SELECT * FROM ({query}) AS fedledger_source LIMIT 0"


def _read_sqlite(database: str, query: str, cols: list[str], at: str) -> pa.Table:
    if not database or database == ":memory:":
        raise DataError(f"{at}: the URL names no database file; write it as sqlite:///path/to/file.db")
    path = Path(database)
    if not path.is_file():
        raise DataError(
            f"{at}: database file {database!r} does not exist; check the path in the URL "
            "(sqlite:///relative.db or sqlite:////absolute/path.db)"
        )
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise DataError(f"{at}: cannot open the database: {_first_line(e)}") from None
    try:
        try:
            cur = conn.execute(_probe(query))
            names = [d[0] for d in cur.description]
            check_columns(names, cols, at=at)
            cols = cols or names
            cur = conn.execute(_select(query, cols))
            return rows_to_table(cur.fetchmany, cols)
        except sqlite3.DatabaseError as e:
            raise DataError(
                f"{at}: the query failed: {_first_line(e)}; check it with the sqlite3 shell"
            ) from None
    finally:
        conn.close()


def _read_sqlalchemy(url: Any, query: str, cols: list[str], at: str) -> pa.Table:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    secret = url.password or ""

    def scrub(e: BaseException) -> str:
        line = _first_line(getattr(e, "orig", None) or e)
        return line.replace(str(secret), "***") if secret else line

    try:
        engine = create_engine(url)
    except (NoSuchModuleError, ArgumentError, ImportError) as e:
        raise DataError(
            f"{at}: unsupported database URL ({scrub(e)}); use postgresql:// or sqlite:///"
        ) from None
    try:
        try:
            conn = engine.connect()
        except SQLAlchemyError as e:
            raise DataError(f"{at}: cannot connect to the database: {scrub(e)}") from None
        with conn:
            try:
                if engine.dialect.paramstyle in ("format", "pyformat"):
                    query = query.replace("%", "%%")  # the driver would read `id % 2` as a placeholder
                result = conn.exec_driver_sql(_probe(query))
                names = list(result.keys())
                result.close()
                check_columns(names, cols, at=at)
                cols = cols or names
                result = conn.execution_options(stream_results=True, max_row_buffer=BATCH).exec_driver_sql(
                    _select(query, cols)
                )
                return rows_to_table(result.fetchmany, cols)
            except DBAPIError as e:
                raise DataError(
                    f"{at}: the query failed: {scrub(e)}; check it with the database's own client"
                ) from None
    finally:
        engine.dispose()


def rows_to_table(fetch: Callable[[int], Sequence[Sequence[Any]]], names: Sequence[str]) -> pa.Table:
    """Rows from a DB-API style `fetch(n)` as an Arrow table, one chunk per batch of BATCH rows.

    Each batch is transposed once (zip) and each column becomes an Arrow array in one call, so
    the Python row objects of only one batch are alive at a time.
    """
    chunks: list[list[pa.Array]] = [[] for _ in names]
    while True:
        batch = fetch(BATCH)
        if not batch:
            break
        for j, values in enumerate(zip(*batch, strict=True)):
            chunks[j].append(_array(values))
    return pa.table([_unify(c) for c in chunks], names=list(names))


def _array(values: Iterable[Any]) -> pa.Array:
    """One batch of a column; values of mixed kinds (SQLite's dynamic typing) become text."""
    values = list(values) if not isinstance(values, list | tuple) else values
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else label_text(v) for v in values], type=pa.string())


def _unify(chunks: list[pa.Array]) -> pa.ChunkedArray:
    """Batches whose inferred types differ (int then float, or an all-null batch) under one type."""
    types = {c.type for c in chunks if not pa.types.is_null(c.type)}
    if not types:
        return pa.chunked_array(chunks, type=pa.null())
    if len(types) == 1:
        target = types.pop()
    elif all(is_numeric_type(t) for t in types):
        target = pa.float64()
    else:
        target = pa.string()
    out = []
    for c in chunks:
        if c.type == target:
            out.append(c)
        elif target == pa.string() and not pa.types.is_null(c.type):
            out.append(pa.array([None if v is None else label_text(v) for v in c.to_pylist()], type=target))
        else:
            out.append(c.cast(target))
    return pa.chunked_array(out, type=target)


# ----------------------------------------------------------------------------------------- text


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__


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
