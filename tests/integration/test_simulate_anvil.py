"""The whole protocol against a real EVM node: simulate on anvil, then audit the live chain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fedledger.audit.run import audit_live, audit_run_dir
from fedledger.chain.anvil import AnvilNode
from fedledger.chain.rpc import RpcChain
from fedledger.sim.faults import Fault
from fedledger.sim.simulate import Simulation, SimulationResult
from fedledger.spec import JobSpec

pytestmark = pytest.mark.anvil

SPEC = JobSpec.from_dict(
    dict(
        dataset="digits",
        model="logreg",
        trainers=4,
        rounds=3,
        local_epochs=2,
        partition="iid",
        name="anvil-e2e",
        min_commits=2,
    )
)


@pytest.fixture(scope="module")
def anvil_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationResult, str]:
    node = AnvilNode(accounts=10)  # a pristine node: the job is the only one on it
    out = tmp_path_factory.mktemp("anvil") / "run"
    try:
        result = Simulation(
            SPEC, out_dir=out, chain=RpcChain(node.url), faults=[Fault.parse("withhold-blob@3:2")]
        ).run()
        yield out, result, node.url
    finally:
        node.stop()


def test_job_completes_on_anvil(anvil_run: tuple[Path, SimulationResult, str]) -> None:
    out, result, _url = anvil_run
    assert [m.status for m in result.rounds] == ["finalized"] * 3
    assert [m.rejected for m in result.rounds] == [0, 1, 1]  # org-03 withholds from round 2
    assert "org-03: blob not available in the store" in (out / "run.log").read_text()
    export = json.loads((out / "chain.json").read_text())
    assert export["chain"]["kind"] == "rpc"
    commits = [t for t in export["transactions"] if t["function"] == "commit"]
    assert len(commits) == 12 and all(t["gas_used"] <= 50_000 for t in commits)


def test_live_audit_passes(anvil_run: tuple[Path, SimulationResult, str]) -> None:
    out, result, url = anvil_run
    export = json.loads((out / "chain.json").read_text())
    participants = out / "participants.json"
    participants.write_text(json.dumps(export["participants"]))
    report = audit_live(
        rpc_url=url,
        coordinator=export["contracts"]["Coordinator"],
        job_id=result.job_id,
        store_dir=out / "store",
        spec_path=out / "spec.json",
        participants_path=participants,
    )
    assert report.ok, [f.line() for f in report.findings]
    assert report.checks["aggregate"] == 3
    assert report.lineage[-1].commitment == "0x" + result.final_commitment.hex()


def test_live_audit_catches_a_tampered_store(
    anvil_run: tuple[Path, SimulationResult, str], tmp_path: Path
) -> None:
    out, result, url = anvil_run
    import shutil

    store = tmp_path / "store"
    shutil.copytree(out / "store", store)
    victim = store / f"{result.final_commitment.hex()}.safetensors"
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0x40
    victim.write_bytes(bytes(data))
    export = json.loads((out / "chain.json").read_text())
    report = audit_live(
        rpc_url=url,
        coordinator=export["contracts"]["Coordinator"],
        job_id=result.job_id,
        store_dir=store,
        spec_path=out / "spec.json",
    )
    assert not report.ok
    assert any("model version 3" in f.artefact and "fails its hash" in f.message for f in report.findings)


def test_rpc_export_is_checked_without_reexecution(anvil_run: tuple[Path, SimulationResult, str]) -> None:
    out, _, _ = anvil_run
    report = audit_run_dir(out)
    assert report.ok, [f.line() for f in report.findings]
    assert any(f.check == "chain-export" and f.severity == "warning" for f in report.findings)


def test_live_audit_cli(anvil_run: tuple[Path, SimulationResult, str]) -> None:
    out, result, url = anvil_run
    export = json.loads((out / "chain.json").read_text())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedledger.cli.main",
            "audit",
            "--rpc",
            url,
            "--coordinator",
            export["contracts"]["Coordinator"],
            "--job",
            str(result.job_id),
            "--store",
            str(out / "store"),
            "--spec",
            str(out / "spec.json"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "AUDIT PASSED" in proc.stdout
    wrong = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedledger.cli.main",
            "audit",
            "--rpc",
            url,
            "--coordinator",
            export["contracts"]["Coordinator"],
            "--job",
            "99",
            "--store",
            str(out / "store"),
            "--spec",
            str(out / "spec.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert wrong.returncode == 2
    assert "job 99 does not exist" in wrong.stderr and "Traceback" not in wrong.stderr
