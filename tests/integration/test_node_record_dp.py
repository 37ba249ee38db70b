"""A record-level DP job run by node processes: DP-SGD in every trainer, each one's ε on chain.

The budget affords one round of the two the spec asks for, so every node trains and posts its
spend once, then says in one line that its records' budget is spent and commits no more; the
second round gets no update, fails when its window closes, and (max_failures = 0) the job
aborts. The live audit recomputes every organisation's ε from the commits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.chain.contracts import Phase
from fedledger.roles.record_dp import micro_epsilon_after
from fedledger.sim.deployment import start_consortium
from fedledger.spec import JobSpec

pytestmark = pytest.mark.anvil

#: ε = 3.5 affords one round of 8 DP-SGD steps at z = 1, q = 0.1 (ε 3.25; two would be 3.94)
RECORD = {
    "dp_level": "record",
    "dp_epsilon": 3.5,
    "dp_noise_multiplier": 1.0,
    "dp_sample_rate": 0.1,
    "dp_local_steps": 8,
    "rounds": 2,
    "max_failures": 0,
    # round 1's window is also the nodes' time to start (four processes import torch and Opacus
    # at once; with 60 s one run on 2 loaded cores failed)
    "commit_window_s": 90,
}


def test_record_level_job_on_nodes_posts_each_spend_and_stops_at_the_budget(tmp_path: Path) -> None:
    cons = start_consortium(tmp_path, spec=RECORD)
    try:
        cons.wait_done(timeout=300)
        state = cons.coordinator.job_state(cons.job_id)
        assert state.phase == Phase.ABORTED and state.version == 1, cons.logs()
        assert {r: len(ts) for r, ts in cons.commits_by_round().items()} == {1: 4}
        spec = JobSpec.load(tmp_path / "job.json")
        assert spec.dp_rounds_affordable == 1
        registry = cons.coordinator.data_registry()
        posted = [
            (e.args["trainer"], e.args["round"], e.args["micro_epsilon"])
            for e in registry.events()
            if e.name == "TrainerPrivacySpent" and e.args["job_id"] == cons.job_id
        ]
        one = micro_epsilon_after(spec, 1)
        assert sorted(posted) == sorted((o.address, 1, one) for o in cons.orgs), posted
        for o in cons.orgs:
            assert registry.privacy_spent(cons.job_id, o.address) == (1, one)
            log = o.log.read_text()
            stops = [line for line in log.splitlines() if "not training: one more round would spend" in line]
            assert len(stops) == 1, log[-3000:]
            assert stops[0].endswith(f"spent over 1 rounds); it commits no more updates in job {cons.job_id}")
        report = cons.audit()
        assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
        for o in cons.nodes:  # the aborted job's stakes came back
            assert cons.coordinator.claimable(cons.job_id, o.address) == 0, f"org {o.index} left rewards"
            assert cons.coordinator.stake_of(cons.job_id, o.address) == 0, f"org {o.index} left its stake"
        assert {o["rounds"] for o in report.privacy["organisations"].values()} == {1}
        assert report.checks["privacy"] == 4
    finally:
        cons.stop()
