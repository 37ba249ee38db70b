"""Secure aggregation end to end: simulate --privacy secagg, dropouts, and the audit's bit-for-bit replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import small_spec

from fedledger.audit.run import audit_run_dir
from fedledger.codec.blob import decode_blob
from fedledger.codec.commitment import parse_commitment
from fedledger.errors import SpecError
from fedledger.sim.faults import Fault
from fedledger.sim.simulate import Simulation
from fedledger.store.local import LocalStore


def _run(tmp: Path, name: str, faults: list[Fault] | None = None, **overrides: object) -> tuple[Path, object]:
    out = tmp / name
    spec = small_spec(trainers=6, rounds=2, **overrides)
    return out, Simulation(spec, out_dir=out, faults=faults or []).run()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    tmp = tmp_path_factory.mktemp("secagg")
    return {
        "plain": _run(tmp, "plain"),
        "secure": _run(tmp, "secure", privacy="secagg"),
        "dropouts": _run(
            tmp, "dropouts", [Fault("withhold-reveal", 2), Fault("drop-out", 4, 2)], privacy="secagg"
        ),
    }


def test_secure_rounds_commit_the_same_model_as_plain_fedavg(runs) -> None:  # type: ignore[no-untyped-def]
    (_, plain), (out, secure) = runs["plain"], runs["secure"]
    assert secure.outcome == plain.outcome == "completed"
    assert secure.final_commitment == plain.final_commitment  # bit-identical, round after round
    assert [m.model_commitment for m in secure.rounds] == [m.model_commitment for m in plain.rounds]
    # no update was ever stored unmasked: every committed blob is a masked one naming its shares
    export = json.loads((out / "chain.json").read_text())
    commits = [e for e in export["events"] if e["name"] == "UpdateCommitted"]
    assert commits
    store = LocalStore(out / "store")
    for e in commits:
        _, meta = decode_blob(store.get(parse_commitment(e["args"]["commitment"])))
        assert "shares" in meta
    names = {e["name"] for e in export["events"]}
    assert {"KeyRegistered", "SharesRevealed"} <= names


def test_audit_replays_the_unmasked_sum(runs) -> None:  # type: ignore[no-untyped-def]
    out, _ = runs["secure"]
    report = audit_run_dir(out)
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    assert report.checks["aggregate"] == 2


def test_a_dropout_after_commit_is_a_fault_and_the_round_recovers(runs) -> None:  # type: ignore[no-untyped-def]
    out, result = runs["dropouts"]
    assert result.outcome == "completed"
    assert all(m.status == "finalized" for m in result.rounds)
    assert result.rounds[1].commits == 5  # org-04 went offline in round 2
    report = audit_run_dir(out)
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    faults = [f for f in report.findings if f.check == "secagg"]
    assert [(f.round, f.organisation) for f in faults] == [(1, "org-02"), (2, "org-02")]
    assert all("withheld its reveal" in f.message for f in faults)


def test_robust_rules_are_refused_in_secure_mode() -> None:
    with pytest.raises(SpecError, match="privacy=secagg hides individual updates, which median needs"):
        small_spec(privacy="secagg", aggregation="median")


def test_an_unusable_masked_update_fails_the_round_without_unmasking(tmp_path: Path) -> None:
    out, result = _run(tmp_path, "unusable", [Fault("corrupt-blob", 2, 2)], privacy="secagg", max_failures=0)
    assert result.outcome == "aborted"
    assert [m.status for m in result.rounds] == ["finalized", "failed"]
    assert result.flags == {"org-02": 1}  # its blob fails its hash: provable, flagged
    report = audit_run_dir(out)
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    reasons = [f.message for f in report.findings if f.round == 2 and f.check == "update"]
    assert sum("round not unmasked" in m for m in reasons) == 5  # the others: left out, unflagged
