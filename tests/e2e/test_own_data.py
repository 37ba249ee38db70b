"""`fedledger simulate` on the organisations' own files, as a consortium would run it.

Real data, offline: sklearn's Wisconsin breast-cancer table (569 rows, 30 numeric features)
written as one file per hospital (CSV, Parquet, SQLite), and the Lending Club example's
lenders. Every run is audited; every refusal is one line and leaves no run directory.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from fedledger.data.discover import discover, infer_job_schema
from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec
from fedledger.training.own import OwnSources


def fedledger(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fedledger.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)  # fmt: skip


def _table() -> pd.DataFrame:
    bunch = load_breast_cancer(as_frame=True)
    df = bunch.frame.copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["diagnosis"] = np.where(df.pop("target") == 1, "benign", "malignant")
    return df


def _hospitals(root: Path) -> tuple[Path, Path]:
    """Three hospitals in three formats, and the sponsor's test file."""
    df = _table().sample(frac=1.0, random_state=0).reset_index(drop=True)
    test, a, b, c = df.iloc[:120], df.iloc[120:270], df.iloc[270:420], df.iloc[420:]
    sites = root / "hospitals"
    sites.mkdir(parents=True)
    a.to_csv(sites / "north.csv", index=False)
    b.to_parquet(sites / "south.parquet", index=False)
    with sqlite3.connect(sites / "west.db") as db:
        c.to_sql("patients", db, index=False)
    test.to_parquet(root / "test.parquet", index=False)
    return sites, root / "test.parquet"


def test_three_hospitals_in_three_formats_train_audit_and_name_their_data(tmp_path: Path) -> None:
    sites, test = _hospitals(tmp_path)
    out = tmp_path / "run"
    proc = fedledger(
        "simulate", "--data", str(sites), "--query", "SELECT * FROM patients", "--label", "diagnosis",
        "--test-data", str(test), "--rounds", "3", "--model", "logreg", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    card = json.loads((out / "model_card.json").read_text())
    assert card["dataset"] == "hospitals" and card["partition"] == "organisation"
    assert card["data"]["rows"] == {"north": 150, "south": 150, "west": 149}
    assert card["data"]["test_rows"] == 120 and card["data"]["standardise"] == "federated"
    assert card["final_test_accuracy"] > 0.9  # z-scored logistic regression on this table: ~0.97
    assert card["rounds_finalized"] == 4  # the statistics round, then 3 training rounds
    assert "3 rounds finalised after the statistics round" in proc.stdout  # as asked: --rounds 3
    spec = json.loads((out / "spec.json").read_text())
    assert spec["data_schema"]["label"] == "diagnosis" and len(spec["data_schema"]["features"]) == 30
    audit = fedledger("audit", str(out))
    assert audit.returncode == 0, audit.stdout[-3000:]
    report = json.loads((out / "audit.json").read_text())
    assert report["ok"] and report["lineage"][0]["version"] == 1


def test_the_statistics_round_standardises_like_the_pooled_data(tmp_path: Path) -> None:
    """Version 1's committed sums are exactly the pooled table's, so every hospital z-scores alike."""
    sites, test = _hospitals(tmp_path)
    sources, names = discover([str(sites)], query="SELECT * FROM patients")
    schema = infer_job_schema(sources, label="diagnosis")
    spec = JobSpec.from_dict({"dataset": "hospitals", "data_schema": schema.model_dump(), "trainers": 3,
                              "partition": "organisation", "model": "logreg", "rounds": 1})  # fmt: skip
    test_source = discover([str(test)])[0][0]
    own = OwnSources(tuple(sources), tuple(names), test_source)
    sim = Simulation(spec, out_dir=tmp_path / "run", data=own)
    raw = np.concatenate([lt.data.x for lt in sim.local])
    sim.run()
    from fedledger.data import stats

    v1 = sim.store.get_tensors(sim.reader.rounds[1].finalized.args["aggregate"])  # type: ignore[union-attr]
    pooled = stats.contribution(raw[:, : len(schema.numeric)], spec.scale_bits)
    for name in stats.NAMES:
        assert [stats.from_limbs(d) for d in np.atleast_2d(v1[name])] == [
            stats.from_limbs(d) for d in np.atleast_2d(pooled[name])
        ]
    z = sim.local[0].client.x_train
    mean, std = stats.standardiser(pooled, spec.scale_bits)
    np.testing.assert_allclose(z[:, 0], (sim.local[0].data.x[:, 0] - mean[0]) / std[0], rtol=1e-5, atol=1e-5)


def test_secure_aggregation_masks_the_statistics_and_ends_on_the_plain_run_s_model(tmp_path: Path) -> None:
    """SecAgg+ sums the masked statistics and updates exactly: the same final commitment as plain."""
    sites, test = _hospitals(tmp_path)
    finals = []
    for privacy in ("none", "secagg"):
        out = tmp_path / privacy
        proc = fedledger(
            "simulate", "--data", str(sites), "--query", "SELECT * FROM patients", "--label", "diagnosis",
            "--test-data", str(test), "--rounds", "2", "--model", "logreg", "--privacy", privacy,
            "--out", str(out), "--quiet",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        finals.append(json.loads((out / "model_card.json").read_text())["final_model_commitment"])
        assert fedledger("audit", str(out)).returncode == 0
    assert finals[0] == finals[1]


def test_one_table_split_by_a_natural_column(tmp_path: Path) -> None:
    df = _table()
    df["site"] = np.where(df["mean_radius"] > 14, "large", np.where(df["mean_radius"] > 12, "mid", "small"))
    path = tmp_path / "all.parquet"
    df.to_parquet(path, index=False)
    out = tmp_path / "run"
    proc = fedledger("simulate", "--data", str(path), "--label", "diagnosis", "--partition", "key", "--key",
                     "site", "--trainers", "3", "--rounds", "2", "--model", "logreg", "--out", str(out),
                     "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    spec = json.loads((out / "spec.json").read_text())
    assert spec["partition"] == "key" and spec["partition_key"] == "site"
    assert "site" not in [f["name"] for f in spec["data_schema"]["features"]]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda df: df.assign(mean_radius=df["mean_radius"].where(df.index % 10 != 0)),
         "error: south (south.parquet): column 'mean_radius': 15 of 150 rows are empty (null)"),
        (lambda df: df.drop(columns=["mean_texture"]), "error: south (south.parquet): column 'mean_texture'"),
    ],
)  # fmt: skip
def test_a_hospital_whose_data_breaks_the_schema_is_refused_in_one_line_and_nothing_is_written(
    tmp_path: Path, damage: object, message: str
) -> None:
    sites, test = _hospitals(tmp_path)
    spec_dir = tmp_path / "spec"
    out = tmp_path / "run"
    # the consortium's schema is fixed first (from the intact files), then one hospital's file breaks
    sources, _ = discover([str(sites)], query="SELECT * FROM patients")
    schema = infer_job_schema(sources, label="diagnosis")
    spec_dir.mkdir()
    (spec_dir / "job.json").write_text(json.dumps({"dataset": "hospitals", "data_schema": schema.model_dump(),
                                                   "model": "logreg", "rounds": 1}))  # fmt: skip
    south = sites / "south.parquet"
    damage(pd.read_parquet(south)).to_parquet(south, index=False)  # type: ignore[operator]
    proc = fedledger("simulate", "--spec", str(spec_dir / "job.json"), "--data", str(sites), "--query",
                     "SELECT * FROM patients", "--test-data", str(test), "--out", str(out),
                     "--quiet")  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
    assert not out.exists()
