"""`load_local` streams a source batch by batch: the bytes and the errors must be the whole table's.

The batch sizes are shrunk here so a few thousand rows cross many CSV ranges, Parquet
batches and database fetches; each load is compared with encoding the whole table read
at once, and a check that fails in a later batch must still count the rows of all of them.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from fedledger.data import sources, sql
from fedledger.data.encode import encode_table, load_local
from fedledger.data.schema import Feature, TableSchema
from fedledger.data.sources import DataSource, read_batches, read_table
from fedledger.data.stream import line_ranges, prefetched
from fedledger.errors import DataError

N = 3_000
SCHEMA = TableSchema(
    features=(
        Feature(name="income"),
        Feature(name="age"),
        Feature(name="region", type="categorical", vocabulary=("east", "north", "south", "west")),
    ),
    label="default",
    classes=("no", "yes"),
)


def _table(n: int = N) -> pa.Table:
    rng = np.random.default_rng(7)
    return pa.table({
        "income": rng.normal(2000, 500, n),
        "age": rng.integers(18, 90, n),
        "region": np.array(["east", "north", "south", "west"])[rng.integers(0, 4, n)],
        "default": np.array(["no", "yes"])[rng.integers(0, 2, n)],
        "unused": np.arange(n),
    })  # fmt: skip


def _write(tmp: Path, t: pa.Table) -> dict[str, DataSource]:
    pa_csv.write_csv(t, tmp / "t.csv")
    pq.write_table(t, tmp / "t.parquet", row_group_size=1_000)
    with sqlite3.connect(tmp / "t.db") as con:
        con.execute('CREATE TABLE t (income REAL, age INTEGER, region TEXT, "default" TEXT, unused INTEGER)')
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", zip(*t.to_pydict().values(), strict=True))
    return {
        "csv": DataSource(str(tmp / "t.csv")),
        "parquet": DataSource(str(tmp / "t.parquet")),
        "sqlite": DataSource(f"sqlite:///{tmp / 't.db'}", "SELECT * FROM t ORDER BY rowid"),
    }


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "CSV_RANGE", 4_096)  # ~80 rows a range
    monkeypatch.setattr(sources, "PARQUET_BATCH", 256)
    monkeypatch.setattr(sql, "BATCH", 256)  # database fetches


@pytest.mark.parametrize("kind", ["csv", "parquet", "sqlite"])
def test_streamed_loads_equal_the_whole_table_bytes(tmp_path: Path, small_batches: None, kind: str) -> None:
    src = _write(tmp_path, _table())[kind]
    batches = list(read_batches(src, organisation="o", columns=list(SCHEMA.columns)))
    assert len(batches) > 10 and sum(b.num_rows for b in batches) == N
    x, y = encode_table(read_table(src, organisation="o", columns=list(SCHEMA.columns)), SCHEMA)
    local = load_local(src, SCHEMA, organisation="o")
    assert local.x.shape == (N, SCHEMA.encoded_width) and local.x.flags.c_contiguous
    assert local.x.tobytes() == x.tobytes() and local.y.tobytes() == y.tobytes()


def test_csv_ranges_end_at_line_ends_and_cover_the_file(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pa_csv.write_csv(_table(), path)
    ranges = line_ranges(path, 4_096)
    data = path.read_bytes()
    assert ranges[0][0] == data.index(b"\n") + 1  # after the header
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert ranges[-1][1] == len(data)
    assert all(data[end - 1 : end] == b"\n" for _, end in ranges)


def test_a_problem_in_a_later_batch_counts_every_batchs_rows(tmp_path: Path, small_batches: None) -> None:
    t = _table()
    income = t.column("income").to_numpy().copy()
    income[[5, 2_500, 2_900]] = np.nan  # the first batch, and two late ones
    t = t.set_column(0, "income", pa.array(income))
    for kind, src in _write(tmp_path, t).items():
        with pytest.raises(DataError) as e:
            load_local(src, SCHEMA, organisation="o")
        what = "NaN or inf" if kind == "parquet" else "empty (null)"  # CSV and SQLite store NaN as null
        assert f"column 'income': 3 of {N:,} rows are {what}" in str(e.value)


def test_a_category_outside_the_vocabulary_late_in_the_file(tmp_path: Path, small_batches: None) -> None:
    t = _table()
    region = t.column("region").to_pylist()
    region[2_999] = "mars"
    t = t.set_column(2, "region", pa.array(region))
    with pytest.raises(DataError) as e:
        load_local(_write(tmp_path, t)["csv"], SCHEMA, organisation="o")
    assert f"1 of {N:,} rows have a category outside the vocabulary, e.g. 'mars'" in str(e.value)


def test_a_column_whose_kind_changes_between_ranges_loads_like_the_whole(
    tmp_path: Path, small_batches: None
) -> None:
    """Integers for the first ranges, decimals later: each range infers its own type."""
    t = _table()
    age = t.column("age").to_numpy().astype(np.float64)
    age[2_000:] += 0.5
    t = t.set_column(1, "age", pa.array(age))
    src = _write(tmp_path, t)["csv"]
    x, _ = encode_table(read_table(src, organisation="o", columns=list(SCHEMA.columns)), SCHEMA)
    assert load_local(src, SCHEMA, organisation="o").x.tobytes() == x.tobytes()


def test_an_empty_table_with_a_header_is_refused(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("income,age,region,default\n")
    with pytest.raises(DataError, match="the source has no rows"):
        load_local(DataSource(str(tmp_path / "e.csv")), SCHEMA, organisation="o")


def test_prefetched_passes_errors_and_stops_its_reader_when_the_caller_stops() -> None:
    made: list[int] = []

    def tables():  # type: ignore[no-untyped-def]
        for i in range(1_000):
            made.append(i)
            yield pa.table({"i": [i]})

    it = prefetched(tables())
    assert next(it).column("i")[0].as_py() == 0
    it.close()  # the caller gives up (a failed check): the reader must not run on
    time.sleep(0.3)
    assert len(made) <= 3
    assert not any(t.name == "fedledger-read" for t in threading.enumerate())

    def failing():  # type: ignore[no-untyped-def]
        yield pa.table({"i": [1]})
        raise DataError("o (t.csv): cannot read the CSV file: boom")

    got = prefetched(failing())
    next(got)
    with pytest.raises(DataError, match="boom"):
        next(got)


@pytest.mark.parametrize(
    "values",
    [
        pa.array([-100, 100, 0, 5, 3], pa.int8()),  # max - min overflows int8
        pa.array([2**64 - 1, 2**64 - 2, 7], pa.uint64()),  # beyond int64: the hashing path
        pa.array([1, None, 2, 9], pa.int32()),  # a null: the hashing path
        pa.array([0, 70_000, 1], pa.int64()),  # a span too wide for a lookup table
        pa.array([3, 3, 4], pa.int16()),
    ],
)
def test_integer_categories_code_like_their_dictionary(values: pa.Array) -> None:
    """The lookup-table path for integer columns gives the codes hashing gives, value for value."""
    from fedledger.data.columns import category_codes

    vocabulary = ("-100", "100", "5", "1", "0", "3", "18446744073709551615")
    fast = category_codes(pa.chunked_array([values]), vocabulary)
    hashed = category_codes(pa.chunked_array([values.dictionary_encode()]), vocabulary)
    assert fast.codes.tolist() == hashed.codes.tolist()
    assert (fast.nulls, fast.outside) == (hashed.nulls, hashed.outside)


def test_csv_text_arrives_dictionary_encoded_and_loads_like_the_whole(
    tmp_path: Path, small_batches: None
) -> None:
    src = _write(tmp_path, _table())["csv"]
    batches = list(read_batches(src, organisation="a", columns=["region", "default", "age"]))
    assert len(batches) > 10
    assert all(pa.types.is_dictionary(b.column("region").type) for b in batches)
    assert pa.types.is_integer(batches[0].column("age").type)  # numbers stay numbers
    got = load_local(src, SCHEMA, organisation="a")
    x, y = encode_table(read_table(src, organisation="a", columns=list(SCHEMA.columns)), SCHEMA)
    assert got.x.tobytes() == x.tobytes() and got.y.tobytes() == y.tobytes()


def test_a_csv_line_estimate_is_close_and_errs_high(tmp_path: Path) -> None:
    from fedledger.data.stream import estimate_lines

    pa_csv.write_csv(_table(20_000), tmp_path / "t.csv")
    estimate = estimate_lines(tmp_path / "t.csv", sample=1 << 14)
    assert 20_001 <= estimate <= 20_001 * 1.15
    (tmp_path / "one.csv").write_text("a,b\n1,2\n")
    assert estimate_lines(tmp_path / "one.csv") == 2
