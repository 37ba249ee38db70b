"""Differential privacy end to end: ε recorded on chain each round, re-derived by the audit, budgeted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import small_spec

from fedledger.audit.run import audit_run_dir
from fedledger.errors import SpecError
from fedledger.roles.dp import micro_epsilon_after
from fedledger.sim.simulate import Simulation


@pytest.mark.parametrize("privacy", ["none", "secagg"])
def test_epsilon_is_recorded_each_round_and_audited(tmp_path: Path, privacy: str) -> None:
    spec = small_spec(trainers=5, rounds=3, dp_epsilon=8.0, privacy=privacy)
    out = tmp_path / privacy
    result = Simulation(spec, out_dir=out).run()
    assert result.outcome == "completed"
    steps = [m.epsilon for m in result.rounds]
    assert steps == sorted(steps) and 0 < steps[0] < steps[-1] <= 8.0
    assert result.epsilon_spent == steps[-1] == micro_epsilon_after(spec, 3) / 1e6
    export = json.loads((out / "chain.json").read_text())
    spent = [e["args"]["micro_epsilon"] for e in export["events"] if e["name"] == "PrivacySpent"]
    assert spent == [micro_epsilon_after(spec, k) for k in (1, 2, 3)]
    card = json.loads((out / "model_card.json").read_text())
    assert card["privacy"]["epsilon_spent"] == result.epsilon_spent
    report = audit_run_dir(out)
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    assert report.checks["privacy"] == 3
    assert report.privacy["epsilon_spent"] == result.epsilon_spent


def test_a_budget_that_cannot_afford_the_rounds_is_refused() -> None:
    with pytest.raises(SpecError, match=r"budget affords \d+ rounds at noise multiplier 0.5, not 3"):
        small_spec(rounds=3, dp_epsilon=1.0, dp_noise_multiplier=0.5)
    with pytest.raises(SpecError, match="does not combine with median"):
        small_spec(dp_epsilon=8.0, aggregation="median")
