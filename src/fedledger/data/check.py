"""An organisation's table checked against the job's schema, in one line per problem.

A node runs this before it computes statistics or commits anything: a renamed column,
a stray category, a NaN in a feature or a label the consortium never agreed on would
otherwise become a silently wrong model or a useless commitment. Every problem is a
`DataError` whose one line names the organisation, the source, the column, the
problem and how many rows have it, e.g.

    org-03 (claims.csv): column 'income': 12 of 5,000 rows are NaN or inf; ...

The checks are vectorised (pyarrow.compute, numpy over dictionary codes); the codes
they compute for the categorical columns and the label are returned to the encoder by
`prepare`, so a node maps each column onto its vocabulary once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fedledger.data.columns import (
    Codes,
    category_codes,
    is_category_type,
    is_numeric_type,
    is_text_type,
    label_text,
    quoted,
    rows,
    where,
)
from fedledger.data.schema import TableSchema
from fedledger.errors import DataError

#: what a text value in a numeric column must look like to be read as a number
NUMBER = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class Prepared:
    """A checked table: numeric columns as Arrow numbers, categorical columns and the label as codes."""

    n: int
    numeric: tuple[pa.ChunkedArray, ...]  # each (N,), integer, float or decimal, no nulls
    categorical: tuple[Codes, ...]  # each (N,) codes into the feature's vocabulary, all valid
    label: Codes  # (N,) class indices, all valid


def check_table(table: pa.Table, schema: TableSchema, *, organisation: str, source: str) -> None:
    """Raises a one-line DataError for the first way `table` does not match `schema`."""
    prepare(table, schema, organisation=organisation, source=source)


def prepare(
    table: pa.Table, schema: TableSchema, *, organisation: str, source: str, finite: bool = True
) -> Prepared:
    """`check_table`, keeping what the checks computed (cast numeric columns, category codes).

    `finite=False` leaves out the NaN/inf scan of the numeric columns, for a caller that tests
    the encoded matrix instead and calls `check_finite` only when that test fails.
    """
    at = where(organisation, source)
    check_columns(table.column_names, schema.columns, at=at)
    n = table.num_rows
    check_not_empty(n, at=at)
    numeric = tuple(check_numeric(table.column(f.name), f.name, n, at) for f in schema.numeric)
    if finite:
        check_finite(numeric, schema, organisation=organisation, source=source)
    categorical = tuple(
        check_categories(table.column(f.name), f.name, f.vocabulary, n, at, label=False)
        for f in schema.categorical
    )
    label = check_categories(table.column(schema.label), schema.label, schema.classes, n, at, label=True)
    return Prepared(n=n, numeric=numeric, categorical=categorical, label=label)


def check_columns(present: list[str], wanted: tuple[str, ...] | list[str], *, at: str) -> None:
    """A DataError naming the columns of `wanted` that `present` lacks (and what it has instead)."""
    have = set(present)
    missing = [c for c in wanted if c not in have]
    if not missing:
        return
    what = f"column {missing[0]!r} is" if len(missing) == 1 else f"columns {quoted(missing)} are"
    raise DataError(
        f"{at}: {what} missing (the source has {quoted(present) or 'no columns'}); "
        "rename the column in the source or query, or fix the job's schema"
    )


def check_not_empty(n: int, *, at: str) -> None:
    if n == 0:
        raise DataError(f"{at}: the source has no rows; point it at a table or query that yields data")


def check_numeric(col: pa.ChunkedArray, name: str, n: int, at: str) -> pa.ChunkedArray:
    """A column the schema calls numeric, as Arrow numbers; a DataError if it cannot be (n: all rows)."""
    t = col.type
    if pa.types.is_dictionary(t):
        col, t = col.cast(t.value_type), t.value_type
    if is_text_type(t):
        col = _text_as_number(col, name, n, at)
        t = col.type
    elif pa.types.is_null(t):
        _nulls(n, name, n, at, "fill them with numbers or drop the column from the schema")
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        _not_utf8(col, name, n, at)
    elif not is_numeric_type(t):
        raise DataError(
            f"{at}: column {name!r} is {t} in all {n:,} rows but the schema says numeric; "
            "cast it to a number in the source or query"
        )
    if col.null_count:
        _nulls(col.null_count, name, n, at, "drop or impute them before training")
    return col


def check_finite(
    numeric: tuple[pa.ChunkedArray, ...], schema: TableSchema, *, organisation: str, source: str
) -> None:
    """A DataError for the first numeric column with a NaN, an inf or a value beyond float32's range."""
    at = where(organisation, source)
    for col, f in zip(numeric, schema.numeric, strict=True):
        check_finite_column(col, f.name, at)


