"""Attacks on streamed loading, openings and a node's restart: what a careless user or an adversary hands in.

Every streamed load is compared byte for byte (or message for message) with the whole table read
at once and checked by `prepare`, with the batches shrunk so a few dozen rows cross many CSV
ranges, Parquet batches and database fetches.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fedledger.data import sources, sql
from fedledger.data.check import prepare
from fedledger.data.commitment import Opening, schema_hash
from fedledger.data.encode import LocalData, encode_table, load_local
from fedledger.data.schema import Feature, TableSchema
from fedledger.data.sources import DataSource, read_table
from fedledger.data.stream import line_ranges, prefetched
from fedledger.errors import DataError
from fedledger.roles.data_commitment import make_opening, node_opening
from fedledger.spec import JobSpec

SCHEMA = TableSchema(
    features=(Feature(name="v"), Feature(name="c", type="categorical", vocabulary=("p", "q\nr", "s"))),
    label="y",
    classes=("a", "b"),
)
PLAIN = TableSchema(features=(Feature(name="v"),), label="y", classes=("a", "b"))


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "CSV_RANGE", 40)  # two or three rows a range
    monkeypatch.setattr(sources, "PARQUET_BATCH", 7)
    monkeypatch.setattr(sql, "BATCH", 7)


def _whole(src: DataSource, schema: TableSchema) -> tuple[bytes, bytes] | str:
    """What the whole-table path gives: the encoded bytes, or the DataError's line."""
    try:
        table = read_table(src, organisation="o", columns=list(schema.columns))
        prepare(table, schema, organisation="o", source=src.describe())
        x, y = encode_table(table, schema)
    except DataError as e:
        return str(e)
    return x.tobytes(), y.tobytes()


def _streamed(src: DataSource, schema: TableSchema) -> tuple[bytes, bytes] | str:
    try:
        local = load_local(src, schema, organisation="o")
    except DataError as e:
        return str(e)
    return local.x.tobytes(), local.y.tobytes()


def _rows(n: int = 30, newline: str = "\n") -> str:
    return "".join(f"{i},{'ab'[i % 2]}{newline}" for i in range(n))


CSV_SHAPES = {
    "cr-only line ends": b"v,y\r" + _rows(newline="\r").encode(),
    "crlf": b"v,y\r\n" + _rows(newline="\r\n").encode(),
    "mixed line ends": b"v,y\r\n" + (_rows(10) + _rows(10, "\r") + _rows(10, "\r\n")).encode(),
    "byte order mark": b"\xef\xbb\xbfv,y\n" + _rows().encode(),
    "no trailing newline": b"v,y\n" + _rows().rstrip("\n").encode(),
    "cr-only, no trailing cr": b"v,y\r" + _rows(newline="\r").rstrip("\r").encode(),
    "blank lines": b"v,y\n" + _rows().replace("\n", "\n\n\n").encode(),
    "trailing blank lines": b"v,y\n" + _rows().encode() + b"\n" * 300,
    "one huge line": b"v,y\n1," + b"a" * 5_000 + b"\n" + _rows().encode(),
    "header only": b"v,y\n",
    "header only, no newline": b"v,y",
    "quoted header": b'"v","y"\n' + _rows().encode(),
    "padded numbers": b"v,y\n" + "".join(f" {i} ,{'ab'[i % 2]}\n" for i in range(30)).encode(),
    "ints then decimals": b"v,y\n" + (_rows(15) + "".join(f"{i}.5,a\n" for i in range(15))).encode(),
    "a range all null": b"v,y\n" + (_rows(15) + ",a\n" * 15).encode(),
}


