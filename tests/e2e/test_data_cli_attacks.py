"""Attacks on `fedledger data commit|prove` and the audit of data commitments.

One small own-data simulation (a CSV hospital and a SQLite one) is shared by the module. Its
run directory is copied and edited as an adversary would edit it: an RPC-style chain.json
whose events cannot be re-executed, malformed exports, hand-edited openings, wrong sources.
Every refusal must be one line naming the problem.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fedledger.audit.run import audit_run_dir
from fedledger.cli.main import main

Export = dict[str, Any]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "a": rng.normal(size=n),
        "b": rng.normal(size=n),
        "y": np.where(rng.random(n) > 0.5, "yes", "no"),
    })  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data-attacks")
    sites = root / "sites"
    sites.mkdir()
    _frame(60, 0).to_csv(sites / "north.csv", index=False)
    with sqlite3.connect(sites / "west.db") as db:
        _frame(50, 1).to_sql("patients", db, index=False)
    code = main([
        "simulate", "--data", str(sites), "--query", "SELECT * FROM patients", "--label", "y",
        "--rounds", "1", "--model", "logreg", "--out", str(root / "run"), "--quiet",
    ])  # fmt: skip
    assert code == 0
    return root


def _prove(source: Path | str, opening: Path, run: Path, *extra: str) -> int:
    return main(["data", "prove", str(source), "--opening", str(opening), "--run", str(run), *extra])


def _opening(root: Path, org: str = "north") -> Path:
    return root / "run" / "private" / f"{org}.opening.json"


def _edited_run(root: Path, tmp_path: Path, edit: Callable[[Export], None], *, kind: str = "rpc") -> Path:
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    export = json.loads((run / "chain.json").read_text())
    export["chain"]["kind"] = kind
    edit(export)
    (run / "chain.json").write_text(json.dumps(export))
    return run


def _north_commitment(export: Export) -> dict[str, Any]:
    north = next(a for a, n in export["participants"].items() if n == "north")
    return next(e for e in export["events"] if e["name"] == "DataCommitted" and e["args"]["trainer"] == north)


def _fresh_opening(root: Path, source: Path | str, out: Path, *extra: str) -> None:
    spec = root / "run" / "spec.json"
    assert main(["data", "commit", str(source), "--spec", str(spec), "--out", str(out), *extra]) == 0


# -------------------------------------------------------------------- an RPC run's chain.json


def test_an_rpc_exports_verdict_says_it_was_not_re_executed(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _edited_run(root, tmp_path, lambda export: None)
    assert _prove(root / "sites" / "north.csv", _opening(root), run) == 0
    out = capsys.readouterr().out
    assert f"warning: {run}/chain.json was exported from an RPC node: its events are taken as exported" in out
    assert "for a binding one prove with --rpc" in out and "PROVEN: north.csv" in out


def test_a_forged_rpc_export_proves_another_file_only_under_the_warning(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing in a file can refute an edited RPC export: the verdict must not read as binding."""
    fake = tmp_path / "fake.opening.json"
    west = root / "sites" / "west.db"
    _fresh_opening(root, west, fake, "--organisation", "north", "--query", "SELECT * FROM patients")
    capsys.readouterr()
    forged = json.loads(fake.read_text())

    def forge(export: Export) -> None:
        _north_commitment(export)["args"].update(root=forged["root"], rows=forged["rows"])

    assert _prove(west, fake, _edited_run(root, tmp_path, forge)) == 0
    out = capsys.readouterr().out
    assert out.index("warning: ") < out.index("PROVEN: ")
    assert "taken as exported, not re-executed" in out


