"""A Parquet file is loaded a column at a time: its bytes and its errors must be the whole table's.

Each case writes a table as Parquet (several row groups) and compares `load_local` with the
whole-table path (`read_table` + `prepare` + `encode_table`): the same encoded bytes, or the
same one-line DataError, including which problem is named first when a table has several.
"""

from __future__ import annotations

import decimal
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fedledger.data import fill
from fedledger.data.check import prepare
from fedledger.data.encode import encode_table, load_local
from fedledger.data.schema import Feature, TableSchema
from fedledger.data.sources import DataSource, read_table
from fedledger.errors import DataError

N = 2_000
SCHEMA = TableSchema(
    features=(
        Feature(name="income"),
        Feature(name="age"),
        Feature(name="region", type="categorical", vocabulary=("east", "north", "south", "west")),
        Feature(name="plan", type="categorical", vocabulary=("1", "2", "3")),
    ),
    label="default",
    classes=("no", "yes"),
)


def _table(n: int = N) -> dict[str, pa.Array]:
    rng = np.random.default_rng(11)
    return {
        "income": pa.array(rng.normal(2000, 500, n)),
        "age": pa.array(rng.integers(18, 90, n)),
        "region": pa.array(np.array(["east", "north", "south", "west"])[rng.integers(0, 4, n)]),
        "plan": pa.array(rng.integers(1, 4, n)),
        "default": pa.array(np.array(["no", "yes"])[rng.integers(0, 2, n)]),
        "unused": pa.array(np.arange(n)),
    }


def _with(**changes: object) -> pa.Table:
    cols = _table()
    for name, value in changes.items():
        if callable(value):
            cols[name] = value(cols[name])
        else:
            cols[name] = value  # type: ignore[assignment]
    return pa.table(cols)


def _set(rows: list[int], value: object, type: pa.DataType | None = None):  # type: ignore[no-untyped-def]
    def change(col: pa.Array) -> pa.Array:
        values = col.to_pylist()
        for r in rows:
            values[r] = value
        return pa.array(values, type=type or (None if value is None else col.type))

    return change


def _whole(src: DataSource, schema: TableSchema) -> tuple[bytes, bytes] | str:
    try:
        table = read_table(src, organisation="o", columns=list(schema.columns))
        prepare(table, schema, organisation="o", source=src.describe())
        x, y = encode_table(table, schema)
    except DataError as e:
        return str(e)
    return x.tobytes(), y.tobytes()


def _loaded(src: DataSource, schema: TableSchema) -> tuple[bytes, bytes] | str:
    try:
        local = load_local(src, schema, organisation="o")
    except DataError as e:
        return str(e)
    assert local.x.flags.c_contiguous and local.x.dtype == np.float32 and local.y.dtype == np.int64
    return local.x.tobytes(), local.y.tobytes()


