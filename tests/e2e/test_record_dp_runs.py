"""Record-level DP end to end: DP-SGD in every trainer, each organisation's ε on chain and audited."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import small_spec

import fedledger.roles.record_dp as record_dp
from fedledger.audit.run import audit_run_dir
from fedledger.roles.record_dp import micro_epsilon_after
from fedledger.sim.simulate import Simulation

#: few steps and an explicit noise multiplier: seconds per run, no calibration search
RECORD = dict(
    dp_level="record",
    dp_epsilon=8.0,
    dp_noise_multiplier=1.0,
    dp_sample_rate=0.1,
    dp_local_steps=8,
    momentum=0.0,
    learning_rate=0.2,
    trainers=3,
    rounds=2,
)


@pytest.mark.parametrize("mode", [{"privacy": "secagg"}, {"aggregation": "median"}], ids=["secagg", "median"])
def test_each_organisation_records_its_epsilon_and_the_audit_recomputes_it(
    tmp_path: Path, mode: dict
) -> None:
    spec = small_spec(**RECORD, **mode)
    out = tmp_path / "run"
    result = Simulation(spec, out_dir=out).run()
    assert result.outcome == "completed"
    want = micro_epsilon_after(spec, 2) / 1e6  # two rounds of 8 steps each
    assert 0 < want <= 8.0
    assert result.epsilon_by_organisation == {"org-01": want, "org-02": want, "org-03": want}
    assert [m.epsilon for m in result.rounds] == [micro_epsilon_after(spec, 1) / 1e6, want]
    export = json.loads((out / "chain.json").read_text())
    posted = [
        (e["args"]["round"], e["args"]["micro_epsilon"])
        for e in export["events"]
        if e["name"] == "TrainerPrivacySpent"
    ]
    assert sorted(posted) == [(1, micro_epsilon_after(spec, 1))] * 3 + [(2, micro_epsilon_after(spec, 2))] * 3
    assert not [e for e in export["events"] if e["name"] == "PrivacySpent"]  # nothing noised centrally
    card = json.loads((out / "model_card.json").read_text())
    assert card["privacy"]["level"] == "record"
    assert card["privacy"]["epsilon_by_organisation"] == result.epsilon_by_organisation
    assert (
        "Record-level differential privacy (DP-SGD in each trainer, Opacus)"
        in (out / "MODEL_CARD.md").read_text()
    )
    report = audit_run_dir(out)
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    assert report.checks["privacy"] == 6
    assert {
        org: o["epsilon"] for org, o in report.privacy["organisations"].items()
    } == result.epsilon_by_organisation


def test_an_understated_epsilon_fails_the_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trainer that posts less than its commits spend is named, with both figures."""
    honest = record_dp.micro_epsilon_after

    def understated(spec, rounds):  # what every trainer's RecordBudget.post now computes
        return max(1, honest(spec, rounds) // 2)

    spec = small_spec(**RECORD)
    out = tmp_path / "run"
    monkeypatch.setattr(record_dp, "micro_epsilon_after", understated)
    Simulation(spec, out_dir=out).run()
    monkeypatch.undo()
    report = audit_run_dir(out)
    assert not report.ok
    errors = [f for f in report.findings if f.severity == "error" and f.check == "privacy"]
    assert len(errors) == 6
    one = honest(spec, 1)
    assert any(
        f.message == f"ε {max(1, one // 2) / 1e6:.6f} recorded after round 1; its 1 committed rounds spend "
        f"{one / 1e6:.6f}"
        for f in errors
    )


def test_a_spent_budget_stops_every_trainer_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ε = 4.2 affords two rounds of 8 steps at z = 1, q = 0.1 (3.94; a third would reach 4.49):
    round 3 gets no update, so the job stops there; each trainer says so once."""
    spec = small_spec(**{**RECORD, "dp_epsilon": 4.2, "rounds": 3, "max_failures": 0})
    assert spec.dp_rounds_affordable == 2
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="fedledger.trainer"):
        result = Simulation(spec, out_dir=out).run()
    assert [m.status for m in result.rounds][:2] == ["finalized", "finalized"]
    assert result.outcome == "aborted"
    two = micro_epsilon_after(spec, 2) / 1e6
    assert result.epsilon_by_organisation == {"org-01": two, "org-02": two, "org-03": two}
    stops = [r.getMessage() for r in caplog.records if "not training" in r.getMessage()]
    assert sorted(m.split(":")[0] for m in stops) == ["org-01", "org-02", "org-03"], stops
    assert all(m.endswith("spent over 2 rounds); it commits no more updates in job 1") for m in stops), stops
    report = audit_run_dir(out)
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    assert {o["rounds"] for o in report.privacy["organisations"].values()} == {2}


def test_a_spend_above_the_budget_fails_the_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract only keeps a spend from decreasing; the audit holds it to the spec's budget."""
    honest = record_dp.micro_epsilon_after
    over = 8_000_001  # micro-ε: one above the budget of 8

    def overstated(spec, rounds):
        return over if rounds == 2 else honest(spec, rounds)

    spec = small_spec(**RECORD)
    out = tmp_path / "run"
    monkeypatch.setattr(record_dp.RecordBudget, "allows", lambda self, round: True)
    monkeypatch.setattr(record_dp, "micro_epsilon_after", overstated)
    Simulation(spec, out_dir=out).run()
    monkeypatch.undo()
    report = audit_run_dir(out)
    errors = [f.message for f in report.findings if f.severity == "error" and f.check == "privacy"]
    assert errors == ["ε 8.000001 exceeds the budget 8"] * 3
