"""Contribution scores in a run: saved, charted, and ordered by the trainers' real value."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import small_spec

from fedledger.audit.run import audit_run_dir
from fedledger.sim.attacks import Attack
from fedledger.sim.faults import Fault
from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec


def test_free_riders_contribute_least_and_the_run_still_audits(tmp_path: Path) -> None:
    spec = small_spec(trainers=6, rounds=3, scoring="gtg", validation_examples=120)
    result = Simulation(spec, out_dir=tmp_path / "run", attack=Attack("free-ride", 0.34)).run()
    run = tmp_path / "run"
    assert result.malicious == ["org-05", "org-06"]
    assert len(result.scores) == 3 and all(s.seconds < 5 for s in result.scores)
    rows = list(csv.DictReader((run / "scores.csv").open()))
    assert len(rows) == 3 * 6 and {r["method"] for r in rows} == {"gtg"}
    card = json.loads((run / "model_card.json").read_text())
    contribution = card["contribution"]
    honest = [contribution[f"org-0{i}"] for i in range(1, 5)]
    # an empty update adds nothing and dilutes FedAvg: below every honest trainer
    assert max(contribution["org-05"], contribution["org-06"]) < min(honest)
    assert (run / "contributions.png").stat().st_size > 10_000
    written = JobSpec.load(run / "spec.json")
    assert written.validation_dataset.startswith("0x") and len(written.validation_dataset) == 66
    report = audit_run_dir(run)
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    # the audit re-derived every round's consensus and fees, and re-scored each round itself
    assert report.checks["scores"] == 3 and report.checks["rescore"] == 3 and report.checks["fee"] >= 3
    # paid by consensus score: the free riders earn nothing, every honest trainer something
    earned = {org: int(p["earned"]) for org, p in report.payouts.items()}
    assert earned.get("org-05", 0) == 0 and earned.get("org-06", 0) == 0
    assert all(earned[f"org-0{i}"] > 0 for i in range(1, 5))


def test_a_biased_validator_cannot_move_consensus_and_earns_no_fee(tmp_path: Path) -> None:
    spec = small_spec(trainers=5, rounds=2, scoring="gtg", validators=3, quorum=3)
    Simulation(spec, out_dir=tmp_path / "run", faults=[Fault("biased-validator", 1)]).run()
    report = audit_run_dir(tmp_path / "run")
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    warned = [f for f in report.findings if f.check == "scores" and f.severity == "warning"]
    assert {f.organisation for f in warned} == {"org-01"} and len(warned) == 2
    events = json.loads((tmp_path / "run" / "chain.json").read_text())["events"]
    rewarded = {e["args"]["validator"] for e in events if e["name"] == "ValidatorRewarded"}
    biased = next(e["args"]["validator"] for e in events if e["name"] == "Registered")
    assert len(rewarded) == 2 and biased not in rewarded


def test_trainers_of_different_value_are_scored_in_that_order(tmp_path: Path) -> None:
    spec = small_spec(trainers=6, rounds=4, scoring="gtg")
    profiles = [("label-noise", 3), ("duplicate", 4), ("tiny", 5), ("free-ride", 6)]
    result = Simulation(spec, out_dir=tmp_path / "run", profiles=profiles).run()
    c = json.loads((tmp_path / "run" / "model_card.json").read_text())["contribution"]
    clean = min(c["org-01"], c["org-02"])
    # clean data beats noisy labels and tiny data; the free rider comes last, below zero:
    # an empty update only dilutes the average
    assert clean > max(c["org-03"], c["org-05"]) > min(c["org-03"], c["org-05"]) > c["org-06"]
    assert c["org-06"] < 0
    assert c["org-04"] > c["org-03"]  # a copy of clean data still beats noisy labels
    assert not result.flags  # none of this is misbehaviour: FedAvg flags nobody
