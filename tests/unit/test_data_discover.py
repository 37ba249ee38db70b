"""`fedledger simulate --data` infers one schema over every organisation's table.

Which file is named first must change nothing, and sources that disagree (a column one
organisation lacks, a column that is numbers in one file and text in another, test data
without a feature) are one line naming the column and both files, never a traceback.
"""

from __future__ import annotations

from itertools import permutations
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from fedledger.data.discover import discover, infer_job_schema
from fedledger.errors import DataError


def _write(path: Path, **cols: list[object]) -> str:
    t = pa.table(cols)
    if path.suffix == ".csv":
        pa_csv.write_csv(t, path)
    else:
        pq.write_table(t, path)
    return str(path)


def test_the_schema_does_not_depend_on_the_order_of_the_sources(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", income=[1.0, 2.0], region=["n", "s"], y=[0, 1])
    b = _write(tmp_path / "b.parquet", income=[3.0, 4.0], region=["e", "s"], y=[1, 0])
    c = _write(tmp_path / "c.csv", income=[5.0, 6.0], region=["w", "w"], y=[0, 0])
    schemas = {
        infer_job_schema(discover(list(order))[0], label="y").model_dump_json()
        for order in permutations([a, b, c])
    }
    assert len(schemas) == 1


@pytest.mark.parametrize("first", [True, False], ids=["lacking source first", "lacking source last"])
def test_a_column_one_organisation_lacks_is_named_whichever_comes_first(tmp_path: Path, first: bool) -> None:
    full = _write(tmp_path / "north.csv", income=[1.0, 2.0], debt=[3.0, 4.0], y=[0, 1])
    lacking = _write(tmp_path / "south.csv", income=[1.0, 2.0], y=[1, 0])
    paths = [lacking, full] if first else [full, lacking]
    with pytest.raises(DataError) as e:
        infer_job_schema(discover(paths)[0], label="y")
    assert str(e.value) == (
        "south.csv: column 'debt' is missing (north.csv has it); give every organisation the same "
        "columns, or write a data_schema in the --spec file"
    )


def test_test_data_without_a_feature_is_one_line(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", income=[1.0, 2.0], debt=[1.0, 1.0], y=[0, 1])
    b = _write(tmp_path / "b.csv", income=[1.0, 2.0], debt=[2.0, 2.0], y=[1, 0])
    test = _write(tmp_path / "test.csv", income=[1.0], y=[1])
    sources, _ = discover([a, b])
    with pytest.raises(
        DataError, match=r"^the test data \(test.csv\): column 'debt' is missing \(a.csv has it\)"
    ):
        infer_job_schema(sources, label="y", test=discover([test])[0][0])


@pytest.mark.parametrize(
    ("column", "bad", "kinds"),
    [
        ("income", ["12,5k", "3"], "numbers in a.csv but text in b.csv"),
        ("y", ["no", "yes"], "numbers in a.csv but text in b.csv"),
    ],
)
def test_a_column_of_different_kinds_in_two_sources_is_one_line(
    tmp_path: Path, column: str, bad: list[object], kinds: str
) -> None:
    a = _write(tmp_path / "a.csv", income=[1.0, 2.0], y=[0, 1])
    cols: dict[str, list[object]] = {"income": [1.0, 2.0], "y": [1, 0]}
    cols[column] = bad
    b = _write(tmp_path / "b.csv", **cols)
    with pytest.raises(DataError) as e:
        infer_job_schema(discover([a, b])[0], label="y")
    assert str(e.value).startswith(f"column {column!r} holds {kinds}; make it one type in every source")


def test_exclude_and_max_vocabulary_shape_the_inferred_schema(tmp_path: Path) -> None:
    ids = [f"id-{i}" for i in range(80)]
    a = _write(
        tmp_path / "a.csv", customer=ids, income=[float(i) for i in range(80)], y=[i % 2 for i in range(80)]
    )
    sources, _ = discover([a])
    with pytest.raises(
        DataError, match=r"column 'customer' has 80 distinct values .* \(--exclude customer\)"
    ):
        infer_job_schema(sources, label="y")
    schema = infer_job_schema(sources, label="y", exclude=["customer"])
    assert [f.name for f in schema.features] == ["income"]  # type: ignore[union-attr]
    wide = infer_job_schema(sources, label="y", max_vocabulary=100)
    assert [f.name for f in wide.features] == ["customer", "income"]  # type: ignore[union-attr]
    with pytest.raises(DataError, match=r"^--exclude custmer: no source has that column"):
        infer_job_schema(sources, label="y", exclude=["custmer"])
    # a partition key is no feature, and a missing one is named as the flag the user typed
    assert [f.name for f in infer_job_schema(sources, label="y", key="customer").features] == ["income"]  # type: ignore[union-attr]
    with pytest.raises(DataError, match=r"^--key addr_state: no source has that column"):
        infer_job_schema(sources, label="y", key="addr_state")


def test_two_files_of_one_organisation_in_a_directory_are_one_line(tmp_path: Path) -> None:
    _write(tmp_path / "north.csv", income=[1.0], y=[0])
    _write(tmp_path / "north.parquet", income=[1.0], y=[0])
    _write(tmp_path / "south.csv", income=[1.0], y=[0])
    with pytest.raises(DataError, match=r"north.csv and north.parquet both name organisation 'north'"):
        discover([str(tmp_path)])


def test_simulate_help_lists_every_fault_kind(capsys: pytest.CaptureFixture[str]) -> None:
    from fedledger.cli.main import main
    from fedledger.sim.faults import FAULT_KINDS

    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(kind in text for kind in FAULT_KINDS)


def test_an_empty_label_is_named_as_such_not_as_a_type(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", income=[1.0, 2.0, 3.0], y=[0, None, 1])
    with pytest.raises(
        DataError, match=r"the label column 'y': 1 of 3 rows are empty \(null\); drop those rows"
    ):
        infer_job_schema(discover([a])[0], label="y")


def test_a_parquet_category_and_a_csv_text_column_combine_as_text(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", region=["n", "s"], y=[0, 1])
    b = tmp_path / "b.parquet"
    pq.write_table(pa.table({"region": pa.array(["e", "s"]).dictionary_encode(), "y": [1, 0]}), b)
    schema = infer_job_schema(discover([a, str(b)])[0], label="y")
    assert schema.features[0].vocabulary == ("e", "n", "s")  # type: ignore[union-attr]


def test_columns_in_another_order_give_the_same_schema(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", x=[1.0, 2.0], z=[3.0, 4.0], y=[0, 1])
    b = _write(tmp_path / "b.csv", z=[3.0, 4.0], x=[1.0, 2.0], y=[1, 0])
    one, two = (infer_job_schema(discover(p)[0], label="y") for p in ([a, b], [b, a]))
    assert one == two


def test_numbers_arrow_cannot_widen_into_one_type_name_the_column(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.csv", n=[1, 2], y=[0, 1])
    b = tmp_path / "b.parquet"
    pq.write_table(pa.table({"n": pa.array([2**63, 2**63 + 1], pa.uint64()), "y": [1, 0]}), b)
    with pytest.raises(DataError, match=r"^column 'n' is int64 in a.csv but uint64 in b.parquet"):
        infer_job_schema(discover([a, str(b)])[0], label="y")
