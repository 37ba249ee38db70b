"""An organisation's rows from its database: SQLite through the standard library, the rest
through SQLAlchemy (PostgreSQL through psycopg 3).

SQLite URLs take a fast path (`sqlite3`, opened read-only, rows batched into Arrow arrays):
SQLAlchemy's row objects cost more than the reading itself. Every other URL goes through
SQLAlchemy with a streamed, server-side cursor. Either way only one batch of Python rows is
alive at a time, and every failure is one `DataError` line with no password in it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from fedledger.data.check import check_columns
from fedledger.data.columns import first_line, is_numeric_type, label_text
from fedledger.errors import DataError

#: rows fetched from a database cursor at a time (each batch becomes one Arrow table)
BATCH = 65_536


def sql_batches(source: str, query: str, cols: list[str], at: str) -> Iterator[pa.Table]:
    """A database query's rows as Arrow tables of up to BATCH rows; fails before the first on a
    wrong URL, database, password, query or column."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(source)
    except ArgumentError:
        raise DataError(
            f"{at}: not a database URL; write it as dialect://user@host:port/database, "
            "e.g. postgresql://alice@db.example:5432/claims or sqlite:///claims.db"
        ) from None
    query = query.strip().rstrip(";").strip()
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        return _sqlite_batches(url.database or "", query, cols, at)
    return _sqlalchemy_batches(url, query, cols, at)


def _select(query: str, cols: Sequence[str]) -> str:
    names = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
    return f"SELECT {names} FROM ({query}) AS fedledger_source"


def _probe(query: str) -> str:
    return f"SELECT * FROM ({query}) AS fedledger_source LIMIT 0"


def _sqlite_batches(database: str, query: str, cols: list[str], at: str) -> Iterator[pa.Table]:
    """Opens and probes at once (so a wrong path or query fails before any row), then streams."""
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
        raise DataError(f"{at}: cannot open the database: {first_line(e)}") from None

    def failed(e: sqlite3.Error) -> DataError:
        return DataError(f"{at}: the query failed: {first_line(e)}; check it with the sqlite3 shell")

    try:
        cur = conn.execute(_probe(query))
        names = [d[0] for d in cur.description]
        check_columns(names, cols, at=at)
        cur = conn.execute(_select(query, cols or names))
    except sqlite3.DatabaseError as e:
        conn.close()
        raise failed(e) from None
    except BaseException:
        conn.close()
        raise

    def stream() -> Iterator[pa.Table]:
        try:
            yield from rows_to_batches(cur.fetchmany, cols or names)
        except sqlite3.DatabaseError as e:
            raise failed(e) from None
        finally:
            conn.close()

    return stream()


def _sqlalchemy_batches(url: Any, query: str, cols: list[str], at: str) -> Iterator[pa.Table]:
    """Connects and probes at once (so a wrong URL, password or query fails before any row), then
    streams through a server-side cursor."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    secret = url.password or ""

    def scrub(e: BaseException) -> str:
        line = first_line(getattr(e, "orig", None) or e)
        return line.replace(str(secret), "***") if secret else line

    def failed(e: BaseException) -> DataError:
        return DataError(f"{at}: the query failed: {scrub(e)}; check it with the database's own client")

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
        try:
            if engine.dialect.paramstyle in ("format", "pyformat"):
                query = query.replace("%", "%%")  # the driver would read `id % 2` as a placeholder
            result = conn.exec_driver_sql(_probe(query))
            names = list(result.keys())
            result.close()
            check_columns(names, cols, at=at)
            result = conn.execution_options(stream_results=True, max_row_buffer=BATCH).exec_driver_sql(
                _select(query, cols or names)
            )
        except DBAPIError as e:
            conn.close()
            raise failed(e) from None
        except BaseException:
            conn.close()
            raise
    except BaseException:
        engine.dispose()
        raise

    def stream() -> Iterator[pa.Table]:
        try:
            yield from rows_to_batches(result.fetchmany, cols or names)
        except DBAPIError as e:
            raise failed(e) from None
        finally:
            conn.close()
            engine.dispose()

    return stream()


def rows_to_batches(
    fetch: Callable[[int], Sequence[Sequence[Any]]], names: Sequence[str]
) -> Iterator[pa.Table]:
    """Rows from a DB-API style `fetch(n)` as Arrow tables of up to BATCH rows each.

    Each batch is transposed once (zip) and each column becomes an Arrow array in one call, so
    the Python row objects of only one batch are alive at a time.
    """
    while True:
        batch = fetch(BATCH)
        if not batch:
            return
        columns = [_array(values) for values in zip(*batch, strict=True)]
        yield pa.table(columns, names=list(names))


def rows_to_table(fetch: Callable[[int], Sequence[Sequence[Any]]], names: Sequence[str]) -> pa.Table:
    """All of `rows_to_batches` as one table, each column's batches under one type (`_unify`)."""
    return concat(list(rows_to_batches(fetch, names)), list(names))


def concat(batches: list[pa.Table], names: list[str]) -> pa.Table:
    if not batches:
        return pa.table([pa.chunked_array([], type=pa.null()) for _ in names], names=names)
    names = batches[0].column_names
    columns = [_unify([c for b in batches for c in b.column(j).chunks]) for j in range(len(names))]
    return pa.table(columns, names=names)


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
