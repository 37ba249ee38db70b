"""A table schema guessed from a table, for `fedledger simulate` and for drafting a job spec.

`fedledger simulate` runs every organisation on one machine, so it may look at the union of
their tables to write the job's schema; a real consortium agrees on the schema instead
(the sponsor drafts it with `infer_schema` on a sample and the members review it). Integer,
float and decimal columns become numeric features; text, boolean and dictionary columns
become categorical, their vocabulary the sorted distinct values. A column with too many
distinct values (an identifier, a free-text field) is refused rather than one-hot encoded
into thousands of inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from pydantic import ValidationError

from fedledger.data.columns import distinct_texts, is_numeric_type, is_text_type, numeric_sort, quoted
from fedledger.data.schema import VOCABULARY_MAX, Feature, TableSchema
from fedledger.errors import DataError

AT = "schema inference"


def infer_schema(
    table: pa.Table,
    *,
    label: str,
    exclude: Sequence[str] = (),
    max_vocabulary: int = 64,
    standardise: str = "federated",
) -> TableSchema:
    """The schema of `table` with `label` as the label; columns in `exclude` are left out."""
    have = quoted(table.column_names)
    if label not in table.column_names:
        raise DataError(f"{AT}: the label column {label!r} is missing (the table has {have})")
    if table.num_rows == 0:
        raise DataError(f"{AT}: the table has no rows; infer the schema from data")
    unknown = [c for c in exclude if c not in table.column_names]
    if unknown:
        raise DataError(f"{AT}: excluded column {unknown[0]!r} is not in the table ({have})")
    limit = min(max_vocabulary, VOCABULARY_MAX)
    features = []
    for name in table.column_names:
        if name == label or name in exclude:
            continue
        features.append(_feature(table.column(name), name, limit))
    if not features:
        raise DataError(f"{AT}: no feature columns are left besides the label {label!r}")
    col, what = table.column(label), f"the label column {label!r}"
    if 0 < col.null_count < len(col):
        raise DataError(
            f"{AT}: {what}: {col.null_count:,} of {len(col):,} rows are empty (null); drop those rows"
        )
    if col.null_count == len(col) or not _category_like(col.type):
        raise DataError(f"{AT}: {what} is {col.type}; it must hold classes (text or integers)")
    classes = numeric_sort(distinct_texts(col))
    if len(classes) < 2:
        raise DataError(f"{AT}: {what} has {len(classes)} distinct value(s); it needs two or more")
    if len(classes) > VOCABULARY_MAX:
        raise DataError(f"{AT}: {what} has {len(classes):,} classes; at most {VOCABULARY_MAX:,}")
    try:
        return TableSchema(
            features=tuple(features),
            label=label,
            classes=tuple(classes),
            standardise=standardise,
        )
    except ValidationError as e:
        problem = e.errors()[0]
        raise DataError(f"{AT}: {'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}") from None


def _feature(col: pa.ChunkedArray, name: str, limit: int) -> Feature:
    t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    if is_numeric_type(t) and not pa.types.is_dictionary(col.type):
        return Feature(name=name, type="numeric")
    if not _category_like(col.type):
        raise DataError(
            f"{AT}: column {name!r} is {col.type}; leave it out (--exclude {name}) or cast it to a number "
            "or text in the source"
        )
    vocabulary = numeric_sort(distinct_texts(col))
    if not vocabulary:
        raise DataError(f"{AT}: column {name!r} is empty (all null); leave it out (--exclude {name})")
    if len(vocabulary) > limit:
        raise DataError(
            f"{AT}: column {name!r} has {len(vocabulary):,} distinct values (more than max_vocabulary "
            f"{limit}); leave it out (--exclude {name}), or raise --max-vocabulary"
        )
    return Feature(name=name, type="categorical", vocabulary=tuple(vocabulary))


def _category_like(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _category_like(t.value_type)
    return bool(is_text_type(t) or pa.types.is_boolean(t) or pa.types.is_integer(t))
