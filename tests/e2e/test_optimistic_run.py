"""Optimistic mode end to end: lies proven wrong, the quorum's model, an audit that trusts nobody.

The rounds are the same pure function in both modes, so an optimistic run must end on the
byte-identical model a quorum run of the same spec ends on, however many of its proposals
were lies; and when nobody watches, the wrong model that stands must fail the audit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import small_spec

from fedledger.audit.run import audit_run_dir
from fedledger.roles.optimistic import Verdict
from fedledger.sim import optimistic_round
from fedledger.sim.faults import Fault
from fedledger.sim.simulate import Simulation

SPEC = dict(trainers=6, rounds=3)


def test_lying_proposers_are_struck_and_the_run_ends_on_the_quorums_model(tmp_path: Path) -> None:
    quorum = Simulation(small_spec(**SPEC), out_dir=tmp_path / "quorum").run()
    liars = [Fault("lying-proposer", i) for i in (4, 5, 6)]  # drawn in every round of this spec
    sim = Simulation(small_spec(**SPEC, verification="optimistic"), out_dir=tmp_path / "opt", faults=liars)
    result = sim.run()
    assert [m.status for m in result.rounds] == ["finalized"] * 3
    assert result.final_commitment == quorum.final_commitment
    assert [m.model_commitment for m in result.rounds] == [m.model_commitment for m in quorum.rounds]
    o = sim.deployment.optimistic
    assert o is not None
    events = o.events()
    struck = [e for e in events if e.name == "ProposalStruck"]
    assert struck and len(struck) == len(result.challenges)
    liar_addresses = {str(sim.orgs[i - 1].trainer.account.address).lower() for i in (4, 5, 6)}
    assert {str(e.args["proposer"]).lower() for e in struck} <= liar_addresses
    for e in struck:  # each lie cost its proposer the whole bond
        assert int(e.args["slashed"]) == sim.spec.proposer_bond
        assert o.bond_of(sim.job_id, str(e.args["proposer"])) == 0
    settled = [e for e in events if e.name == "ProposalSettled"]
    finalised = [bytes.fromhex(m.model_commitment[2:]) for m in result.rounds]
    assert [e.args["aggregate"] for e in settled] == finalised
    report = audit_run_dir(tmp_path / "opt")
    assert report.ok, [f.message for f in report.findings if f.severity == "error"]
    assert report.checks["optimistic"] >= 1 + 3 + len(struck)


def test_a_lie_nobody_challenges_stands_and_fails_the_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def blind(*args: Any, **kwargs: Any) -> Verdict:
        return Verdict("right")

    monkeypatch.setattr(optimistic_round, "judge", blind)
    liars = [Fault("lying-proposer", i, 2) for i in range(1, 7)]
    Simulation(small_spec(**SPEC, verification="optimistic"), out_dir=tmp_path / "run", faults=liars).run()
    report = audit_run_dir(tmp_path / "run")
    assert not report.ok
    errors = [(f.check, f.message) for f in report.findings if f.severity == "error"]
    assert any(
        c == "optimistic" and m.startswith("a wrong claim was settled: coordinate ") for c, m in errors
    ), errors
    assert any(c == "aggregate" for c, _ in errors), errors
