"""Reading an organisation's own files and SQLite databases, image folders, and schema inference.

The same rows from CSV, Parquet and SQLite must encode to identical bytes (the dataset
commitment depends on it); every unreadable source is one exact line of DataError.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fedledger.data.encode import infer_image_schema, infer_schema, load_local, read_images
from fedledger.data.schema import Feature, ImageSchema, TableSchema
from fedledger.data.sources import DataSource, read_table
from fedledger.errors import DataError

ROWS = pa.table({
    "income": [1200.5, 830.0, 4100.25, 990.0, 2300.0, 1500.75],
    "age": [31, 45, 28, 60, 39, 52],
    "region": ["north", "south", "east", "north", "south", "east"],
    "branch": ["b1", "b2", "b1", "b3", "b2", "b1"],
    "default": [0, 1, 0, 0, 1, 1],
})
SCHEMA = TableSchema(
    features=(
        Feature(name="income"),
        Feature(name="age"),
        Feature(name="region", type="categorical", vocabulary=("east", "north", "south")),
    ),
    label="default",
    classes=("0", "1"),
)


def write_all(tmp: Path, t: pa.Table = ROWS) -> dict[str, DataSource]:
    pa_csv.write_csv(t, tmp / "rows.csv")
    pq.write_table(t, tmp / "rows.parquet", row_group_size=4)  # two row groups: chunked columns
    con = sqlite3.connect(tmp / "rows.db")
    con.execute("CREATE TABLE loans (income REAL, age INTEGER, region TEXT, branch TEXT, "
                '"default" INTEGER, extra BLOB)')
    values = zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True)
    con.executemany("INSERT INTO loans VALUES (?, ?, ?, ?, ?, x'00')", values)
    con.commit()
    con.close()
    return {
        "csv": DataSource(str(tmp / "rows.csv")),
        "parquet": DataSource(str(tmp / "rows.parquet")),
        "sqlite": DataSource(f"sqlite:///{tmp / 'rows.db'}", "SELECT * FROM loans ORDER BY rowid;"),
    }


def error(src: DataSource, schema: TableSchema | ImageSchema = SCHEMA) -> str:
    with pytest.raises(DataError) as e:
        load_local(src, schema, organisation="org-07")
    text = str(e.value)
    assert "\n" not in text
    return text


def test_csv_parquet_and_sqlite_encode_to_identical_bytes(tmp_path: Path) -> None:
    sources = write_all(tmp_path)
    loaded = {k: load_local(s, SCHEMA, organisation="org-07", key="branch") for k, s in sources.items()}
    x, y = loaded["csv"].x, loaded["csv"].y
    assert x.shape == (6, 5) and x.dtype == np.float32 and y.dtype == np.int64
    assert x[0].tolist() == [1200.5, 31.0, 0.0, 1.0, 0.0]  # not standardised; region north
    assert y.tolist() == [0, 1, 0, 0, 1, 1]
    for k, d in loaded.items():
        assert d.x.tobytes() == x.tobytes(), k
        assert d.y.tobytes() == y.tobytes(), k
        assert d.groups is not None and d.groups.tolist() == ["b1", "b2", "b1", "b3", "b2", "b1"], k


def test_large_tables_encode_the_same_across_blocks_and_chunks(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 20_000  # more than one encoding block and several Parquet row groups
    t = pa.table({
        "income": rng.normal(size=n), "age": rng.integers(18, 90, n),
        "region": np.array(["east", "north", "south"])[rng.integers(0, 3, n)],
        "default": rng.integers(0, 2, n),
    })
    pq.write_table(t, tmp_path / "big.parquet", row_group_size=3_000)
    d = load_local(DataSource(str(tmp_path / "big.parquet")), SCHEMA, organisation="o")
    region = t.column("region").to_numpy(zero_copy_only=False)
    assert np.array_equal(d.x[:, 0], t.column("income").to_numpy().astype(np.float32))
    assert np.array_equal(d.x[:, 2:].argmax(1), np.searchsorted(["east", "north", "south"], region))
    assert d.x[:, 2:].sum() == n
    assert np.array_equal(d.y, t.column("default").to_numpy())


def test_read_table_reads_only_the_columns_asked_for(tmp_path: Path) -> None:
    for src in write_all(tmp_path).values():
        t = read_table(src, organisation="org-07", columns=["region", "age"])
        assert t.column_names == ["region", "age"]
        assert read_table(src, organisation="org-07", columns=()).num_rows == 6


def test_describe_hides_the_password() -> None:
    assert DataSource("/data/claims.csv").describe() == "claims.csv"
    assert DataSource("postgresql://alice:s3cret@db:5432/claims", "SELECT 1").describe() == (
        "postgresql://alice@db:5432/claims"
    )
    assert DataSource("sqlite:///x.db", "SELECT 1").describe() == "sqlite:///x.db"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert error(DataSource(str(path))) == (
        f"org-07 (nope.csv): file '{path}' does not exist; check the data source path"
    )


def test_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "rows.xlsx").write_bytes(b"PK")
    assert error(DataSource(str(tmp_path / "rows.xlsx"))) == (
        "org-07 (rows.xlsx): unknown data format '.xlsx'; use a .csv, .parquet or .pq file, "
        "an image folder or a database URL"
    )


def test_unreadable_csv(tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text("income,age,region,default\n1,2,north,0\n3,4\n")
    assert error(DataSource(str(tmp_path / "rows.csv"))) == (
        "org-07 (rows.csv): cannot read the CSV file: CSV parse error: Expected 4 columns, got 2: 3,4"
    )


def test_corrupt_parquet(tmp_path: Path) -> None:
    write_all(tmp_path)
    good = (tmp_path / "rows.parquet").read_bytes()
    (tmp_path / "bad.parquet").write_bytes(good[: len(good) // 2])
    assert error(DataSource(str(tmp_path / "bad.parquet"))) == (
        "org-07 (bad.parquet): cannot read the Parquet file: Parquet magic bytes not found in footer. "
        "Either the file is corrupted or this is not a parquet file."
    )


def test_missing_column_in_a_file(tmp_path: Path) -> None:
    pq.write_table(ROWS.drop_columns(["age"]), tmp_path / "rows.parquet")
    pa_csv.write_csv(ROWS.drop_columns(["age"]), tmp_path / "rows.csv")
    for name in ("rows.parquet", "rows.csv"):
        assert error(DataSource(str(tmp_path / name))) == (
            f"org-07 ({name}): column 'age' is missing (the source has 'income', 'region', 'branch', "
            "'default'); rename the column in the source or query, or fix the job's schema"
        )


def test_empty_file(tmp_path: Path) -> None:
    pq.write_table(ROWS.slice(0, 0), tmp_path / "rows.parquet")
    assert error(DataSource(str(tmp_path / "rows.parquet"))) == (
        "org-07 (rows.parquet): the source has no rows; point it at a table or query that yields data"
    )


def test_query_only_for_databases(tmp_path: Path) -> None:
    src = write_all(tmp_path)["csv"]
    assert error(DataSource(src.source, "SELECT 1")) == (
        "org-07 (rows.csv): a query is only for database URLs; remove it for a file source"
    )
    assert error(DataSource("sqlite:///x.db")) == (
        "org-07 (sqlite:///x.db): a database source needs a query (the SELECT that yields the rows)"
    )


def test_wrong_sqlite_path(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nope.db'}"
    assert error(DataSource(url, "SELECT * FROM loans")) == (
        f"org-07 ({url}): database file '{tmp_path / 'nope.db'}' does not exist; check the path in the URL "
        "(sqlite:///relative.db or sqlite:////absolute/path.db)"
    )
    assert not (tmp_path / "nope.db").exists()  # never created by looking


def test_wrong_url() -> None:
    assert error(DataSource("not a url://", "SELECT 1")) == (
        "org-07 (not a url://): not a database URL; write it as dialect://user@host:port/database, "
        "e.g. postgresql://alice@db.example:5432/claims or sqlite:///claims.db"
    )
    assert error(DataSource("nosuchdb://u@h/db", "SELECT 1")) == (
        "org-07 (nosuchdb://u@h/db): unsupported database URL (Can't load plugin: "
        "sqlalchemy.dialects:nosuchdb); use postgresql:// or sqlite:///"
    )


def test_failing_sqlite_query(tmp_path: Path) -> None:
    src = write_all(tmp_path)["sqlite"]
    assert error(DataSource(src.source, "SELECT * FROM loan")) == (
        f"org-07 ({src.source}): the query failed: no such table: loan; check it with the sqlite3 shell"
    )
    assert error(DataSource(src.source, "SELECT income, region, \"default\" FROM loans")) == (
        f"org-07 ({src.source}): column 'age' is missing (the source has 'income', 'region', 'default'); "
        "rename the column in the source or query, or fix the job's schema"
    )


def test_sqlite_columns_of_mixed_kinds_become_text(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "m.db")
    con.execute("CREATE TABLE t (v, y INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(1, 0), ("n.a.", 1), (2.5, 0)])
    con.commit()
    con.close()
    t = read_table(DataSource(f"sqlite:///{tmp_path / 'm.db'}", "SELECT * FROM t"),
                   organisation="o", columns=["v", "y"])
    assert t.column("v").to_pylist() == ["1", "n.a.", "2.5"]


# ------------------------------------------------------------------------------------- images


def image_folder(root: Path, *, mode: str = "L", size: tuple[int, int] = (6, 4)) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / cls / f"{i}.png")
    return root


def test_image_folder_loads_in_sorted_order_scaled_to_unit(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs")
    schema = infer_image_schema(root)
    assert schema == ImageSchema(height=4, width=6, channels=1, classes=("cat", "dog"))
    d = load_local(DataSource(str(root)), schema, organisation="org-07")
    assert d.x.shape == (6, 1, 4, 6) and d.x.dtype == np.float32 and d.groups is None
    assert d.y.tolist() == [0, 0, 0, 1, 1, 1]
    first = np.asarray(Image.open(root / "cat" / "0.png"), dtype=np.float32) / np.float32(255)
    assert np.array_equal(d.x[0, 0], first)


def test_images_are_resized_and_converted(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs", mode="RGB", size=(10, 8))
    assert infer_image_schema(root).channels == 3
    grey = ImageSchema(height=5, width=7, channels=1, classes=("cat", "dog"))
    x, _ = read_images(DataSource(str(root)), grey, organisation="org-07")
    assert x.shape == (6, 1, 5, 7) and x.min() >= 0.0 and x.max() <= 1.0
    rgb = ImageSchema(height=8, width=10, channels=3, classes=("dog", "cat"))
    x3, y3 = read_images(DataSource(str(root)), rgb, organisation="org-07")
    assert x3.shape == (6, 3, 8, 10) and y3.tolist() == [1, 1, 1, 0, 0, 0]  # classes in schema order
    assert np.array_equal(x3[0].transpose(1, 2, 0) * 255, np.asarray(Image.open(root / "cat" / "0.png")))


def test_bad_image(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs")
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    schema = ImageSchema(height=4, width=6, classes=("cat", "dog"))
    assert error(DataSource(str(root)), schema) == (
        "org-07 (imgs): image 'dog/broken.png' cannot be read: not an image file Pillow can decode; "
        "remove or replace it"
    )


def test_unknown_class_folder(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "imgs")
    (root / "bird").mkdir()
    schema = ImageSchema(height=4, width=6, classes=("cat", "dog"))
    assert error(DataSource(str(root)), schema) == (
        "org-07 (imgs): subfolder 'bird' is not one of the classes ('cat', 'dog'); rename or remove it"
    )


# ----------------------------------------------------------------------------------- inference


def test_infer_schema() -> None:
    t = ROWS.append_column("member", pa.array([True, False, True, True, False, False]))
    t = t.append_column("grade", pa.array(["10", "2", "1", "2", "10", "1"]).dictionary_encode())
    schema = infer_schema(t, label="default", exclude=["branch"])
    assert schema == TableSchema(
        features=(
            Feature(name="income"), Feature(name="age"),
            Feature(name="region", type="categorical", vocabulary=("east", "north", "south")),
            Feature(name="member", type="categorical", vocabulary=("false", "true")),
            Feature(name="grade", type="categorical", vocabulary=("1", "2", "10")),
        ),
        label="default", classes=("0", "1"), standardise="federated",
    )
    labels = pa.table({"x": [1.0, 2.0, 3.0], "y": [10, 2, 9]})
    assert infer_schema(labels, label="y", standardise="none").classes == ("2", "9", "10")


def test_infer_schema_refuses_an_identifier_column() -> None:
    t = pa.table({"id": [f"c{i}" for i in range(100)], "y": [0, 1] * 50})
    with pytest.raises(DataError) as e:
        infer_schema(t, label="y")
    assert str(e.value) == (
        "schema inference: column 'id' has 100 distinct values (more than max_vocabulary 64); "
        "leave it out (--exclude id), or raise --max-vocabulary"
    )
