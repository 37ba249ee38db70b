"""Four organisations' nodes, each reading its own kind of source: Parquet, CSV, SQLite, PostgreSQL.

Real parts throughout: anvil over JSON-RPC, a `store serve` per organisation, a PostgreSQL
server started by the test, and sklearn's breast-cancer table split into four hospitals.
The job opens with the statistics round, then trains; the live audit replays both.
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from consortium_harness import assert_nothing_lost
from postgres import PostgresServer, postgres  # noqa: F401
from sklearn.datasets import load_breast_cancer

from fedledger.chain.contracts import Phase
from fedledger.data.encode import infer_schema
from fedledger.sim.deployment import start_consortium

pytestmark = pytest.mark.anvil


def _hospitals() -> list[pd.DataFrame]:
    df = load_breast_cancer(as_frame=True).frame.copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["diagnosis"] = np.where(df.pop("target") == 1, "benign", "malignant")
    df = df.sample(frac=1.0, random_state=1).reset_index(drop=True)
    bounds = np.linspace(0, len(df), 5).astype(int)
    return [df.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(bounds)]


def test_four_nodes_on_parquet_csv_sqlite_and_postgresql_complete_and_audit(
    tmp_path: Path, postgres: PostgresServer  # noqa: F811
) -> None:
    from sqlalchemy import create_engine

    parts = _hospitals()
    parts[0].to_parquet(tmp_path / "north.parquet", index=False)
    parts[1].to_csv(tmp_path / "south.csv", index=False)
    with sqlite3.connect(tmp_path / "west.db") as db:
        parts[2].to_sql("patients", db, index=False)
    url = postgres.create_database("east")
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        parts[3].to_sql("patients", conn, index=False)
    engine.dispose()
    data = [
        {"source": str(tmp_path / "north.parquet")},
        {"source": str(tmp_path / "south.csv")},
        {"source": f"sqlite:///{tmp_path / 'west.db'}", "query": "SELECT * FROM patients"},
        {"source": url, "query": "SELECT * FROM patients"},
    ]
    schema = infer_schema(pa.Table.from_pandas(pd.concat(parts), preserve_index=False), label="diagnosis")
    spec = {"dataset": "hospitals", "data_schema": schema.model_dump(), "partition": "organisation",
            "model": "logreg", "rounds": 3}  # fmt: skip
    cons = start_consortium(tmp_path, spec=spec, data=data, node_options={"availability_wait_s": 10})
    try:
        cons.wait_done(timeout=240)
        state = cons.coordinator.job_state(cons.job_id)
        assert state.phase == Phase.DONE and state.version == 4, cons.logs()  # statistics + 3 rounds
        report = cons.audit()
        assert_nothing_lost(cons, report)
        assert report.checks["aggregate"] == 4
        first = report.lineage[0]  # the statistics round (closes, like any round, on min_commits)
        assert first.version == 1 and sum(c["num_examples"] for c in first.contributors) >= 284
        trained = {t for e in report.lineage[1:] for t in (c["trainer"] for c in e.contributors)}
        assert trained == {o.address for o in cons.orgs}  # every kind of source went into a model
    finally:
        cons.stop()
