"""simulate with clients_per_round and validators_per_round: only the drawn train and validate, audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import small_spec

from fedledger.audit.replay import from_export
from fedledger.audit.report import AuditState
from fedledger.audit.run import audit_run_dir
from fedledger.audit.sampling import check_sampling
from fedledger.chain.contracts import Event
from fedledger.chain.sampling import LANE_TRAINERS, Draw, draw_seed
from fedledger.errors import SpecError
from fedledger.sim.simulate import Simulation, SimulationResult
from fedledger.spec import JobSpec
from fedledger.store.local import LocalStore


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationResult]:
    out = tmp_path_factory.mktemp("runs") / "sampled"
    spec = small_spec(trainers=8, clients_per_round=4, validators_per_round=3, quorum=2)
    return out, Simulation(spec, out_dir=out).run()


def _chain(run: Path) -> dict:
    return json.loads((run / "chain.json").read_text())


def test_only_the_drawn_train_and_validate(sampled_run: tuple[Path, SimulationResult]) -> None:
    run, result = sampled_run
    assert result.outcome == "completed"
    assert [m.commits for m in result.rounds] == [4, 4, 4]
    events = _chain(run)["events"]
    for r in (1, 2, 3):
        committers = {
            e["args"]["trainer"] for e in events if e["name"] == "UpdateCommitted" and e["args"]["round"] == r
        }
        proposers = {
            e["args"]["validator"]
            for e in events
            if e["name"] == "AggregateProposed" and e["args"]["round"] == r
        }
        assert len(committers) == 4 and 1 <= len(proposers) <= 3
    # nobody was slashed or flagged for sitting a round out, and every stake came back
    assert not result.flags and not result.slashed
    assert all(e.stake == 10**18 for e in result.earnings.values())


def test_the_audit_rederives_every_draw(sampled_run: tuple[Path, SimulationResult]) -> None:
    run, _ = sampled_run
    report = audit_run_dir(run)
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    # 3 draws, 12 commits and at least 3 proposals checked against their seats
    assert report.checks["sampling"] >= 3 + 12 + 3


def test_the_audit_catches_a_commit_from_outside_the_sample(
    sampled_run: tuple[Path, SimulationResult],
) -> None:
    run, _ = sampled_run
    source = from_export(_chain(run))
    spec = JobSpec.load(run / "spec.json")
    events = source.events
    first = next(i for i, e in enumerate(events) if e.name == "UpdateCommitted")
    r = events[first].args["round"]
    drawn = {e.args["trainer"] for e in events if e.name == "UpdateCommitted" and e.args["round"] == r}
    outsider = next(
        a for a, name in _chain(run)["participants"].items() if a not in drawn and name != "sponsor"
    )
    forged = events[first]
    events[first] = Event(**{**forged.__dict__, "args": {**forged.args, "trainer": outsider}})
    audit = AuditState(source, spec, LocalStore(run / "store"))
    audit.events = [
        e for e in events if e.address == source.coordinator and e.args.get("job_id") == source.job_id
    ]
    check_sampling(audit)
    errors = [f.line() for f in audit.report.findings if f.severity == "error"]
    assert any("committed without being drawn" in line for line in errors), errors


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"clients_per_round": 9}, "clients_per_round (9) exceeds trainers (8)"),
        ({"validators_per_round": 3, "validators": 2}, "validators_per_round draws the committee"),
        ({"validators_per_round": 3, "scoring": "loo"}, "does not combine with validators_per_round"),
        ({"clients_per_round": 4, "privacy": "secagg"}, "dropouts every round"),
        ({"clients_per_round": 4, "min_commits": 5}, "min_commits (5) exceeds clients_per_round (4)"),
    ],
)
def test_spec_refuses_what_sampling_does_not_combine_with(overrides: dict, message: str) -> None:
    with pytest.raises(SpecError) as e:
        small_spec(trainers=8, **overrides)
    assert message in str(e.value)


def _audit_with(run: Path, events: list[Event]) -> list[str]:
    """check_sampling over an export whose events were replaced by `events`; its error lines."""
    source = from_export(_chain(run))
    source.events[:] = events
    audit = AuditState(source, JobSpec.load(run / "spec.json"), LocalStore(run / "store"))
    audit.events = [
        e for e in events if e.address == source.coordinator and e.args.get("job_id") == source.job_id
    ]
    check_sampling(audit)
    return [f.line() for f in audit.report.findings if f.severity == "error"]


def test_the_audit_catches_a_forged_randomness(sampled_run: tuple[Path, SimulationResult]) -> None:
    """An export that claims another block randomness for round 1's draw: alone it no longer
    gives the event's seed; with the seed re-derived to match, the round's real commits no
    longer sit in the seats that seed gives."""
    run, _ = sampled_run
    events = from_export(_chain(run)).events
    at = next(i for i, e in enumerate(events) if e.name == "SampleDrawn" and e.args["round"] == 1)
    drawn = events[at]
    spec = JobSpec.load(run / "spec.json")
    enrolled = int(drawn.args["enrolled"])
    real = Draw(round=1, seed=int(drawn.args["seed"]), enrolled=enrolled, clients=spec.clients_per_round,
                validators=spec.validators_per_round)  # fmt: skip

    def forged(randomness: bytes, seed: int) -> list[Event]:
        args = {**drawn.args, "randomness": randomness, "seed": seed}
        return [*events[:at], Event(**{**drawn.__dict__, "args": args}), *events[at + 1 :]]

    fake = bytes([7]) * 32
    assert fake != drawn.args["randomness"]
    errors = _audit_with(run, forged(fake, int(drawn.args["seed"])))
    assert any("its seed or its count of enrolled trainers" in line for line in errors), errors
    # re-derive the seed too, from a randomness whose draw seats other trainers
    for byte in range(256):
        fake = bytes([byte]) * 32
        seed = draw_seed(int(drawn.args["job_id"]), 1, drawn.args["global_model"], fake)
        other = Draw(round=1, seed=seed, enrolled=enrolled, clients=real.clients, validators=real.validators)
        if set(other.seats(LANE_TRAINERS)) != set(real.seats(LANE_TRAINERS)):
            break
    errors = _audit_with(run, forged(fake, seed))
    assert any("committed without being drawn" in line for line in errors), errors