def test_a_data_committed_from_another_contract_is_not_the_registrys(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fixed in cli/data.py: any event named DataCommitted counted, whatever contract emitted it."""
    fake = tmp_path / "fake.opening.json"
    _fresh_opening(root, root / "sites" / "north.csv", fake)

    def forge(export: Export) -> None:
        event = dict(_north_commitment(export))
        event["address"] = "0x" + "12" * 20
        event["args"] = dict(event["args"], root=json.loads(fake.read_text())["root"])
        export["events"].insert(0, event)

    capsys.readouterr()
    assert _prove(root / "sites" / "north.csv", fake, _edited_run(root, tmp_path, forge)) == 1
    assert "NOT PROVEN: the opening" in capsys.readouterr().out


def test_an_rpc_export_with_another_case_or_text_fields_still_reads(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def recase(export: Export) -> None:
        event = _north_commitment(export)
        event["address"] = event["address"].lower()
        event["args"].update(
            trainer=event["args"]["trainer"].lower(), job_id="1", rows=str(event["args"]["rows"])
        )

    assert _prove(root / "sites" / "north.csv", _opening(root), _edited_run(root, tmp_path, recase)) == 0
    assert "PROVEN: north.csv is the data north" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("edit", "kind"),
    [
        (lambda e: _north_commitment(e)["args"].update(job_id="0x1"), "rpc"),
        (lambda e: e.update(job_id="one"), "rpc"),
        (lambda e: e.pop("events"), "rpc"),
        (lambda e: e["events"].insert(0, "an event"), "rpc"),
        (lambda e: e.update(participants=[1]), "rpc"),
        (lambda e: _north_commitment(e)["args"].update(root="0x12"), "rpc"),
        (lambda e: _north_commitment(e)["args"].pop("rows"), "rpc"),
        (lambda e: e.pop("transactions"), "inprocess"),
        (lambda e: e.update(chain="rpc"), "rpc"),
    ],
    ids=["job-id-hex", "export-job-id", "no-events", "event-not-object", "participants-list",
         "short-root", "no-rows", "no-transactions", "chain-not-object"],
)  # fmt: skip
def test_a_malformed_export_is_one_line_not_a_traceback(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Callable[[Export], None], kind: str
) -> None:
    """Fixed in cli/data.py: each of these was a Python traceback (load_export now refuses some first)."""
    run = _edited_run(root, tmp_path, edit, kind=kind)
    assert _prove(root / "sites" / "north.csv", _opening(root), run) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run}/chain.json") and len(err.splitlines()) == 1


# --------------------------------------------------------------------------- openings, sources


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("salt", "0x" + "ab" * 31, "opening has a malformed field: commitment '0xabab"),
        ("rows", -1, "opening has a malformed field: rows must be in 1..2^64-1, got -1"),
        ("format", "fedledger-data-opening/9", "not a data opening: expected an object with format"),
        ("query", ["SELECT 1"], "opening: organisation, source and query must be text"),
    ],
)
def test_a_hand_edited_opening_is_refused_before_anything_is_read(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object, message: str
) -> None:
    data = json.loads(_opening(root).read_text())
    data[field] = value
    bad = tmp_path / "bad.opening.json"
    bad.write_text(json.dumps(data))
    assert _prove(root / "sites" / "north.csv", bad, root / "run") == 2
    err = capsys.readouterr().err.strip()
    assert f"{bad}: {message}" in err and len(err.splitlines()) == 1


def test_another_organisations_opening_or_address_is_not_proven(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _prove(root / "sites" / "north.csv", _opening(root, "west"), root / "run") == 1
    assert (
        "NOT PROVEN: north.csv is not the data west committed to in job 1 of "
        f"{root / 'run'}: rows, root differ (60 rows here, 50 committed)"
    ) in capsys.readouterr().out
    # the right opening, the wrong organisation's address
    participants = json.loads((root / "run" / "chain.json").read_text())["participants"]
    west = next(a for a, n in participants.items() if n == "west")
    assert _prove(root / "sites" / "north.csv", _opening(root), root / "run", "--trainer", west) == 1
    assert "is not for north's commitment" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("two", "holds 2 sources; a commitment is to one organisation's"),
        ("empty", "holds no tables (.csv, .parquet, .pq, .db, .sqlite, .sqlite3) and no image folders"),
        ("missing.csv", "missing.csv: no such file or directory"),
        ("notes.txt", "unknown data format '.txt'"),
    ],
)
def test_a_wrong_source_is_one_line(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, message: str
) -> None:
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("a,b,y\n1,2,yes\n")
    (tmp_path / "two").mkdir()
    for name in ("north.csv", "south.csv"):
        shutil.copy(root / "sites" / "north.csv", tmp_path / "two" / name)
    assert _prove(tmp_path / source, _opening(root), root / "run") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_failing_query_is_one_line(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{root / 'sites' / 'west.db'}"
    assert _prove(db, _opening(root, "west"), root / "run", "--query", "SELECT * FRM patients") == 2
    err = capsys.readouterr().err.strip()
    assert 'the query failed: near "FRM": syntax error; check it with the sqlite3 shell' in err
    assert len(err.splitlines()) == 1
    assert _prove(db, _opening(root, "west"), root / "run") == 0  # the opening keeps the SELECT


def test_commit_out_into_a_missing_folder_is_one_line(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no" / "such" / "o.json"
    spec = root / "run" / "spec.json"
    code = main(["data", "commit", str(root / "sites" / "north.csv"), "--spec", str(spec), "--out", str(out)])
    assert code == 2
    assert f"cannot create {out}: No such file or directory" in capsys.readouterr().err
    assert not out.parent.exists()


def test_commit_names_a_database_and_a_one_table_folder_as_simulate_does(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fixed in cli/data.py: a database URL was "organisation" and a folder its own name, so
    `prove --run` found no participant."""
    url = tmp_path / "url.opening.json"
    _fresh_opening(root, f"sqlite:///{root / 'sites' / 'west.db'}", url, "--query", "SELECT * FROM patients")
    assert json.loads(url.read_text())["organisation"] == "west"
    folder = tmp_path / "north-site"
    folder.mkdir()
    shutil.copy(root / "sites" / "north.csv", folder)
    one = tmp_path / "folder.opening.json"
    _fresh_opening(root, folder, one)
    assert json.loads(one.read_text())["organisation"] == "north"
    capsys.readouterr()
    assert _prove(folder, one, root / "run") == 1  # found north's commitment: another salt
    assert "is not for north's commitment" in capsys.readouterr().out


# ------------------------------------------------------------------------- bugs outside the CLI


def test_a_partitioned_runs_openings_are_proven_by_the_file_they_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _frame(90, 2).to_csv(tmp_path / "all.csv", index=False)
    run = tmp_path / "run"
    code = main([
        "simulate", "--data", str(tmp_path / "all.csv"), "--label", "y", "--partition", "iid",
        "--trainers", "3", "--rounds", "1", "--model", "logreg", "--out", str(run), "--quiet",
    ])  # fmt: skip
    assert code == 0
    opening = run / "private" / "org-01.opening.json"
    assert _prove(json.loads(opening.read_text())["source"], opening, run) == 0


def test_the_audit_reports_a_malformed_data_commitment(root: Path, tmp_path: Path) -> None:
    run = _edited_run(root, tmp_path, lambda export: _north_commitment(export)["args"].update(rows=0))
    report = audit_run_dir(run)
    assert any(f.check == "data" and f.severity == "error" for f in report.findings)


def test_the_audit_reads_a_lower_case_registry_address(root: Path, tmp_path: Path) -> None:
    def lower(export: Export) -> None:
        event = _north_commitment(export)
        event["address"] = event["address"].lower()

    report = audit_run_dir(_edited_run(root, tmp_path, lower))
    assert not [f for f in report.findings if f.check == "data" and f.severity == "error"]
