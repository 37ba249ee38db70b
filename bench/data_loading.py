"""Cost of loading an organisation's own table: our `load_local` against reading the file alone.

Workload: a synthetic table of 1,000,000 rows × 20 feature columns (16 numeric float64, 4
categorical text with vocabularies of 3, 4, 5 and 8) plus an integer label, written to
CSV, Parquet and SQLite in a temporary directory. Ours (`fedledger.data.encode.load_local`):
read only the schema's columns, check them against the schema (nulls, NaN/inf, vocabulary,
classes), encode to the (N, 36) float32 matrix and int64 labels. Baselines, in the same
process, alternating with ours: `pyarrow.csv.read_csv`, `pyarrow.parquet.read_table`, and
`pandas.read_sql` on a `sqlite3` connection (the bar); the bare `sqlite3` cursor's
`fetchall` is printed as well. One untimed warm-up of each, then `repeats` alternating
pairs; medians and ranges.

Peak memory: each format is loaded once more in a fresh subprocess that imports everything,
including what a load imports lazily (pyarrow's readers, SQLAlchemy's URL parser), loads a
1,000-row file of the same format (so the one-time start-up of Arrow's thread pools, allocator
arenas and readers, ~60 MB whatever the table's size, is not counted), then resets the
kernel's peak-RSS mark (writing 5 to /proc/self/clear_refs) and reads the
peak (VmHWM) after `load_local` returns; the figure is that peak minus the RSS before the
load, so it counts the Arrow table, the checks' temporaries and the output matrix. It is
compared with the table's in-memory size (`pyarrow.Table.nbytes` of the 21 columns as
pyarrow reads them from Parquet). The same without the warm-up load ("cold") is printed too.

Bars (data-source brief): loading + canonicalising ≤ 1.5 × the baseline's median, and peak
memory ≤ 2 × the table's in-memory size, for each of CSV, Parquet and SQLite.
`--quick`: 20,000 rows, 3 pairs (a smoke test, not the bars).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from _common import ROOT, median, parse_args, table, verdict, write_result

TIME_BAR = 1.5
MEMORY_BAR = 2.0
VOCABULARIES = (3, 4, 5, 8)
QUERY = "SELECT * FROM t"


def make_table(n: int) -> pa.Table:
    rng = np.random.default_rng(0)
    cols: dict[str, Any] = {f"x{i}": rng.normal(size=n) for i in range(16)}
    for j, v in enumerate(VOCABULARIES):
        words = np.array([f"cat{j}_{k}" for k in range(v)])
        cols[f"c{j}"] = words[rng.integers(0, v, n)]
    cols["label"] = rng.integers(0, 2, n)
    return pa.table(cols)


def write_sources(t: pa.Table, tmp: Path) -> dict[str, Any]:
    from fedledger.data.sources import DataSource

    pa_csv.write_csv(t, tmp / "t.csv")
    pq.write_table(t, tmp / "t.parquet")
    con = sqlite3.connect(tmp / "t.db")
    kinds = {"x": "REAL", "c": "TEXT", "l": "INTEGER"}
    con.execute("CREATE TABLE t (" + ", ".join(f"{c} {kinds[c[0]]}" for c in t.column_names) + ")")
    for batch in t.to_batches(100_000):
        rows = zip(*(batch.column(i).to_pylist() for i in range(batch.num_columns)), strict=True)
        con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * t.num_columns)})", rows)
    con.commit()
    con.close()
    return {
        "CSV": DataSource(str(tmp / "t.csv")),
        "Parquet": DataSource(str(tmp / "t.parquet")),
        "SQLite": DataSource(f"sqlite:///{tmp / 't.db'}", QUERY),
    }


def baselines(tmp: Path) -> dict[str, dict[str, Callable[[], Any]]]:
    import pandas as pd

    def read_sql() -> Any:
        with sqlite3.connect(tmp / "t.db") as con:
            return pd.read_sql(QUERY, con)

    def fetchall() -> Any:
        con = sqlite3.connect(tmp / "t.db")
        try:
            return con.execute(QUERY).fetchall()
        finally:
            con.close()

    return {
        "CSV": {"pyarrow.csv.read_csv": lambda: pa_csv.read_csv(tmp / "t.csv")},
        "Parquet": {"pyarrow.parquet.read_table": lambda: pq.read_table(tmp / "t.parquet")},
        "SQLite": {"pandas.read_sql (sqlite3)": read_sql, "sqlite3 fetchall": fetchall},
    }


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    del out
    return dt


PEAK_SCRIPT = """
import json, sys
sys.path.insert(0, {src!r})
from fedledger.data.encode import load_local
from fedledger.data.schema import TableSchema
from fedledger.data.sources import DataSource
import pyarrow.compute, pyarrow.csv, pyarrow.parquet, sqlite3, sqlalchemy.engine  # what a load imports lazily
schema = TableSchema.model_validate_json({schema!r})
src = DataSource({source!r}, {query!r})
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
out = {{}}
if {warm!r}:  # a 1,000-row load of the same format first: thread pools, allocator arenas, reader state
    load_local(DataSource({warm!r}, {query!r}), schema, organisation="bench")
