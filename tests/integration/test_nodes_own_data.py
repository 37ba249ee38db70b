"""Four organisations' nodes, each reading its own kind of source: Parquet, CSV, SQLite, PostgreSQL.

Real parts throughout: anvil over JSON-RPC, a `store serve` per organisation, a PostgreSQL
server started by the test, and sklearn's breast-cancer table split into four hospitals.
The model is the hospitals' own factory, approved by its code digest. Each node commits to
its rows before training; the job opens with the statistics round, then trains; the live
audit replays both and names every data commitment and the digest, and `fedledger data
prove` opens one hospital's commitment against the live chain.
"""

from __future__ import annotations

import itertools
import os
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
from fedledger.cli.main import main
from fedledger.data.commitment import Opening
from fedledger.data.encode import infer_schema
from fedledger.sim.deployment import start_consortium
from fedledger.training.code import code_digest

pytestmark = pytest.mark.anvil


def _hospitals() -> list[pd.DataFrame]:
    df = load_breast_cancer(as_frame=True).frame.copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["diagnosis"] = np.where(df.pop("target") == 1, "benign", "malignant")
    df = df.sample(frac=1.0, random_state=1).reset_index(drop=True)
    bounds = np.linspace(0, len(df), 5).astype(int)
    return [df.iloc[a:b].reset_index(drop=True) for a, b in itertools.pairwise(bounds)]


MODEL = """
from torch import nn


def build(*, input_shape, num_classes):
    return nn.Sequential(nn.Linear(input_shape[0], 8), nn.ReLU(), nn.Linear(8, num_classes))
"""


def test_four_nodes_on_parquet_csv_sqlite_and_postgresql_complete_and_audit(
    tmp_path: Path,
    postgres: PostgresServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sqlalchemy import create_engine

    code = tmp_path / "code"
    (code / "hospital_models").mkdir(parents=True)
    (code / "hospital_models" / "__init__.py").write_text("")
    (code / "hospital_models" / "model.py").write_text(MODEL)
    monkeypatch.syspath_prepend(str(code))  # the sponsor builds the initial model here
    # and every node imports the same package (ahead of, not instead of, any PYTHONPATH already set)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")])))
    digest = code_digest(["hospital_models.model:build"])
    assert digest.startswith("0x")

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
            "model": "hospital_models.model:build", "code_digest": digest, "rounds": 3}  # fmt: skip
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

        # the lineage goes on: contributors -> data commitments -> code digest
        assert report.code["code_digest"] == digest
        assert sorted(d["trainer"] for d in report.data) == sorted(o.address for o in cons.orgs)
        assert sorted(d["rows"] for d in report.data) == sorted(len(p) for p in parts)
        assert report.checks["data"] == 4
        openings = [Opening.read(tmp_path / f"node-{i}.job{cons.job_id}.opening.json") for i in (1, 2, 3, 4)]
        roots = {d["trainer"]: d["root"] for d in report.data}
        for org, opening in zip(cons.orgs, openings, strict=True):
            assert roots[org.address] == "0x" + opening.commitment.root.hex()
            mine = [c for e in report.lineage for c in e.contributors if c["trainer"] == org.address]
            assert mine and all(c.get("data_commitment") == roots[org.address] for c in mine)

        # south hospital shows an auditor its CSV, and only its CSV, against the live chain
        live = ["--rpc", cons.net.node.url, "--coordinator", cons.coordinator.address,
                "--job", str(cons.job_id), "--spec", str(tmp_path / "job.json")]  # fmt: skip
        south = tmp_path / f"node-2.job{cons.job_id}.opening.json"
        capsys.readouterr()
        assert main(["data", "prove", str(tmp_path / "south.csv"), "--opening", str(south), *live,
                     "--trainer", cons.orgs[1].address]) == 0  # fmt: skip
        assert "PROVEN: south.csv is the data org-02" in capsys.readouterr().out
        assert main(["data", "prove", str(tmp_path / "north.parquet"), "--opening", str(south), *live,
                     "--trainer", cons.orgs[1].address]) == 1  # fmt: skip
        assert "NOT PROVEN: north.parquet is not the data org-02 committed to" in capsys.readouterr().out
    finally:
        cons.stop()