@pytest.mark.parametrize("shape", CSV_SHAPES)
def test_csv_shapes_stream_like_the_whole_table(tmp_path: Path, small_batches: None, shape: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(CSV_SHAPES[shape])
    src = DataSource(str(path))
    whole = _whole(src, PLAIN)
    assert _streamed(src, PLAIN) == whole
    if shape == "header only":
        assert whole == "o (t.csv): the source has no rows; point it at a table or query that yields data"


def test_a_cr_only_csv_was_read_as_a_header_without_rows(tmp_path: Path, small_batches: None) -> None:
    """Fixed in stream.py: cutting at "\\n" only saw the whole file as its header line."""
    path = tmp_path / "mac.csv"
    path.write_bytes(CSV_SHAPES["cr-only line ends"])
    local = load_local(DataSource(str(path)), PLAIN, organisation="o")
    assert len(local) == 30 and local.x[:, 0].tolist() == list(range(30))


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_line_ranges_end_at_every_kind_of_line_end(tmp_path: Path, newline: str, size: int) -> None:
    """Every cut, including one between the "\\r" and "\\n" of a CRLF, ends after a whole line end."""
    path = tmp_path / "t.csv"
    data = ("v,y" + newline + _rows(12, newline)).encode()
    path.write_bytes(data)
    ranges = line_ranges(path, size)
    assert ranges[0][0] == len(("v,y" + newline).encode())
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    assert ranges[-1][1] == len(data)
    nl = newline.encode()
    assert all(data[:end].endswith(nl) for _, end in ranges)


def test_quoted_newlines_in_values_stream_like_the_whole_table(tmp_path: Path, small_batches: None) -> None:
    """A range cut inside a quoted value fails its parse; the load falls back to the whole file."""
    rows = "".join(f'{i},"q\nr",a\n' if i % 3 == 0 else f"{i},s,b\n" for i in range(30))
    path = tmp_path / "t.csv"
    path.write_text("v,c,y\n" + rows)
    src = DataSource(str(path))
    whole = _whole(src, SCHEMA)
    assert isinstance(whole, tuple)
    assert _streamed(src, SCHEMA) == whole


@pytest.mark.parametrize("kind", ["csv", "sqlite"])
def test_integers_beyond_2_53_encode_like_the_whole_table(
    tmp_path: Path, small_batches: None, kind: str
) -> None:
    big = 2**60 + 2**36 + 1  # float32 of it directly is 2^60 + 2^37; through float64 it is 2^60
    rows = [(big, "a")] * 10 + [(1.5, "b")] * 10  # the first ranges infer int64, the whole float64
    if kind == "csv":
        path = tmp_path / "t.csv"
        path.write_text("v,y\n" + "".join(f"{v},{y}\n" for v, y in rows))
        src = DataSource(str(path))
    else:
        with sqlite3.connect(tmp_path / "t.db") as con:
            con.execute("CREATE TABLE t (v, y)")
            con.executemany("INSERT INTO t VALUES (?, ?)", rows)
        src = DataSource(f"sqlite:///{tmp_path / 't.db'}", "SELECT * FROM t ORDER BY rowid")
    assert _streamed(src, PLAIN) == _whole(src, PLAIN)


# ------------------------------------------------------------------------------------- openings


def _opening_json() -> dict[str, object]:
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    y = np.array([0, 1, 0])
    spec = JobSpec(data_schema=PLAIN, dataset="own", model="logreg")
    opening = make_opening(
        LocalData(x=x, y=y), spec, organisation="bank", source=DataSource("b.csv"), salt=b"\x01" * 32
    )
    return dict(json.loads(opening.to_json()))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("salt", "0x" + "01" * 31, "opening has a malformed field: commitment '0x0101"),
        ("rows", -1, "opening has a malformed field: rows must be in 1..2^64-1, got -1"),
        ("rows", 0, "rows must be in 1..2^64-1, got 0"),
        ("rows", 2**64, "rows must be in 1..2^64-1"),
        ("rows", "6e1", "opening has a malformed field: rows must be a whole number, got '6e1'"),
        ("rows", None, "opening has a malformed field"),
        ("format", "fedledger-data-opening/2", "not a data opening: expected an object with format"),
        ("organisation", 7, "opening: organisation, source and query must be text"),
        ("root", "0x" + "zz" * 32, "is not hexadecimal"),
    ],
)
def test_a_hand_edited_opening_is_a_one_line_error(field: str, value: object, message: str) -> None:
    data = _opening_json()
    data[field] = value
    with pytest.raises(DataError) as e:
        Opening.from_json(json.dumps(data))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_truncated_or_listed_opening_is_refused() -> None:
    text = json.dumps(_opening_json())
    with pytest.raises(DataError, match=r"opening is not valid JSON .*: was the file truncated"):
        Opening.from_json(text[: len(text) // 2])
    with pytest.raises(DataError, match="not a data opening"):
        Opening.from_json("[]")


@pytest.mark.parametrize("rows", [3.9, True, "3"])
def test_rows_that_are_not_a_whole_number_are_refused(rows: object) -> None:
    data = _opening_json()
    data["rows"] = rows
    with pytest.raises(DataError, match="rows"):
        Opening.from_json(json.dumps(data))


# ----------------------------------------------------------------------------- a node's restart


def _local(n: int = 5, shift: float = 0.0) -> LocalData:
    x = (np.arange(n, dtype=np.float32) + shift).reshape(n, 1)
    return LocalData(x=x, y=np.arange(n, dtype=np.int64) % 2)


def _spec(schema: TableSchema = PLAIN) -> JobSpec:
    return JobSpec(data_schema=schema, dataset="own", model="logreg")


def test_a_restart_reuses_the_opening_it_wrote(tmp_path: Path) -> None:
    path, src = tmp_path / "n.opening.json", DataSource("b.csv")
    first = node_opening(path, _local(), _spec(), organisation="bank", source=src)
    again = node_opening(path, _local(), _spec(), organisation="bank", source=src)
    assert again == first and path.stat().st_mode & 0o777 == 0o600


def test_a_restart_on_changed_rows_is_refused(tmp_path: Path) -> None:
    path, src = tmp_path / "n.opening.json", DataSource("/data/b.csv")
    node_opening(path, _local(), _spec(), organisation="bank", source=src)
    with pytest.raises(DataError) as e:
        node_opening(path, _local(shift=1.0), _spec(), organisation="bank", source=src)
    assert str(e.value) == (
        f"bank: b.csv no longer matches the data this node committed to (root differs from the opening "
        f"{path}): restore the source, or join another job with the new data"
    )


def test_another_jobs_opening_is_named_as_such_not_as_changed_data(tmp_path: Path) -> None:
    """Fixed in roles/data_commitment.py: it said the source "no longer matches" (schema differ)."""
    path, src = tmp_path / "n.opening.json", DataSource("b.csv")
    node_opening(path, _local(), _spec(), organisation="bank", source=src)
    other = TableSchema(features=(Feature(name="w"),), label="y", classes=("a", "b"))
    with pytest.raises(DataError) as e:
        node_opening(path, _local(), _spec(other), organisation="bank", source=src)
    assert str(e.value) == (
        f"bank: the opening {path} commits under another data schema than this job's (it is another "
        "job's opening): point [data] opening at this job's, or move the file away to commit afresh"
    )


def test_another_organisations_opening_says_whose_it_is(tmp_path: Path) -> None:
    path, src = tmp_path / "n.opening.json", DataSource("b.csv")
    node_opening(path, _local(), _spec(), organisation="bank", source=src)
    with pytest.raises(DataError, match=r"from the opening .*, which is bank's, not insurer's\)"):
        node_opening(path, _local(shift=2.0), _spec(), organisation="insurer", source=src)


def test_an_opening_path_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        node_opening(tmp_path, _local(), _spec(), organisation="bank", source=DataSource("b.csv"))
    assert str(e.value) == f"cannot read the opening {tmp_path}: Is a directory"


def test_a_database_password_stays_out_of_the_opening_and_its_errors(tmp_path: Path) -> None:
    """Fixed in roles/data_commitment.py: the opening (handed to an auditor) and the restart's
    error carried the URL's password."""
    src = DataSource("postgresql://alice:s3cret@db.example:5432/claims", "SELECT * FROM t")
    path = tmp_path / "n.opening.json"
    opening = node_opening(path, _local(), _spec(), organisation="bank", source=src)
    assert "s3cret" not in path.read_text() and opening.source == "postgresql://alice@db.example:5432/claims"
    with pytest.raises(DataError) as e:
        node_opening(path, _local(shift=1.0), _spec(), organisation="bank", source=src)
    assert "s3cret" not in str(e.value) and "alice@db.example" in str(e.value)


def test_opening_schema_hash_is_the_jobs() -> None:
    data = _opening_json()
    assert data["schema_hash"] == "0x" + schema_hash(PLAIN).hex()


# ---------------------------------------------------------------------------------- prefetched


def _tables(n: int, *, fail_at: int = -1, exc: type[BaseException] = RuntimeError) -> Iterator[pa.Table]:
    for i in range(n):
        if i == fail_at:
            raise exc("the reader failed")
        yield pa.table({"a": [i]})


def _reader_threads() -> int:
    return sum(t.name == "fedledger-read" for t in threading.enumerate())


@pytest.mark.parametrize("exc", [RuntimeError, DataError, KeyboardInterrupt])
def test_a_reader_failure_reaches_the_caller_and_leaves_no_thread(exc: type[BaseException]) -> None:
    got = []
    with pytest.raises(exc, match="the reader failed"):
        for t in prefetched(_tables(10, fail_at=4, exc=exc)):
            got.append(t.column("a")[0].as_py())
    assert got == [0, 1, 2, 3] and _reader_threads() == 0


def test_a_caller_that_stops_early_stops_the_reader() -> None:
    stream = prefetched(_tables(1_000))
    assert next(stream).num_rows == 1
    stream.close()
    assert _reader_threads() == 0
    abandoned = prefetched(_tables(1_000))
    next(abandoned)
    del abandoned  # dropped without close: the generator's finally still stops the reader
    time.sleep(0.05)
    assert _reader_threads() == 0


def test_a_failing_check_in_the_caller_stops_the_reader() -> None:
    def consume() -> None:
        for _ in prefetched(_tables(1_000)):
            raise ValueError("a check failed")

    with pytest.raises(ValueError, match="a check failed"):
        consume()
    assert _reader_threads() == 0


# ------------------------------------------------------------------ more bugs outside these files


def test_a_partition_key_reads_the_same_text_in_every_range(tmp_path: Path, small_batches: None) -> None:
    path = tmp_path / "branches.csv"
    path.write_text(
        "v,branch,y\n"
        + "".join(f"{i},0{1 + i % 2},a\n" for i in range(20))
        + "".join(f"{i},A{i % 2},b\n" for i in range(20))
    )
    local = load_local(DataSource(str(path)), PLAIN, organisation="o", key="branch")
    assert local.groups is not None
    assert sorted(set(local.groups.tolist())) == ["01", "02", "A0", "A1"]


def test_data_commit_keeps_a_database_password_out_of_the_opening(monkeypatch: pytest.MonkeyPatch) -> None:
    from fedledger.data import commitment, encode

    monkeypatch.setattr(encode, "load_local", lambda *a, **k: _local())
    src = DataSource("postgresql://alice:s3cret@db.example:5432/claims", "SELECT * FROM t")
    opening = commitment.commit_source(src, PLAIN, organisation="bank")
    assert "s3cret" not in opening.to_json()


def test_an_error_line_quotes_a_huge_value_shortened(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(CSV_SHAPES["one huge line"])
    with pytest.raises(DataError) as e:
        load_local(DataSource(str(path)), PLAIN, organisation="o")
    assert "have a label outside the classes" in str(e.value) and len(str(e.value)) < 400


def test_a_file_that_is_not_utf8_is_named_as_such(tmp_path: Path, small_batches: None) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(
        b"v,y\n" + _rows(20).encode() + "".join(f"{i},\xe9\n" for i in range(10)).encode("latin-1")
    )
    with pytest.raises(DataError) as e:
        load_local(DataSource(str(path)), PLAIN, organisation="o")
    assert "UTF-8" in str(e.value)


def test_a_value_beyond_float32_is_one_line_without_a_warning(tmp_path: Path, small_batches: None) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"v,y\n" + _rows(20).encode() + b"1e39,a\n" + _rows(5).encode())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match="beyond float32's range"):
            load_local(DataSource(str(path)), PLAIN, organisation="o")
    assert not [w for w in seen if issubclass(w.category, RuntimeWarning)]
