"""A sampled job on organisations' nodes: only the drawn train and only the drawn committee proposes.

Five node processes on a real anvil with their own `store serve`; each round the sampler
draws three trainers and a committee of three. The sponsor starts round 1's draw with
`fedledger job start` once all five have enrolled; a live `fedledger audit --rpc`
then re-derives every draw.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedledger.chain.contracts import Phase
from fedledger.chain.sampling import LANE_COMMITTEE, LANE_TRAINERS, Draw
from fedledger.cli.main import main
from fedledger.sim.deployment import start_consortium

pytestmark = pytest.mark.anvil

ROUNDS = 3


def test_five_nodes_three_drawn_a_round(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {"rounds": ROUNDS, "clients_per_round": 3, "validators_per_round": 3, "commit_window_s": 300}
    cons = start_consortium(tmp_path, orgs=5, spec=spec, node_options={"availability_wait_s": 10})
    try:
        chain = ["--rpc", cons.net.node.url, "--coordinator", cons.coordinator.address]
        job = ["--job", str(cons.job_id)]
        # the sponsor draws round 1 once all five have enrolled (round 1 opened before they could)
        assert main(["job", "start", *chain, *job, "--key", "dev:0", "--enrolled", "5"]) == 0
        assert "round 1 drawn" in capsys.readouterr().out
        cons.wait_done(timeout=240)
        state = cons.coordinator.job_state(cons.job_id)
        assert state.phase == Phase.DONE and state.version == ROUNDS, cons.logs()

        # every round's commits and proposals came from its draw, as the sampler's events give it
        sampler = cons.coordinator.sampler()
        assert sampler is not None
        mine = [e for e in sampler.events() if e.args.get("job_id") == cons.job_id]
        order = [e.args["trainer"] for e in mine if e.name == "Enrolled"]
        assert sorted(order) == sorted(o.address for o in cons.orgs)
        draws = {e.args["round"]: e.args for e in mine if e.name == "SampleDrawn"}
        commits = cons.commits_by_round()
        proposers: dict[int, set[str]] = {}
        for e in cons.events("AggregateProposed"):
            proposers.setdefault(e.args["round"], set()).add(e.args["validator"])
        for r in range(1, ROUNDS + 1):
            a = draws[r]
            d = Draw(round=r, seed=a["seed"], enrolled=a["enrolled"], clients=3, validators=3)
            trainers = {order[i] for i in d.seats(LANE_TRAINERS) if i is not None}
            committee = {order[i] for i in d.seats(LANE_COMMITTEE) if i is not None}
            assert len(trainers) == 3 and len(committee) == 3
            assert set(commits[r]) == trainers, (r, commits[r], trainers)  # all drawn, none other
            assert proposers[r] <= committee and len(proposers[r]) >= 2, (r, proposers[r], committee)
        # a node never drawn in a round says so, and is paid nothing for it but keeps its stake
        left_out = [o for o in cons.orgs if any(o.address not in commits[r] for r in commits)]
        assert left_out and all("not drawn" in o.log.read_text() for o in left_out)

        # the commands run in this process: an interpreter start and its imports cost more than the job
        assert main(["job", "status", *chain, *job]) == 0
        assert "drawn trainers (3 of 5 enrolled)" in capsys.readouterr().out
        report = tmp_path / "audit.json"
        assert main(["audit", *cons.audit_args(), "--report", str(report)]) == 0
        assert "AUDIT PASSED" in capsys.readouterr().out
        checks = json.loads(report.read_text())["checks"]
        assert checks["sampling"] >= ROUNDS * (1 + 3 + 2)  # each draw, its commits and proposals
        for o in cons.orgs:  # nobody lost anything for not being drawn: every stake came back
            assert cons.coordinator.stake_of(cons.job_id, o.address) == 0
            assert cons.coordinator.claimable(cons.job_id, o.address) == 0
    finally:
        cons.stop()
