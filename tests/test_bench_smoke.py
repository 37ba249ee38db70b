"""The benchmark scripts still run (their quick forms); bars are judged by `make bench`, not here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.anvil
def test_quick_benchmarks_run() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for figure in ("Gas per trainer commit", "Coordination overhead", "Fixed-point accuracy cost",
                   "Secure aggregation: server unmasking", "Discrete Gaussian central noise",
                   "Accuracy under DP", "Loading an organisation's Parquet table",
                   "Deployment: 4 node processes", "Audit time of a run directory",
                   "Scale: fedledger / Flower"):
        assert figure in proc.stdout


def test_dp_noise_bench_runs_at_tiny_size() -> None:
    """Seconds, so it runs with the unit tests: the noise bench's quick form (10k coordinates)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "dp_noise.py"), "--quick"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "central_noise" in proc.stdout and "PASS" in proc.stdout


def test_data_loading_bench_runs_at_tiny_size() -> None:
    """Seconds: the data-loading bench's quick form (20,000 rows in CSV, Parquet and SQLite)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "data_loading.py"), "--quick"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for fmt in ("CSV", "Parquet", "SQLite"):
        assert f"{fmt}: load_local ×" in proc.stdout


@pytest.mark.anvil
def test_challenge_gas_bench_runs_at_tiny_size() -> None:
    """~30 s: one-chunk fraud proofs for 10 trainers on anvil with EIP-7825's cap enforced,
    every rule, in one transaction and split, each struck (the bench asserts it)."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "challenge_gas.py"), "--quick"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for rule in ("fedavg", "clipped_fedavg", "median", "trimmed_mean"):
        assert f"{rule} ±2^61  " in proc.stdout
    assert "under the cap (largest" in proc.stdout and "PASS" in proc.stdout


@pytest.mark.anvil
def test_optimistic_bench_runs_at_tiny_size() -> None:
    """~15 s: a round in quorum and optimistic mode and a bound challenge (struck: the bench
    asserts it) on osaka anvil, 6,000 parameters; the property test is left to the full run."""
    cmd = [sys.executable, str(ROOT / "bench" / "optimistic.py"), "--quick", "--skip-conservation"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "optimistic / quorum (bar <= 40%)" in proc.stdout
    assert "commit path untouched (same gas in both modes): PASS" in proc.stdout
    assert "under the cap (largest split step" in proc.stdout
