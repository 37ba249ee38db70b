"""Organisations as separate OS processes on a real anvil node, each with its own blob server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from consortium_harness import assert_nothing_lost, start_consortium

from fedledger.chain.contracts import Phase

pytestmark = pytest.mark.anvil


def test_four_organisations_complete_a_job_unattended_and_it_audits(tmp_path: Path) -> None:
    """Devnet + 4 nodes, each with its partition and its own `store serve`: 5 rounds, then a live audit."""
    cons = start_consortium(tmp_path, node_options={"availability_wait_s": 10})
    try:
        cons.wait_done(timeout=240)
        state = cons.coordinator.job_state(cons.job_id)
        assert state.phase == Phase.DONE and state.version == 5, cons.logs()
        # every organisation committed to every round, and its blobs live on its own server
        for r, trainers in cons.commits_by_round().items():
            assert sorted(trainers) == sorted(o.address for o in cons.orgs), r
        for o in cons.orgs:
            assert len(list(o.store_dir.glob("**/*"))) > 0
            log = o.log.read_text()
            assert log.count("FINALIZED") == 5 and "rewards (" in log, log[-2000:]
        report = cons.audit()
        assert_nothing_lost(cons, report)
        assert report.checks["aggregate"] == 5
    finally:
        cons.stop()


def test_json_logs_are_one_object_a_line(tmp_path: Path) -> None:
    cons = start_consortium(tmp_path, orgs=2, spec={"rounds": 1}, start_nodes=False)
    try:
        import subprocess
        import sys

        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "fedledger.cli.main",
                    "node",
                    "--config",
                    str(o.config),
                    "--log-format",
                    "json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for o in cons.orgs
        ]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        records = [json.loads(line) for line in outs[0].splitlines() if line.strip()]
        assert {"time", "level", "logger", "message"} <= set(records[0])
        assert any("round 1 FINALIZED" in r["message"] for r in records)
    finally:
        cons.stop()
