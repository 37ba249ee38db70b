"""Column canonicalisation shared by the checks and the encoder: label text and category codes.

A category or label may arrive as text (CSV, Parquet strings), as an integer (a SQL
`smallint` status code), as a float (SQLite stores 3 as 3.0 once a column holds a NaN)
or as a boolean. The schema names them by text, so every reader maps a value to the
same text (`label_text`) and from there to its index in the vocabulary. The mapping is
computed once per distinct value (over the column's dictionary), never per row, so a
million-row column costs one hash pass in Arrow and one numpy gather.

The messages' common shape lives here too: "org-03 (claims.csv): column 'x': 12 of
5,000 rows ...", so every data error reads alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: codes for a value that is null, or whose text is not in the vocabulary
NULL_CODE = -2
OUTSIDE_CODE = -1


def label_text(value: object) -> str:
    """Canonical text of a label or category value: 3 and 3.0 are "3", True is "true", text as is."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isfinite(f) and f.is_integer():
            return str(int(f))
        return repr(f)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def numeric_sort(texts: Sequence[str]) -> list[str]:
    """Sorted so that numbers come in numeric order ("2" before "10"), then other text."""

    def key(t: str) -> tuple[int, float, str]:
        try:
            f = float(t)
        except ValueError:
            return (1, 0.0, t)
        return (0, f, t) if math.isfinite(f) else (1, 0.0, t)

    return sorted(texts, key=key)


def where(organisation: str, source: str) -> str:
    """The prefix every data message starts with: who and which source."""
    return f"{organisation} ({source})"


def rows(n: int, total: int) -> str:
    """'12 of 5,000 rows' (or '1 of 5,000 rows')."""
    return f"{n:,} of {total:,} rows"


def quoted(texts: Sequence[str], limit: int = 8) -> str:
    """'a', 'b', 'c' … (the first `limit` of them)."""
    head = ", ".join(repr(t) for t in texts[:limit])
    return head + (f", … ({len(texts):,} in all)" if len(texts) > limit else "")


def is_numeric_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def is_text_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def is_category_type(t: pa.DataType) -> bool:
    """Types whose values can name a category: text, integers, floats, booleans, dictionaries of them."""
    if pa.types.is_dictionary(t):
        return is_category_type(t.value_type)
    return bool(is_text_type(t) or pa.types.is_boolean(t) or is_numeric_type(t) or pa.types.is_null(t))


@dataclass(frozen=True)
class Codes:
    """A categorical column mapped onto a vocabulary.

    codes: (N,) int32, the vocabulary index of each row; NULL_CODE for null, OUTSIDE_CODE for a
    value not in the vocabulary.
    """

    codes: np.ndarray
    nulls: int
    outside: int

    def first_outside(self) -> int:
        """Row index of the first value outside the vocabulary (call only when `outside` > 0)."""
        return int(np.flatnonzero(self.codes == OUTSIDE_CODE)[0])


def category_codes(column: pa.ChunkedArray, vocabulary: Sequence[str]) -> Codes:
    """Maps every row of `column` to its index in `vocabulary`, one pass per chunk.

    A dictionary chunk (Parquet text, CSV text) maps its few distinct values in Python and
    its rows by one numpy gather; an integer chunk over a short range does the same through a
    table indexed by value, with no hashing at all; anything else is dictionary-encoded first.
    """
    index = {v: i for i, v in enumerate(vocabulary)}
    out = np.empty(len(column), dtype=np.int32)  # (N,)
    offset = 0
    for chunk in column.chunks:
        n = len(chunk)
        if n == 0:
            continue
        rows_out = out[offset : offset + n]
        offset += n
        if pa.types.is_null(chunk.type):
            rows_out[:] = NULL_CODE
        elif not _integer_codes(chunk, index, rows_out):
            enc = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
            values = enc.dictionary.to_pylist()
            mapping = np.array(
                [NULL_CODE if v is None else index.get(label_text(v), OUTSIDE_CODE) for v in values]
                + [NULL_CODE],
                dtype=np.int32,
            )  # (distinct + 1,): the last entry is for null rows
            _gather(mapping, enc.indices, len(values), rows_out)
    if len(out) == 0 or out.min() >= 0:  # the common case: one pass, nothing to count
        return Codes(codes=out, nulls=0, outside=0)
    nulls = int(np.count_nonzero(out == NULL_CODE))
    outside = int(np.count_nonzero(out == OUTSIDE_CODE))
    return Codes(codes=out, nulls=nulls, outside=outside)


#: widest value range an integer column is mapped through a lookup table instead of a hash
INTEGER_SPAN = 1 << 16


def _integer_codes(chunk: pa.Array, index: dict[str, int], out: np.ndarray) -> bool:
    """out[:] = the codes of an integer chunk with no nulls over < INTEGER_SPAN values; else False.

    The table holds the code of every integer from min to max, each through `label_text` like
    the dictionary path, so both give the same code for every value.
    """
    if not pa.types.is_integer(chunk.type) or chunk.null_count:
        return False
    values = chunk.to_numpy(zero_copy_only=False)  # (n,)
    lo, hi = int(values.min()), int(values.max())
    if hi - lo >= INTEGER_SPAN or hi >= 1 << 63:
        return False
    table = np.array([index.get(str(v), OUTSIDE_CODE) for v in range(lo, hi + 1)], dtype=np.int32)
    np.take(table, values.astype(np.int64) - lo, out=out)  # int64: an int8 minus its min can overflow int8
    return True


def _gather(mapping: np.ndarray, indices: pa.Array, nulls_at: int, out: np.ndarray) -> None:
    """out[:] = mapping[indices], null indices taking mapping[nulls_at]."""
    if indices.null_count:
        indices = pc.fill_null(indices, nulls_at)
    np.take(mapping, indices.to_numpy(zero_copy_only=False), out=out)


def text_values(column: pa.ChunkedArray) -> np.ndarray:
    """(N,) the column's values as canonical text (`label_text`); null rows are ''."""
    out = np.empty(len(column), dtype=object)
    offset = 0
    for chunk in column.chunks:
        n = len(chunk)
        if n == 0:
            continue
        if pa.types.is_null(chunk.type):
            out[offset : offset + n] = ""
            offset += n
            continue
        enc = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        values = enc.dictionary.to_pylist()
        texts = np.array(["" if v is None else label_text(v) for v in values] + [""], dtype=object)
        idx = pc.fill_null(enc.indices, len(values)).to_numpy(zero_copy_only=False)
        out[offset : offset + n] = texts[idx]
        offset += n
    return out.astype(str)


def distinct_texts(column: pa.ChunkedArray) -> list[str]:
    """The column's distinct non-null values as canonical text, unsorted."""
    seen: set[str] = set()
    for chunk in column.chunks:
        if len(chunk) == 0 or pa.types.is_null(chunk.type):
            continue
        if pa.types.is_dictionary(chunk.type):  # only the values some row uses
            d = chunk.dictionary.take(pc.unique(chunk.indices))
        else:
            d = pc.unique(chunk)
        seen.update(label_text(v) for v in d.to_pylist() if v is not None)
    return list(seen)


def first_line(e: BaseException) -> str:
    """An exception's message, first line only (driver errors run to several)."""
    text = str(e).strip()
    return text.splitlines()[0].strip() if text else type(e).__name__