out["before"] = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak-RSS mark to the current RSS
data = load_local(src, schema, organisation="bench")
out["peak"], out["x_bytes"] = status("VmHWM:"), data.x.nbytes
print(json.dumps(out))
"""


def peak_memory(src: Any, schema: Any, warm: str = "") -> dict[str, int]:
    script = PEAK_SCRIPT.format(src=str(ROOT / "src"), schema=schema.model_dump_json(), source=src.source,
                                query=src.query, warm=warm)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    r: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    r["extra"] = r["peak"] - r["before"]
    return r


def main() -> None:
    args = parse_args(__doc__)
    n, repeats = (20_000, 3) if args.quick else (1_000_000, 5)
    from fedledger.data.encode import infer_schema, load_local

    with tempfile.TemporaryDirectory(prefix="fedledger-bench-data-") as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        t = make_table(n)
        sources = write_sources(t, tmp)
        (tmp / "warm").mkdir()
        warm = write_sources(make_table(1_000), tmp / "warm")
        del t
        print(f"wrote {n:,} rows × 21 columns as CSV, Parquet, SQLite in {time.perf_counter() - t0:.1f} s")
        reference = pq.read_table(tmp / "t.parquet")
        table_bytes = int(reference.nbytes)
        schema = infer_schema(reference, label="label")
        del reference
        sizes = {k: (tmp / name).stat().st_size for k, name in
                 (("CSV", "t.csv"), ("Parquet", "t.parquet"), ("SQLite", "t.db"))}
        results: dict[str, Any] = {}
        for fmt, src in sources.items():
            base_fns = baselines(tmp)[fmt]
            ours_fn = lambda src=src: load_local(src, schema, organisation="bench")  # noqa: E731
            for fn in (*base_fns.values(), ours_fn):  # warm-up: caches, allocator, imports
                timed(fn)
            times: dict[str, list[float]] = {name: [] for name in base_fns} | {"load_local": []}
            for _ in range(repeats):
                for name, fn in base_fns.items():
                    times[name].append(timed(fn))
                times["load_local"].append(timed(ours_fn))
            bar_name = next(iter(base_fns))
            mem = peak_memory(src, schema, warm=warm[fmt].source)
            mem["cold_extra"] = peak_memory(src, schema)["extra"]
            results[fmt] = {
                "file_bytes": sizes[fmt],
                "times_s": {k: {"median": median(v), "min": min(v), "max": max(v), "all": v}
                            for k, v in times.items()},
                "baseline": bar_name,
                "ratio": median(times["load_local"]) / median(times[bar_name]),
                "memory": mem | {"ratio": mem["extra"] / table_bytes},
            }
            print(f"{fmt}: done", flush=True)

    rows = []
    for fmt, r in results.items():
        for name, s in r["times_s"].items():
            ratio = s["median"] / r["times_s"][r["baseline"]]["median"]
            rows.append([fmt, name, s["median"], f"{s['min']:.3f}–{s['max']:.3f}", f"×{ratio:.2f}"])
    print(f"\n{n:,} rows; table in memory {table_bytes / 1e6:.1f} MB; median of {repeats} alternating runs\n")
    print(table(["format", "reader", "median s", "range s", "× baseline"], rows))
    print()
    passed = True
    for fmt, r in results.items():
        m = r["memory"]
        ok_t, ok_m = r["ratio"] <= TIME_BAR, m["ratio"] <= MEMORY_BAR
        passed = passed and ok_t and ok_m
        print(f"{fmt}: load_local ×{r['ratio']:.2f} of {r['baseline']} (bar ≤ ×{TIME_BAR}): {verdict(ok_t)}; "
              f"peak memory +{m['extra'] / 1e6:.0f} MB = ×{m['ratio']:.2f} of the table "
              f"(cold process +{m['cold_extra'] / 1e6:.0f} MB = ×{m['cold_extra'] / table_bytes:.2f}) "
              f"(output x {m['x_bytes'] / 1e6:.0f} MB; bar ≤ ×{MEMORY_BAR}): {verdict(ok_m)}")
    write_result("data_loading", args.quick, {
        "rows": n, "repeats": repeats, "table_bytes": table_bytes, "encoded_width": schema.encoded_width,
        "results": results, "bars": {"time_ratio": TIME_BAR, "memory_ratio": MEMORY_BAR}, "passed": passed,
    })


if __name__ == "__main__":
    main()