def check_finite_column(col: pa.ChunkedArray, name: str, at: str) -> None:
    """A DataError if a checked numeric column holds a NaN, an inf or a value beyond float32's range."""
    t, n = col.type, len(col)
    if not (pa.types.is_floating(t) or pa.types.is_decimal(t)):
        return  # integers are always finite, and within float32's range
    # decimals, and float16 (which Arrow's abs has no kernel for), are judged as float64
    as_float = col if pa.types.is_floating(t) and not pa.types.is_float16(t) else col.cast(pa.float64())
    good = pc.sum(pc.less_equal(pc.abs(as_float), FLOAT32_MAX)).as_py() or 0
    if good < n:
        finite = pc.sum(pc.is_finite(as_float)).as_py() or 0
        what = "NaN or inf" if finite == good else "NaN, inf or beyond float32's range (±3.4e38)"
        raise DataError(
            f"{at}: column {name!r}: {rows(n - good, n)} are {what}; drop or impute them before training"
        )


def _text_as_number(col: pa.ChunkedArray, name: str, n: int, at: str) -> pa.ChunkedArray:
    """A text column the schema calls numeric: fine if every value reads as a number."""
    ok = pc.match_substring_regex(col, NUMBER)
    bad = n - col.null_count - (pc.sum(ok).as_py() or 0)
    if bad:
        first = int(np.flatnonzero(pc.fill_null(pc.invert(ok), False).to_numpy(zero_copy_only=False))[0])
        raise DataError(
            f"{at}: column {name!r} should be numeric but {rows(bad, n)} are text, e.g. "
            f"{_short(col[first].as_py())!r}; fix or drop those rows, or make the column categorical"
        )
    return pc.utf8_trim_whitespace(col).cast(pa.float64())


def check_categories(
    col: pa.ChunkedArray, name: str, vocabulary: tuple[str, ...], n: int, at: str, *, label: bool
) -> Codes:
    """A categorical column (or the label) mapped onto its vocabulary; a DataError for a null, a
    value outside it, or a type that cannot name a category (n: all rows)."""
    what = f"column {name!r} (the label)" if label else f"column {name!r}"
    if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
        _not_utf8(col, name, n, at)
    if not is_category_type(col.type):
        kind = "the label (text, integer or boolean)" if label else "categorical (text, integer or boolean)"
        raise DataError(
            f"{at}: {what} is {col.type} in all {n:,} rows but the schema says {kind}; "
            "cast it to text in the source or query"
        )
    codes = category_codes(col, vocabulary)
    if codes.nulls:
        fix = "drop those rows" if label else "fill them with a category from the vocabulary or drop the rows"
        raise DataError(f"{at}: {what}: {rows(codes.nulls, n)} are empty (null); {fix}")
    if codes.outside:
        example = _short(label_text(col[codes.first_outside()].as_py()))
        if label:
            raise DataError(
                f"{at}: {what}: {rows(codes.outside, n)} have a label outside the classes "
                f"({quoted(vocabulary)}), e.g. {example!r}; drop those rows or map them to a class"
            )
        raise DataError(
            f"{at}: {what}: {rows(codes.outside, n)} have a category outside the vocabulary, e.g. "
            f"{example!r}; map them to a known category or add it to the job's schema"
        )
    return codes


def _nulls(count: int, name: str, n: int, at: str, fix: str) -> NoReturn:
    raise DataError(f"{at}: column {name!r}: {rows(count, n)} are empty (null); {fix}")


def _short(text: str, limit: int = 60) -> str:
    """An offending value as an error line quotes it: a 5,000-character cell is cut, not pasted."""
    return text if len(text) <= limit else text[:limit] + "…"


def _not_utf8(col: pa.ChunkedArray, name: str, n: int, at: str) -> NoReturn:
    """A column Arrow read as bytes: its text is not UTF-8 (a Latin-1 or Windows-1252 export)."""
    bad = 0
    for value in col.to_pylist():  # the error path only: count the rows that do not decode
        if value is not None:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                bad += 1
    raise DataError(
        f"{at}: column {name!r}: {rows(bad or n, n)} are not UTF-8 text; save the file as UTF-8 "
        "(e.g. `iconv -f latin1 -t utf-8`) or convert the column in the query"
    )
