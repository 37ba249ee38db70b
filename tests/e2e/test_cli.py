"""The command line as a user meets it: one clear line for bad input, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedledger.sim.simulate import SimulationResult


def fedledger(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedledger.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_invalid_flag_value_names_the_field() -> None:
    proc = fedledger("simulate", "--rounds", "0", "--quiet")
    assert proc.returncode == 2
    assert _one_line_error(proc) == "error: job spec: rounds: Input should be greater than or equal to 1"


def test_invalid_spec_file_names_the_field(tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    spec.write_text(json.dumps({"trainers": 3, "quorum": 5}))
    proc = fedledger("simulate", "--spec", str(spec), "--quiet")
    assert proc.returncode == 2
    assert "quorum (5) exceeds committee (3)" in _one_line_error(proc)
    spec.write_text(json.dumps({"trainers": 3, "bogus": 1}))
    proc = fedledger("simulate", "--spec", str(spec), "--quiet")
    assert "job spec: bogus: Extra inputs are not permitted" in _one_line_error(proc)


def test_unreachable_rpc_is_one_line() -> None:
    proc = fedledger("simulate", "--rpc", "http://127.0.0.1:1", "--quiet", "--rounds", "1")
    assert proc.returncode == 2
    line = _one_line_error(proc)
    assert line.startswith("error: cannot reach the EVM node at http://127.0.0.1:1")


def test_krum_without_enough_trainers_fails_the_spec_check_up_front() -> None:
    proc = fedledger("simulate", "--aggregation", "krum", "--trainers", "6", "--quiet")
    assert proc.returncode == 2
    line = _one_line_error(proc)
    assert "krum with byzantine=2 needs n >= 2f+3 = 7 updates a round" in line
    assert "add trainers or lower byzantine" in line


def test_bad_malicious_fraction_is_one_line() -> None:
    proc = fedledger("simulate", "--attack", "sign-flip", "--malicious", "1.5", "--quiet")
    assert proc.returncode == 2
    assert "malicious fraction 1.5 must be in [0, 1)" in _one_line_error(proc)


def test_unknown_fault_is_one_line() -> None:
    proc = fedledger("simulate", "--fault", "explode@1", "--quiet")
    assert proc.returncode == 2
    assert "unknown fault 'explode'" in _one_line_error(proc)


def test_audit_of_a_non_run_directory(tmp_path: Path) -> None:
    proc = fedledger("audit", str(tmp_path))
    assert proc.returncode == 2
    assert "is not a run directory: spec.json is missing" in _one_line_error(proc)


def test_audit_cli_exit_codes(clean_run: tuple[Path, SimulationResult], tmp_path: Path) -> None:
    run, _ = clean_run
    ok = fedledger("audit", str(run), "--report", str(tmp_path / "report.json"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "AUDIT PASSED" in ok.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] is True and len(report["lineage"]) == 3


def test_simulate_cli_prints_the_round_table(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = fedledger(
        "simulate",
        "--dataset",
        "digits",
        "--model",
        "logreg",
        "--trainers",
        "3",
        "--rounds",
        "2",
        "--partition",
        "iid",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "round  status" in proc.stdout
    assert proc.stdout.count("finalized") >= 2
    assert "final test accuracy" in proc.stdout
    assert (out / "accuracy.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "flag",
    ["--trainers", "--rounds", "--dataset", "--partition", "--seed", "--alpha", "--aggregation",
     "--trim-fraction", "--byzantine", "--slash-fraction", "--max-flags", "--attack", "--malicious"],
)
def test_every_documented_flag_exists(flag: str) -> None:
    proc = fedledger("simulate", "--help")
    assert flag in proc.stdout


def test_an_aborted_job_says_so_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "aborted"
    proc = fedledger(
        "simulate",
        "--dataset",
        "digits",
        "--model",
        "logreg",
        "--trainers",
        "3",
        "--rounds",
        "3",
        "--partition",
        "iid",
        "--min-commits",
        "3",
        "--max-failures",
        "0",
        "--fault",
        "withhold-blob@1",
        "--out",
        str(out),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "job aborted after 1 failed rounds in a row (max_failures=0)" in proc.stdout
    card = json.loads((out / "model_card.json").read_text())
    assert card["outcome"] == "aborted" and card["rounds_finalized"] == 0


def test_a_run_directory_is_never_mixed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "simulate",
        "--dataset",
        "digits",
        "--model",
        "logreg",
        "--trainers",
        "3",
        "--rounds",
        "1",
        "--partition",
        "iid",
        "--quiet",
        "--out",
        str(out),
    ]
    assert fedledger(*args).returncode == 0
    again = fedledger(*args)
    assert again.returncode == 2
    assert "is not empty; choose another --out or pass --force" in _one_line_error(again)
    assert fedledger(*args, "--force").returncode == 0
    assert json.loads((out / "model_card.json").read_text())["outcome"] == "completed"


def test_store_serve_runs_a_blob_server(tmp_path: Path) -> None:
    from fedledger.chain.base import dev_accounts
    from fedledger.store.http import HttpStore

    org = dev_accounts(1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedledger.cli.main", "store", "serve", "--dir", str(tmp_path / "b"),
         "--port", "0", "--writer", org.address],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving blobs from" in line
        url = line.split(" at ")[1].split(" ")[0]
        c = HttpStore(url, org).put(b"served")
        assert HttpStore(url).get(c) == b"served"
        assert (tmp_path / "b").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_store_serve_bad_writer_is_one_line(tmp_path: Path) -> None:
    proc = fedledger("store", "serve", "--dir", str(tmp_path), "--writer", "not-an-address")
    assert proc.returncode == 2
    assert "--writer 'not-an-address' is not an Ethereum address" in _one_line_error(proc)
