"""Every way an organisation's table can disagree with the job's schema is one exact line.

The messages are asserted word for word: they are the interface an organisation's data
engineer sees, and each must name the organisation, the source, the column, the problem
and how many rows have it.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from fedledger.data.check import check_table
from fedledger.data.encode import encode_table, label_text
from fedledger.data.schema import Feature, TableSchema
from fedledger.errors import DataError

SCHEMA = TableSchema(
    features=(
        Feature(name="income", type="numeric"),
        Feature(name="age", type="numeric"),
        Feature(name="region", type="categorical", vocabulary=("north", "south", "east")),
        Feature(name="grade", type="categorical", vocabulary=("1", "2", "3")),
    ),
    label="default",
    classes=("0", "1"),
)
AT = "org-03 (claims.csv)"


def table(**override: object) -> pa.Table:
    cols: dict[str, object] = {
        "income": [10.5, 20.0, 30.25, 40.0, 50.0],
        "age": [30, 41, 52, 23, 64],
        "region": ["north", "south", "east", "north", "east"],
        "grade": [1, 2, 3, 2, 1],  # integers where categories are expected: fine, "1" is in the vocabulary
        "default": [0, 1, 0, 1, 1],
    }
    cols.update(override)
    return pa.table(cols)


def message(t: pa.Table, schema: TableSchema = SCHEMA) -> str:
    with pytest.raises(DataError) as e:
        check_table(t, schema, organisation="org-03", source="claims.csv")
    text = str(e.value)
    assert "\n" not in text
    return text


def test_a_matching_table_passes_and_encodes_in_the_schemas_layout() -> None:
    t = table()
    check_table(t, SCHEMA, organisation="org-03", source="claims.csv")
    x, y = encode_table(t, SCHEMA)
    assert x.dtype == np.float32 and x.shape == (5, SCHEMA.encoded_width) == (5, 8)
    assert x[0].tolist() == [10.5, 30.0, 1, 0, 0, 1, 0, 0]  # numeric, region one-hot, grade one-hot
    assert x[2].tolist() == [30.25, 52.0, 0, 0, 1, 0, 0, 1]
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 0, 1, 1]


def test_missing_column() -> None:
    assert message(table().drop_columns(["age"])) == (
        f"{AT}: column 'age' is missing (the source has 'income', 'region', 'grade', 'default'); "
        "rename the column in the source or query, or fix the job's schema"
    )


def test_two_missing_columns() -> None:
    assert message(table().drop_columns(["age", "default"])) == (
        f"{AT}: columns 'age', 'default' are missing (the source has 'income', 'region', 'grade'); "
        "rename the column in the source or query, or fix the job's schema"
    )


def test_text_in_a_numeric_column() -> None:
    assert message(table(income=["10", "n.a.", "30", "?", "5e3"])) == (
        f"{AT}: column 'income' should be numeric but 2 of 5 rows are text, e.g. 'n.a.'; "
        "fix or drop those rows, or make the column categorical"
    )


def test_text_that_reads_as_numbers_is_accepted() -> None:
    x, _ = encode_table(table(income=["10", " 2.5", "-3e2", "+4", ".5"]), SCHEMA)
    assert x[:, 0].tolist() == [10.0, 2.5, -300.0, 4.0, 0.5]


def test_a_column_of_the_wrong_kind() -> None:
    assert message(table(age=pa.array([1, 2, 3, 4, 5], pa.timestamp("s")))) == (
        f"{AT}: column 'age' is timestamp[s] in all 5 rows but the schema says numeric; "
        "cast it to a number in the source or query"
    )
    assert message(table(region=pa.array([[1], [2], [3], [4], [5]]))) == (
        f"{AT}: column 'region' is list<item: int64> in all 5 rows but the schema says categorical "
        "(text, integer or boolean); cast it to text in the source or query"
    )


def test_nan_in_a_numeric_feature() -> None:
    assert message(table(income=[1.0, math.nan, 3.0, math.nan, 5.0])) == (
        f"{AT}: column 'income': 2 of 5 rows are NaN or inf; drop or impute them before training"
    )


def test_inf_in_a_numeric_feature() -> None:
    assert message(table(income=[1.0, math.inf, 3.0, 4.0, -math.inf])) == (
        f"{AT}: column 'income': 2 of 5 rows are NaN or inf; drop or impute them before training"
    )


def test_a_value_beyond_float32() -> None:
    assert message(table(income=[1.0, 1e300, 3.0, 4.0, 5.0])) == (
        f"{AT}: column 'income': 1 of 5 rows are NaN, inf or beyond float32's range (±3.4e38); "
        "drop or impute them before training"
    )


def test_null_in_a_numeric_feature() -> None:
    assert message(table(age=[30, None, 52, None, None])) == (
        f"{AT}: column 'age': 3 of 5 rows are empty (null); drop or impute them before training"
    )


def test_null_in_a_categorical_feature() -> None:
    assert message(table(region=["north", None, "east", "north", "east"])) == (
        f"{AT}: column 'region': 1 of 5 rows are empty (null); "
        "fill them with a category from the vocabulary or drop the rows"
    )


def test_null_label() -> None:
    assert message(table(default=[0, 1, None, 1, 1])) == (
        f"{AT}: column 'default' (the label): 1 of 5 rows are empty (null); drop those rows"
    )


def test_category_outside_the_vocabulary() -> None:
    assert message(table(region=["north", "Mars", "east", "west", "Mars"])) == (
        f"{AT}: column 'region': 3 of 5 rows have a category outside the vocabulary, e.g. 'Mars'; "
        "map them to a known category or add it to the job's schema"
    )


def test_a_number_outside_the_vocabulary() -> None:
    assert message(table(grade=[1, 2, 7, 2, 1])) == (
        f"{AT}: column 'grade': 1 of 5 rows have a category outside the vocabulary, e.g. '7'; "
        "map them to a known category or add it to the job's schema"
    )


def test_label_outside_the_classes() -> None:
    assert message(table(default=[0, 1, 2, 1, 1])) == (
        f"{AT}: column 'default' (the label): 1 of 5 rows have a label outside the classes ('0', '1'), "
        "e.g. '2'; drop those rows or map them to a class"
    )


def test_empty_table() -> None:
    assert message(table().slice(0, 0)) == (
        f"{AT}: the source has no rows; point it at a table or query that yields data"
    )


def test_counts_use_thousands_separators() -> None:
    n = 5_000
    income = np.arange(n, dtype=np.float64)
    income[:12] = np.nan
    t = pa.table({
        "income": income, "age": np.ones(n), "region": ["north"] * n, "grade": ["1"] * n,
        "default": [0, 1] * (n // 2),
    })
    assert message(t) == (
        f"{AT}: column 'income': 12 of 5,000 rows are NaN or inf; drop or impute them before training"
    )


def test_categories_given_as_dictionary_float_or_bool_map_by_their_text() -> None:
    schema = TableSchema(
        features=(Feature(name="flag", type="categorical", vocabulary=("false", "true")),
                  Feature(name="grade", type="categorical", vocabulary=("1", "2", "3"))),
        label="y", classes=("a", "b"),
    )
    t = pa.table({
        "flag": [True, False, True],
        "grade": pa.array([1.0, 3.0, 2.0]),  # SQLite's REAL affinity turns 1 into 1.0
        "y": pa.array(["a", "b", "a"]).dictionary_encode(),
    })
    x, y = encode_table(t, schema)
    assert x.tolist() == [[0, 1, 1, 0, 0], [1, 0, 0, 0, 1], [0, 1, 0, 1, 0]]
    assert y.tolist() == [0, 1, 0]


@pytest.mark.parametrize(("value", "text"), [
    (3, "3"), (3.0, "3"), (-2.0, "-2"), (2.5, "2.5"), (True, "true"), (False, "false"),
    ("North", "North"), (np.int64(7), "7"), (np.float32(4.0), "4"), (math.nan, "nan"),
])
def test_label_text(value: object, text: str) -> None:
    assert label_text(value) == text