CASES = {
    "clean": _with(),
    "NaN late in a numeric column": _with(income=_set([3, 1_999], float("nan"))),
    "inf": _with(income=_set([7], float("inf"))),
    "beyond float32": _with(income=_set([9], 1e39)),
    "null in a numeric column": _with(age=_set([100, 1_500], None)),
    "text in a numeric column": _with(age=lambda c: pa.array([str(v) for v in c.to_pylist()[:-1]] + ["old"])),
    "numbers as text": _with(age=lambda c: pa.array([f" {v} " for v in c.to_pylist()])),
    "a NaN and, in a later column, text: the type problem is named first": _with(
        income=_set([5], float("nan")), age=lambda c: pa.array(["x"] * len(c))
    ),
    "a category outside the vocabulary and a bad label: the category first": _with(
        region=_set([1_000], "mars"), default=_set([4], "maybe")
    ),
    "a null category": _with(region=_set([12], None)),
    "an integer category outside": _with(plan=_set([1_998], 9)),
    "a label outside the classes": _with(default=_set([0, 1, 2], "maybe")),
    "a null label": _with(default=_set([50], None)),
    "decimals": _with(income=lambda c: pa.array([decimal.Decimal(f"{v:.2f}") for v in c.to_pylist()])),
    "integers beyond 2^53": _with(age=lambda c: pa.array([2**60 + v for v in c.to_pylist()], pa.int64())),
    "float32 and int8 columns": _with(income=lambda c: c.cast(pa.float32()), age=lambda c: c.cast(pa.int8())),
    "a numeric column of nulls only": _with(age=pa.nulls(N)),
    "a boolean numeric column": _with(age=pa.array([True] * N)),
    "text categories as large strings": _with(region=lambda c: c.cast(pa.large_string())),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_parquet_file_loads_like_the_whole_table(tmp_path: Path, case: str) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(CASES[case], path, row_group_size=300)
    src = DataSource(str(path))
    assert _loaded(src, SCHEMA) == _whole(src, SCHEMA)


def test_every_row_group_and_block_is_encoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks smaller than a row group and row groups of odd sizes cross each other's edges."""
    monkeypatch.setattr(fill, "BLOCK_ROWS", 256)
    path = tmp_path / "t.parquet"
    pq.write_table(_with(), path, row_group_size=333)
    src = DataSource(str(path))
    local = load_local(src, SCHEMA, organisation="o")
    assert _whole(src, SCHEMA) == (local.x.tobytes(), local.y.tobytes())
    assert local.x.shape == (N, SCHEMA.encoded_width)
    assert (local.x[:, 2:6].sum(axis=1) == 1).all() and (local.x[:, 6:9].sum(axis=1) == 1).all()


def test_a_partition_key_comes_back_as_text(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_with(), path, row_group_size=500)
    local = load_local(DataSource(str(path)), SCHEMA, organisation="o", key="unused")
    assert local.groups is not None and list(local.groups[:3]) == ["0", "1", "2"]
    with pytest.raises(DataError, match=r"column 'unused' \(the partition key\): 1 of 2,000 rows are empty"):
        t = _with(unused=_set([9], None))
        pq.write_table(t, path)
        load_local(DataSource(str(path)), SCHEMA, organisation="o", key="unused")


def test_an_empty_or_truncated_parquet_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_with().slice(0, 0), path)
    with pytest.raises(DataError, match=r"^o \(t.parquet\): the source has no rows"):
        load_local(DataSource(str(path)), SCHEMA, organisation="o")
    pq.write_table(_with(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"^o \(t.parquet\): cannot read the Parquet file: "):
        load_local(DataSource(str(path)), SCHEMA, organisation="o")


def test_a_missing_column_is_named_before_anything_is_read(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_with().drop_columns(["plan"]), path)
    with pytest.raises(DataError, match=r"^o \(t.parquet\): column 'plan' is missing"):
        load_local(DataSource(str(path)), SCHEMA, organisation="o")


def test_a_failed_load_leaves_no_worker_thread(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_with(income=_set([1], float("nan"))), path)
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(DataError):
        load_local(DataSource(str(path)), SCHEMA, organisation="o")
    assert not [t.name for t in threading.enumerate() if t.name not in before and "parquet" in t.name]


def test_a_column_named_twice_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    t = _with()
    pq.write_table(pa.table([t.column("income"), *t.columns], names=["income", *t.column_names]), path)
    src = DataSource(str(path))
    line = "o (t.parquet): column 'income' appears 2 times in the file; give each column one name"
    assert _loaded(src, SCHEMA) == _whole(src, SCHEMA) == line


def test_float16_loads_like_the_whole_table(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_with(income=lambda c: c.cast(pa.float16())), path)
    src = DataSource(str(path))
    got = _loaded(src, SCHEMA)
    assert not isinstance(got, str) and got == _whole(src, SCHEMA)


def test_a_list_partition_key_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(_with(unused=pa.array([[i] for i in range(N)])), path)
    with pytest.raises(DataError, match=r"column 'unused' \(the partition key\) is list<element: int64>"):
        load_local(DataSource(str(path)), SCHEMA, organisation="o", key="unused")


def test_a_file_replaced_while_it_is_read_is_one_line(tmp_path: Path) -> None:
    from fedledger.data.parquet import _Reader

    path = tmp_path / "t.parquet"
    pq.write_table(_with(), path)
    with pytest.raises(DataError, match=r"^o \(t.parquet\): the file changed while it was being read"):
        _Reader(path, [], "o (t.parquet)", rows=N + 5).column("income")  # the row count read before
    with pytest.raises(DataError, match=r"the file changed while it was being read"):
        _Reader(path, [], "o (t.parquet)", rows=N).column("gone")
