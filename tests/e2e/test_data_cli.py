"""`fedledger data commit|prove`: an organisation opens its data commitment for one file only.

One own-data simulation (three hospitals: CSV, Parquet, SQLite) is shared by the module;
each test hands `data prove` a file and an opening, as an organisation would hand them to
an auditor, and checks the verdict and its exit status: 0 proven, 1 not, 2 a usage error.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from fedledger.cli.main import main
from fedledger.spec import JobSpec


def _hospitals(root: Path) -> Path:
    df = load_breast_cancer(as_frame=True).frame.copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["diagnosis"] = np.where(df.pop("target") == 1, "benign", "malignant")
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    sites = root / "hospitals"
    sites.mkdir(parents=True)
    df.iloc[:190].to_csv(sites / "north.csv", index=False)
    df.iloc[190:380].to_parquet(sites / "south.parquet", index=False)
    with sqlite3.connect(sites / "west.db") as db:
        df.iloc[380:].to_sql("patients", db, index=False)
    return sites


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data-cli")
    sites = _hospitals(root)
    code = main(
        [
            "simulate",
            "--data",
            str(sites),
            "--query",
            "SELECT * FROM patients",
            "--label",
            "diagnosis",
            "--rounds",
            "1",
            "--model",
            "logreg",
            "--out",
            str(root / "run"),
            "--quiet",
        ]
    )
    assert code == 0
    return root


def prove(run: Path, source: Path | str, org: str, *extra: str) -> int:
    return main(
        [
            "data",
            "prove",
            str(source),
            "--opening",
            str(run / "run" / "private" / f"{org}.opening.json"),
            "--run",
            str(run / "run"),
            *extra,
        ]
    )


def test_each_organisation_proves_its_own_file_in_any_format(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = run / "hospitals"
    assert prove(run, sites / "north.csv", "north") == 0
    assert "PROVEN: north.csv is the data north" in capsys.readouterr().out
    assert prove(run, sites / "west.db", "west") == 0  # the opening keeps the SELECT
    # the commitment is to canonical rows: the same rows as Parquet prove the CSV's commitment
    pd.read_csv(sites / "north.csv").to_parquet(run / "north-copy.parquet", index=False)
    assert prove(run, run / "north-copy.parquet", "north") == 0
    out = capsys.readouterr().out
    assert out.count("PROVEN:") == 2 and "190 rows" in out


def test_openings_are_private_files(run: Path) -> None:
    for org in ("north", "south", "west"):
        path = run / "run" / "private" / f"{org}.opening.json"
        assert path.stat().st_mode & 0o777 == 0o600
        assert json.loads(path.read_text())["organisation"] == org
    assert (run / "run" / "private").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda df: df.assign(mean_radius=df.mean_radius.where(df.index != 7, df.mean_radius + 0.5)),
            "root differs",
        ),
        (lambda df: df.drop(index=3), "rows, root differ (189 rows here, 190 committed)"),
        (lambda df: df.iloc[::-1], "root differs"),  # the same rows in another order
        (
            lambda df: df.assign(
                diagnosis=df.diagnosis.where(
                    df.index != 0, "benign" if df.diagnosis[0] == "malignant" else "malignant"
                )
            ),
            "root differs",
        ),
    ],
    ids=["one-value", "one-row-dropped", "reordered", "one-label"],
)
def test_any_change_to_the_file_is_not_proven(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: object, expected: str
) -> None:
    df = pd.read_csv(run / "hospitals" / "north.csv")
    edited = edit(df)  # type: ignore[operator]
    edited.to_csv(tmp_path / "north.csv", index=False)
    assert prove(run, tmp_path / "north.csv", "north") == 1
    out = capsys.readouterr().out
    assert (
        f"NOT PROVEN: north.csv is not the data north committed to in job 1 of {run / 'run'}: {expected}"
        in out
    )


def test_another_organisations_file_or_opening_is_not_proven(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites = run / "hospitals"
    assert prove(run, sites / "south.parquet", "north") == 1
    assert "south.parquet is not the data north committed to" in capsys.readouterr().out
    # a fresh commitment of the right file has another salt: it does not open the one on chain
    fresh = run / "fresh.opening.json"
    assert (
        main(
            [
                "data",
                "commit",
                str(sites / "north.csv"),
                "--spec",
                str(run / "run" / "spec.json"),
                "--out",
                str(fresh),
            ]
        )
        == 0
    )
    assert "opening: " in capsys.readouterr().out
    assert (
        main(["data", "prove", str(sites / "north.csv"), "--opening", str(fresh), "--run", str(run / "run")])
        == 1
    )
    assert "is not for north's commitment in job 1" in capsys.readouterr().out
    assert (
        main(
            [
                "data",
                "prove",
                str(sites / "north.csv"),
                "--opening",
                str(fresh),
                "--run",
                str(run / "run"),
                "--trainer",
                "0x" + "ab" * 20,
            ]
        )
        == 1
    )
    assert "posted no data commitment" in capsys.readouterr().out


def test_commit_never_replaces_an_opening(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run / "once.opening.json"
    args = [
        "data",
        "commit",
        str(run / "hospitals" / "south.parquet"),
        "--spec",
        str(run / "run" / "spec.json"),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    before = out.read_text()
    assert main(args) == 2
    assert "already exists: an opening is never overwritten" in capsys.readouterr().err
    assert out.read_text() == before


def test_bad_inputs_are_one_line_errors(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sites, spec = run / "hospitals", run / "run" / "spec.json"
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "fedledger-data-opening/1", "salt": ')
    assert (
        main(["data", "prove", str(sites / "north.csv"), "--opening", str(bad), "--run", str(run / "run")])
        == 2
    )
    assert "opening is not valid JSON" in capsys.readouterr().err
    opening = run / "run" / "private" / "north.opening.json"
    assert main(["data", "prove", str(sites / "north.csv"), "--opening", str(opening)]) == 2
    assert (
        "give --run RUN_DIR, or --rpc with --coordinator, --job, --spec, --trainer" in capsys.readouterr().err
    )
    assert (
        main(["data", "prove", str(sites / "north.csv"), "--opening", str(opening), "--run", str(tmp_path)])
        == 2
    )
    assert "is not a run directory" in capsys.readouterr().err
    bundled = tmp_path / "bundled.json"
    bundled.write_text(json.dumps(JobSpec().model_dump(mode="json")))
    assert (
        main(
            [
                "data",
                "commit",
                str(sites / "north.csv"),
                "--spec",
                str(bundled),
                "--out",
                str(tmp_path / "o.json"),
            ]
        )
        == 2
    )
    assert "has no data commitments" in capsys.readouterr().err
    pd.read_csv(sites / "north.csv").drop(columns=["mean_radius"]).to_csv(tmp_path / "north.csv", index=False)
    assert (
        main(
            [
                "data",
                "commit",
                str(tmp_path / "north.csv"),
                "--spec",
                str(spec),
                "--out",
                str(tmp_path / "o.json"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "mean_radius" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.json").exists()  # nothing half-written


def test_an_edited_chain_export_is_refused(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run / "run", copy)
    os.chmod(copy / "private", 0o700)
    export = json.loads((copy / "chain.json").read_text())
    committed = next(e for e in export["events"] if e["name"] == "DataCommitted")
    committed["args"]["root"] = "0x" + "11" * 32
    (copy / "chain.json").write_text(json.dumps(export))
    code = main(
        [
            "data",
            "prove",
            str(run / "hospitals" / "north.csv"),
            "--opening",
            str(copy / "private" / "north.opening.json"),
            "--run",
            str(copy),
        ]
    )
    assert code == 2
    assert "does not re-execute as recorded" in capsys.readouterr().err
