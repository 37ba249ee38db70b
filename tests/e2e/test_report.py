"""`fedledger report` over a finished run: its numbers are the run's and the chain's.

One small differentially private run (digits/mlp, 4 trainers, 3 rounds); the report is built
from it in JSON (numbers, round trip), HTML (every finalising transaction), and PDF rendered
to PNG pages with poppler's pdftoppm and read back with pdftotext.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import small_spec
from PIL import Image

import fedledger
from fedledger.report.build import FORMAT, build_report
from fedledger.report.inputs import from_run_dir
from fedledger.report.render import to_html, to_json
from fedledger.sim.simulate import Simulation, SimulationResult

SRC = str(Path(fedledger.__file__).resolve().parents[1])


def fedledger_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it; PYTHONPATH carries this checkout's src to the child."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "fedledger.cli.main", "report", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def dp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationResult]:
    out = tmp_path_factory.mktemp("report") / "dp"
    result = Simulation(small_spec(trainers=4, rounds=3, dp_epsilon=8.0), out_dir=out).run()
    assert result.outcome == "completed"
    return out, result


@pytest.fixture(scope="module")
def report(dp_run: tuple[Path, SimulationResult]) -> dict[str, Any]:
    return build_report(from_run_dir(dp_run[0]))


def test_the_numbers_are_the_runs_and_the_chains(
    dp_run: tuple[Path, SimulationResult], report: dict[str, Any]
) -> None:
    out, result = dp_run
    export = json.loads((out / "chain.json").read_text())
    card = json.loads((out / "model_card.json").read_text())
    assert report["format"] == FORMAT and report["audit"]["ok"]
    assert report["job"]["rounds_finalized"] == len(result.rounds) == 3
    perf = report["performance"]
    assert [p["round"] for p in perf] == [m.round for m in result.rounds]
    assert [p["test_accuracy"] for p in perf] == [m.test_accuracy for m in result.rounds]
    assert all(p["accuracy_checked_by_audit"] for p in perf)
    # ε: the chain's PrivacySpent per round, and the audit's re-derived total
    spent = [e["args"]["micro_epsilon"] / 1e6 for e in export["events"] if e["name"] == "PrivacySpent"]
    assert [p["epsilon"] for p in perf] == spent == [m.epsilon for m in result.rounds]
    privacy = report["method"]["privacy"]
    assert privacy["epsilon_spent"] == result.epsilon_spent and privacy["delta"] == 1e-5
    # payouts: what each organisation withdrew, as the card and the simulator saw it
    orgs = {o["organisation"]: o for o in report["organisations"]}
    assert sorted(orgs) == sorted(card["payouts"])
    for org, paid in card["payouts"].items():
        assert orgs[org]["withdrawn"] == paid
        e = result.earnings[org]
        assert int(orgs[org]["withdrawn"]) == e.reward + e.fees + e.stake
        assert orgs[org]["rounds_committed"] == 3 and orgs[org]["flags"] == 0
    # every change names its contributors; every event carries its time, block and transaction
    assert [c["version"] for c in report["changes"]] == [1, 2, 3]
    assert all(len(c["contributors"]) == 4 for c in report["changes"])
    job_events = [e for e in export["events"] if e["args"].get("job_id") == report["job"]["job_id"]]
    assert [(e["tx_hash"], e["log_index"]) for e in report["event_log"]] == [
        (e["tx_hash"], e["log_index"]) for e in job_events
    ]
    assert all(e["time"].endswith("Z") and e["block"] > 0 for e in report["event_log"])
    assert report["skew"]["diverging"] == []
    blanks = [p for s in report["annex_iv"] for p in s["provider"]]
    assert any("intended purpose" in b for b in blanks) and len(report["annex_iv"]) == 9
    assert report["purpose"]["provider_statement"] is None


def test_json_round_trips_and_the_cli_writes_the_same_structure(
    dp_run: tuple[Path, SimulationResult], report: dict[str, Any], tmp_path: Path
) -> None:
    assert json.loads(to_json(report)) == report
    proc = fedledger_cli(str(dp_run[0]), "--format", "json", "--out", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    written = json.loads((tmp_path / "r.json").read_text())
    assert {**written, "generated_at": ""} == {**report, "generated_at": ""}


def test_html_holds_every_finalising_transaction(report: dict[str, Any]) -> None:
    html = to_html(report)
    for p in report["performance"]:
        assert p["tx_hash"] in html
    assert "[to be completed by the provider]" in html and "<script" not in html


@pytest.mark.skipif(not shutil.which("pdftoppm"), reason="poppler-utils: make report-deps installs it")
def test_pdf_renders_to_pages_whose_text_is_the_report(
    dp_run: tuple[Path, SimulationResult], report: dict[str, Any], tmp_path: Path
) -> None:
    pdf = tmp_path / "report.pdf"
    proc = fedledger_cli(str(dp_run[0]), "--format", "pdf", "--out", str(pdf))
    assert proc.returncode == 0, proc.stderr
    assert pdf.read_bytes().startswith(b"%PDF-")
    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    count = int(next(ln.split()[-1] for ln in info.splitlines() if ln.startswith("Pages:")))
    assert len(pages) == count and 4 <= count <= 20
    for page in pages:  # none blank: every page has ink
        lo, _ = Image.open(page).convert("L").getextrema()
        assert lo < 128, f"{page.name} is blank"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    flat = " ".join(text.split())
    for needle in (
        "Compliance report: job 1",
        "Intended purpose and spec",
        "Annex IV",
        "Art. 12",
        "Contribution skew",
        "What the audit verified, and what it did not",
        "EU declaration of conformity",
        "[to be completed by the provider]",
        f"ε spent {report['method']['privacy']['epsilon_spent']:.4f} of budget 8.0",
        f"{report['performance'][-1]['test_accuracy']:.4f}",
        "PASSED",
    ):
        assert needle in flat, needle
    for org in report["organisations"]:
        assert org["organisation"] in flat


def test_a_bad_run_dir_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "spec.json").write_text("{}")
    for where, says in (
        (tmp_path / "absent", "is not a directory"),
        (tmp_path / "half", "chain.json is missing"),
    ):
        proc = fedledger_cli(str(where), "--format", "pdf")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and says in lines[0], proc.stderr
    proc = fedledger_cli("--rpc", "http://127.0.0.1:9")
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == "error: --rpc needs --coordinator, --job, --store, --spec"
    )
