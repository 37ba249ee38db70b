"""An attacked run end to end: robust rule, flags, slashing, ejection, and the audit of all of it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import small_spec

from fedledger.audit.replay import from_export, load_export
from fedledger.audit.run import audit_run_dir
from fedledger.audit.verify import audit_events
from fedledger.sim.attacks import Attack
from fedledger.sim.faults import Fault
from fedledger.sim.simulate import Simulation, SimulationResult
from fedledger.spec import JobSpec
from fedledger.store.local import LocalStore


@pytest.fixture(scope="module")
def attacked_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationResult]:
    """7 organisations on digits, the last 2 flip the sign of their updates (x4)."""
    out = tmp_path_factory.mktemp("runs") / "attacked"
    spec = small_spec(trainers=7, rounds=4, aggregation="trimmed_mean", max_flags=3, slash_fraction=0.25)
    result = Simulation(spec, out_dir=out, attack=Attack("sign-flip", 0.3)).run()
    return out, result


def test_attackers_are_flagged_slashed_and_ejected(attacked_run: tuple[Path, SimulationResult]) -> None:
    run, result = attacked_run
    spec = JobSpec.load(run / "spec.json")
    assert result.malicious == ["org-06", "org-07"]
    assert result.outcome == "completed"
    # flagged every round until ejected after the third flag; never an honest trainer
    assert result.flags == {"org-06": 3, "org-07": 3}
    assert sorted(result.ejected) == ["org-06", "org-07"]
    # 25% of the stake per flag, three times: a quarter of the stake is left to return
    assert result.slashed == {"org-06": 3 * spec.stake // 4, "org-07": 3 * spec.stake // 4}
    assert result.final_accuracy > 0.85
    metrics = json.loads((run / "metrics.json").read_text())
    assert [m["flagged"] for m in metrics] == [2, 2, 2, 0]
    # after ejection the round closes on the five honest commits alone
    assert metrics[-1]["commits"] == 5
    card = json.loads((run / "model_card.json").read_text())
    assert sorted(card["ejected"]) == ["org-06", "org-07"] and card["attack"]["kind"] == "sign-flip"


def test_audit_rederives_every_flag(attacked_run: tuple[Path, SimulationResult]) -> None:
    run, _ = attacked_run
    report = audit_run_dir(run)
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    assert report.checks["flag"] == 6
    assert report.checks["slash"] == 6
    assert report.checks["eject"] == 2
    flagged = [x for e in report.lineage for x in e.excluded if x["flagged"]]
    assert len(flagged) == 6
    assert all("trimmed_mean: points away from the robust aggregate" in x["reason"] for x in flagged)


def _source_without(run: Path, drop: str, round: int):
    src = from_export(load_export(run / "chain.json"))
    first = next(e for e in src.events if e.name == drop and e.args.get("round") == round)
    return dataclasses.replace(src, events=[e for e in src.events if e is not first])


def test_audit_names_a_flag_the_chain_missed(attacked_run: tuple[Path, SimulationResult]) -> None:
    """A quorum that let an attacker through unpunished is reported, with round and organisation."""
    run, _ = attacked_run
    src = _source_without(run, "TrainerSlashed", 1)
    report = audit_events(src, JobSpec.load(run / "spec.json"), LocalStore(run / "store"))
    errors = [f for f in report.findings if f.severity == "error"]
    assert any(f.check == "flag" and f.round == 1 and "not flagged on chain" in f.message for f in errors)
    assert not report.ok


def test_audit_names_a_missed_ejection(attacked_run: tuple[Path, SimulationResult]) -> None:
    run, _ = attacked_run
    src = _source_without(run, "TrainerEjected", 3)
    report = audit_events(src, JobSpec.load(run / "spec.json"), LocalStore(run / "store"))
    errors = [f for f in report.findings if f.severity == "error"]
    assert any(f.check == "eject" and "not ejected after 3 flags" in f.message for f in errors), errors


def test_fltrust_run_audits_with_the_sponsor_root_update(tmp_path: Path) -> None:
    """FLTrust: the sponsor commits the root update each round; it is excluded, never flagged or paid."""
    spec = small_spec(trainers=5, rounds=2, aggregation="fltrust", root_examples=60)
    result = Simulation(spec, out_dir=tmp_path / "run", attack=Attack("gaussian", 0.2)).run()
    written = JobSpec.load(tmp_path / "run" / "spec.json")
    assert written.root_dataset.startswith("0x") and len(written.root_dataset) == 66
    assert result.outcome == "completed"
    assert result.flags == {"org-05": 2}  # the Gaussian attacker, by the norm test
    report = audit_run_dir(tmp_path / "run")
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    for entry in report.lineage:
        root = [x for x in entry.excluded if x["organisation"] == "sponsor"]
        assert len(root) == 1 and not root[0]["flagged"] and "root update" in root[0]["reason"]
    # a spec naming another root dataset is refused before anything is deployed
    wrong = spec.with_overrides(root_dataset="0x" + "00" * 32)
    with pytest.raises(Exception, match="is not the hash of this root dataset"):
        Simulation(wrong, out_dir=tmp_path / "wrong")


def test_a_lying_validator_is_outvoted_reported_and_slashed(tmp_path: Path) -> None:
    spec = small_spec(rounds=2, slash_fraction=0.5)
    sim = Simulation(spec, out_dir=tmp_path / "run", faults=[Fault.parse("lying-validator@1")])
    result = sim.run()
    assert result.outcome == "completed"  # three honest validators still make the quorum of 3
    events = json.loads((tmp_path / "run" / "chain.json").read_text())["events"]
    slashed = [e["args"] for e in events if e["name"] == "ValidatorSlashed"]
    liar = sim.orgs[0].trainer.account.address
    assert [(a["validator"], a["round"]) for a in slashed] == [(liar, 1), (liar, 2)]
    # half the stake, then half of what was left is capped by the deposit: 0.5 + 0.5
    assert sum(int(a["amount"]) for a in slashed) == spec.stake
    report = audit_run_dir(tmp_path / "run")
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    assert report.checks["dissent"] == 2
    with pytest.raises(Exception, match="is not a validator"):
        Simulation(
            small_spec(validators=2), out_dir=tmp_path / "x", faults=[Fault.parse("lying-validator@3")]
        )
