"""simulate → audit, and every kind of tampering the audit must catch and name."""

from __future__ import annotations

import json
from pathlib import Path

from fedledger.audit.run import audit_run_dir
from fedledger.sim.simulate import SimulationResult


def _events(run: Path) -> list[dict]:
    return json.loads((run / "chain.json").read_text())["events"]


def _name(run: Path, address: str) -> str:
    return json.loads((run / "chain.json").read_text())["participants"][address]


def _errors(report) -> list[str]:
    return [f.line() for f in report.findings if f.severity == "error"]


def test_run_directory_holds_the_evidence(clean_run: tuple[Path, SimulationResult]) -> None:
    run, result = clean_run
    for name in (
        "spec.json",
        "chain.json",
        "metrics.json",
        "metrics.csv",
        "accuracy.png",
        "final_model.safetensors",
        "model_card.json",
        "MODEL_CARD.md",
        "run.log",
    ):
        assert (run / name).exists(), name
    card = json.loads((run / "model_card.json").read_text())
    assert card["rounds_finalized"] == 3
    assert card["final_model_commitment"] == "0x" + result.final_commitment.hex()
    assert card["contributing_organisations"] == ["org-01", "org-02", "org-03", "org-04"]
    # every committed update and every global model is in the store
    stored = {p.name.split(".")[0] for p in (run / "store").iterdir()}
    for e in _events(run):
        if e["name"] == "UpdateCommitted":
            assert e["args"]["commitment"][2:] in stored
        if e["name"] == "RoundFinalized":
            assert e["args"]["aggregate"][2:] in stored
    assert result.final_accuracy > 0.85  # digits, 3 rounds, an MLP


def test_audit_passes_on_an_honest_run(clean_run: tuple[Path, SimulationResult]) -> None:
    run, _ = clean_run
    report = audit_run_dir(run)
    assert report.ok, _errors(report)
    assert report.checks["aggregate"] == 3
    assert [e.version for e in report.lineage] == [1, 2, 3]
    assert all(len(e.contributors) == 4 for e in report.lineage)


def test_one_flipped_byte_in_an_update_fails_naming_round_org_and_blob(run_copy: Path) -> None:
    commit = [e for e in _events(run_copy) if e["name"] == "UpdateCommitted" and e["args"]["round"] == 2][1]
    blob = run_copy / "store" / f"{commit['args']['commitment'][2:]}.safetensors"
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    report = audit_run_dir(run_copy)
    assert not report.ok
    org = _name(run_copy, commit["args"]["trainer"])
    hit = [f for f in report.findings if f.severity == "error" and f.check == "update"]
    assert hit and hit[0].round == 2 and hit[0].organisation == org
    assert commit["args"]["commitment"] in hit[0].artefact
    assert "fails its hash" in hit[0].message


def test_a_missing_model_blob_fails_naming_the_version(run_copy: Path) -> None:
    fin = next(e for e in _events(run_copy) if e["name"] == "RoundFinalized")
    (run_copy / "store" / f"{fin['args']['aggregate'][2:]}.safetensors").unlink()
    report = audit_run_dir(run_copy)
    assert not report.ok
    assert any("model version 1" in f.artefact and "missing" in f.message for f in report.findings)


def test_a_missing_update_blob_fails(run_copy: Path) -> None:
    commit = next(e for e in _events(run_copy) if e["name"] == "UpdateCommitted")
    (run_copy / "store" / f"{commit['args']['commitment'][2:]}.safetensors").unlink()
    report = audit_run_dir(run_copy)
    assert not report.ok
    assert any(f.round == 1 and "not available" in f.message for f in report.findings)


def test_an_edited_event_fails_naming_the_event(run_copy: Path) -> None:
    export = json.loads((run_copy / "chain.json").read_text())
    target = next(
        i for i, e in enumerate(export["events"]) if e["name"] == "RoundFinalized" and e["args"]["round"] == 2
    )
    export["events"][target]["args"]["aggregate"] = "0x" + "ab" * 32
    (run_copy / "chain.json").write_text(json.dumps(export))
    report = audit_run_dir(run_copy)
    assert not report.ok
    hit = [f for f in report.findings if f.check == "chain-export"]
    assert len(hit) == 1
    assert f"event #{target} RoundFinalized" in hit[0].artefact and "aggregate" in hit[0].message


def test_an_edited_reward_event_fails(run_copy: Path) -> None:
    export = json.loads((run_copy / "chain.json").read_text())
    ev = next(e for e in export["events"] if e["name"] == "Withdrawn")
    ev["args"]["reward"] = int(ev["args"]["reward"]) + 1
    (run_copy / "chain.json").write_text(json.dumps(export))
    assert not audit_run_dir(run_copy).ok


def test_a_different_spec_fails(run_copy: Path) -> None:
    spec = json.loads((run_copy / "spec.json").read_text())
    spec["learning_rate"] = 0.5
    (run_copy / "spec.json").write_text(json.dumps(spec))
    report = audit_run_dir(run_copy)
    assert any(f.check == "spec" for f in report.findings)


def test_bad_updates_are_rejected_and_rounds_finalise_without_them(
    faulty_run: tuple[Path, SimulationResult],
) -> None:
    run, result = faulty_run
    assert [m.status for m in result.rounds] == ["finalized"] * 3
    # org-02 from round 1, org-03 from round 2, org-04 from round 3
    assert [m.rejected for m in result.rounds] == [1, 2, 3]
    assert [m.commits for m in result.rounds] == [7, 7, 6]  # org-05's training diverged in round 3
    log = (run / "run.log").read_text()
    assert "org-02: tensor" in log and "exceeds the norm bound" in log
    assert "org-03: blob does not match its commitment (fails its hash)" in log
    assert "org-04: malformed blob" in log
    assert "org-05: round 3: not committing" in log and "NaN" in log
    assert "exceeds the norm bound 100" in log  # in the spec's units, not fixed-point
    # no reward; 10% of the stake slashed per flag, three flags, then ejected
    assert result.flags == {"org-02": 3, "org-03": 2, "org-04": 1}
    assert result.ejected == ["org-02"]
    assert result.payouts["org-02"] == 10**18 * 7 // 10
    report = audit_run_dir(run)
    assert report.ok, _errors(report)
    confirmed = [f for f in report.findings if f.check == "update"]
    assert len(confirmed) == 6 and all("as the audit confirms" in f.message for f in confirmed)
