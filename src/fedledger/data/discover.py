"""From what a user points `fedledger simulate --data` at, to one source per organisation.

A consortium simulated on one machine is given as files: one file (or database URL, or
image folder) per organisation, named by the file, or a directory holding them, or one
table to split by a natural column. This module turns those paths into `DataSource`s
and organisation names, and writes a schema when the job's spec has none: the union
of every organisation's columns and categories, which only a one-machine simulation
can see. A real consortium writes its schema into the spec and never pools anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fedledger.data.columns import is_text_type, quoted
from fedledger.data.schema import ImageSchema, TableSchema
from fedledger.data.sources import DataSource
from fedledger.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def _is_image_folder(path: Path) -> bool:
    """A folder of class subfolders that hold images directly."""
    subdirs = [p for p in path.iterdir() if p.is_dir()]
    return bool(subdirs) and any(
        f.suffix.lower() in IMAGE_SUFFIXES for d in subdirs for f in d.iterdir() if f.is_file()
    )


def _source(path: str, query: str) -> DataSource:
    if "://" in path:
        if not query:
            raise DataError(f"{path}: a database source needs --query 'SELECT …'")
        return DataSource(path, query)
    p = Path(path)
    if p.suffix.lower() in SQLITE_SUFFIXES:
        if not query:
            raise DataError(f"{p.name}: a SQLite file needs --query 'SELECT …'")
        return DataSource(f"sqlite:///{p.resolve()}", query)
    return DataSource(str(p), "")


def discover(paths: Sequence[str], *, query: str = "") -> tuple[list[DataSource], list[str]]:
    """(sources, organisation names) for `--data` paths.

    Several paths: one organisation each, named by the file's stem. One directory of
    table files (or of image folders): one organisation per entry. Anything else (one
    table, one image folder, one database URL) is a single source that the spec's
    partition splits among the trainers; its organisations get the default names.
    """
    if not paths:
        raise DataError("no --data given")
    if len(paths) == 1 and "://" not in paths[0]:
        p = Path(paths[0])
        if not p.exists():
            raise DataError(f"{p}: no such file or directory")
        if p.is_dir() and not _is_image_folder(p):
            entries = sorted(
                e
                for e in p.iterdir()
                if (e.is_file() and e.suffix.lower() in (*TABLE_SUFFIXES, *SQLITE_SUFFIXES))
                or (e.is_dir() and _is_image_folder(e))
            )
            if not entries:
                raise DataError(
                    f"{p}: holds no tables ({', '.join(TABLE_SUFFIXES + SQLITE_SUFFIXES)}) and no image "
                    "folders; give one file per organisation"
                )
            names = [_name(e) for e in entries]
            for n in sorted(set(names)):
                clash = [e.name for e in entries if _name(e) == n]
                if len(clash) > 1:
                    raise DataError(
                        f"{p}: {' and '.join(clash)} both name organisation {n!r}; keep one file per "
                        "organisation in the directory"
                    )
            return [_source(str(e), query) for e in entries], names
        return [_source(paths[0], query)], []
    names = [_name(Path(x)) if "://" not in x else f"org-{i:02d}" for i, x in enumerate(paths, start=1)]
    if len(set(names)) != len(names):
        raise DataError(f"two --data sources share an organisation name: {', '.join(names)}")
    return [_source(x, query) for x in paths], names


def _name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def infer_job_schema(
    sources: Sequence[DataSource],
    *,
    label: str,
    exclude: Sequence[str] = (),
    key: str = "",
    test: DataSource | None = None,
    max_vocabulary: int = 64,
) -> TableSchema | ImageSchema:
    """A schema covering every source (simulation only: it sees every organisation's columns)."""
    import pyarrow as pa

    from fedledger.data.encode import infer_image_schema, infer_schema
    from fedledger.data.sources import read_table

    first = sources[0]
    if "://" not in first.source and Path(first.source).is_dir():
        schemas = [infer_image_schema(Path(s.source)) for s in sources]
        classes = sorted({c for s in schemas for c in s.classes})
        return schemas[0].model_copy(update={"classes": tuple(classes)})
    if not label:
        raise DataError("a table needs --label COLUMN (or a data_schema in the --spec file)")
    # the sources in name order, then the test data: the order --data named them in changes nothing
    named = [*sorted(sources, key=lambda s: (s.describe(), s.source)), *([test] if test else [])]
    tables = [_plain_text(read_table(s, organisation=s.describe(), columns=())) for s in named]
    # every column any source has, in the order first seen
    columns = list(dict.fromkeys(c for t in tables for c in t.column_names if c not in exclude and c != key))
    present = {c for t in tables for c in t.column_names}
    if key and key not in present:  # the partition key splits rows; it is not a feature
        raise DataError(f"--key {key}: no source has that column ({quoted(sorted(present))})")
    unknown = [c for c in exclude if c not in present]
    if unknown:
        raise DataError(f"--exclude {unknown[0]}: no source has that column ({quoted(sorted(present))})")
    for s, t in zip(named, tables, strict=True):
        missing = [c for c in columns if c not in t.column_names]
        if missing:
            has = next(o for o, u in zip(named, tables, strict=True) if missing[0] in u.column_names)
            who = f"the test data ({s.describe()})" if s is test else s.describe()
            raise DataError(
                f"{who}: column {missing[0]!r} is missing ({has.describe()} has it); give every "
                "organisation the same columns, or write a data_schema in the --spec file"
            )
    try:
        pooled = pa.concat_tables([t.select(columns) for t in tables], promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        raise _type_clash(named, tables, columns) from None
    # excluded columns are already dropped
    return infer_schema(pooled, label=label, max_vocabulary=max_vocabulary)


def _kind(t: pa.DataType) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "numbers"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_boolean(t):
        return "booleans"
    return str(t)


def _type_clash(
    sources: Sequence[DataSource], tables: Sequence[pa.Table], columns: Sequence[str]
) -> DataError:
    """The first column whose values are of different kinds in two sources, as one line."""
    import pyarrow as pa

    for c in columns:
        kinds: dict[str, str] = {}
        for s, t in zip(sources, tables, strict=True):
            if not pa.types.is_null(t.schema.field(c).type):
                kinds.setdefault(_kind(t.schema.field(c).type), s.describe())
        if len(kinds) > 1:
            (k1, s1), (k2, s2) = list(kinds.items())[:2]
            return DataError(
                f"column {c!r} holds {k1} in {s1} but {k2} in {s2}; make it one type in every source "
                "(a number written with a comma or a unit, like '12,5k', reads as text)"
            )
    for c in columns:  # the same kind, but types Arrow cannot widen into one (int64 and uint64)
        types = {str(t.schema.field(c).type): s.describe() for s, t in zip(sources, tables, strict=True)}
        if len(types) > 1:
            (t1, s1), (t2, s2) = list(types.items())[:2]
            return DataError(
                f"column {c!r} is {t1} in {s1} but {t2} in {s2}; make it one type in every source"
            )
    return DataError("the sources' columns have types that cannot be combined; make them agree")


def _plain_text(table: pa.Table) -> pa.Table:
    """Dictionary-encoded text (a pandas category in Parquet) as plain text, as a CSV reads it.

    Only text: a dictionary of integers stays one, since inference reads it as categorical.
    """
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type) and is_text_type(field.type.value_type):
            table = table.set_column(i, field.name, table.column(i).cast(field.type.value_type))
    return table
