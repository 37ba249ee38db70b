"""An organisation's table in a real PostgreSQL server, read through SQLAlchemy and psycopg 3.

The rows must encode exactly as the same rows from Parquet; a wrong database URL, a wrong
password, an unreachable server and a failing query are each one exact line, and no
message carries the password.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from postgres import PostgresServer, _free_port, postgres  # noqa: F401

from fedledger.data.encode import load_local
from fedledger.data.schema import Feature, TableSchema
from fedledger.data.sources import DataSource, read_table
from fedledger.errors import DataError

N = 3_000
SCHEMA = TableSchema(
    features=(
        Feature(name="income"),
        Feature(name="age"),
        Feature(name="ratio"),
        Feature(name="region", type="categorical", vocabulary=("east", "north", "south")),
        Feature(name="grade", type="categorical", vocabulary=("1", "2", "3")),
    ),
    label="default",
    classes=("0", "1"),
)
QUERY = 'SELECT * FROM loans ORDER BY id'


@pytest.fixture(scope="module")
def loans(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:  # noqa: F811
    """A `loans` table in a fresh database, and the same rows as a Parquet file."""
    rng = np.random.default_rng(3)
    t = pa.table({
        "id": np.arange(N),
        "income": np.round(rng.normal(2000, 500, N), 2),
        "age": rng.integers(18, 90, N),
        "ratio": np.round(rng.random(N), 4),
        "region": np.array(["east", "north", "south"])[rng.integers(0, 3, N)],
        "grade": rng.integers(1, 4, N),
        "default": rng.integers(0, 2, N),
    })
    path = tmp_path_factory.mktemp("pg") / "loans.parquet"
    pq.write_table(t, path)
    url = postgres.create_database("claims")
    rows = ", ".join(
        f"({i}, {inc}, {a}, {r}, '{reg}', {g}, {d})"
        for i, inc, a, r, reg, g, d in zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True)
    )
    postgres.execute(
        'CREATE TABLE loans (id integer PRIMARY KEY, income double precision, age smallint, '
        'ratio numeric(6, 4), region text, grade integer, "default" integer, notes text)',
        f'INSERT INTO loans (id, income, age, ratio, region, grade, "default") VALUES {rows}',
        database="claims",
    )
    return url, path


def error(src: DataSource) -> str:
    with pytest.raises(DataError) as e:
        load_local(src, SCHEMA, organisation="org-02")
    text = str(e.value)
    assert "\n" not in text
    return text


def test_postgres_rows_encode_like_the_same_rows_from_parquet(loans: tuple[str, Path]) -> None:
    url, path = loans
    db = load_local(DataSource(url, QUERY), SCHEMA, organisation="org-02", key="region")
    ref = load_local(DataSource(str(path)), SCHEMA, organisation="org-02", key="region")
    assert db.x.shape == (N, SCHEMA.encoded_width)
    assert db.x.tobytes() == ref.x.tobytes()
    assert db.y.tobytes() == ref.y.tobytes()
    assert db.groups is not None and ref.groups is not None
    assert db.groups.tolist() == ref.groups.tolist()


def test_only_the_schemas_columns_are_fetched(loans: tuple[str, Path]) -> None:
    url, _ = loans
    t = read_table(DataSource(url, QUERY + ";"), organisation="org-02", columns=["region", "ratio"])
    assert t.column_names == ["region", "ratio"] and t.num_rows == N
    assert pa.types.is_decimal(t.column("ratio").type)  # numeric(6, 4) arrives as Decimal


def test_wrong_database_url(postgres: PostgresServer) -> None:  # noqa: F811
    url = postgres.url("no_such_db")
    assert error(DataSource(url, QUERY)) == (
        f"org-02 ({url}): cannot connect to the database: connection failed: connection to server at "
        f'"127.0.0.1", port {postgres.port} failed: FATAL:  database "no_such_db" does not exist'
    )


def test_unreachable_server() -> None:
    port = _free_port()
    url = f"postgresql://someone@127.0.0.1:{port}/claims"
    assert error(DataSource(url, QUERY)) == (
        f"org-02 ({url}): cannot connect to the database: connection failed: connection to server at "
        f'"127.0.0.1", port {port} failed: Connection refused'
    )


def test_wrong_password(postgres: PostgresServer, loans: tuple[str, Path]) -> None:  # noqa: F811
    right = postgres.password_url("correct-horse", database="claims")
    assert len(load_local(DataSource(right, QUERY), SCHEMA, organisation="org-02")) == N
    wrong = right.replace("correct-horse", "hunter2")
    bare = f"postgresql://fedledger_pw@127.0.0.1:{postgres.port}/claims"
    text = error(DataSource(wrong, QUERY))
    assert text == (
        f"org-02 ({bare}): cannot connect to the database: connection failed: connection to server at "
        f'"127.0.0.1", port {postgres.port} failed: FATAL:  password authentication failed for user '
        '"fedledger_pw"'
    )
    assert "hunter2" not in text


def test_failing_query(loans: tuple[str, Path]) -> None:
    url, _ = loans
    assert error(DataSource(url, "SELECT * FROM loan")) == (
        f'org-02 ({url}): the query failed: relation "loan" does not exist; '
        "check it with the database's own client"
    )
    assert error(DataSource(url, 'SELECT id, income, age, ratio, grade, "default" FROM loans')) == (
        f"org-02 ({url}): column 'region' is missing (the source has 'id', 'income', 'age', 'ratio', "
        "'grade', 'default'); "
        "rename the column in the source or query, or fix the job's schema"
    )


def test_a_null_in_the_database_is_named(postgres: PostgresServer, loans: tuple[str, Path]) -> None:  # noqa: F811
    url, _ = loans
    query = ('SELECT income, age, ratio, region, grade, "default", CASE WHEN id % 1000 = 0 THEN NULL '
             "ELSE income END AS inc FROM loans WHERE region LIKE '%' ORDER BY id")
    schema = SCHEMA.model_copy(update={"features": (Feature(name="inc"), *SCHEMA.features[1:])})
    with pytest.raises(DataError) as e:
        load_local(DataSource(url, query), schema, organisation="org-02")
    assert str(e.value) == (
        f"org-02 ({url}): column 'inc': 3 of 3,000 rows are empty (null); drop or impute them before training"
    )
