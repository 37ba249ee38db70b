"""A simulated committee computes each round twice, independently, and shares the outcome.

The saving must change no byte of any round, keep a second independent computation that
can disagree, and leave each member's own conduct (a lying validator) to the vote.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import small_spec

from fedledger.errors import NondeterminismError
from fedledger.roles.outcome import RoundOutcome
from fedledger.sim import committee
from fedledger.sim.committee import SharedRound
from fedledger.sim.faults import Fault
from fedledger.sim.simulate import Simulation


def test_sharing_changes_no_byte_and_still_computes_each_round_twice(tmp_path: Path) -> None:
    spec = small_spec(rounds=3, validators=4)
    shared = Simulation(spec, out_dir=tmp_path / "shared")
    result = shared.run()
    alone = Simulation(spec, out_dir=tmp_path / "alone")
    alone.committee = SharedRound(independent=10**6)  # every member computes every round
    for org in alone.orgs:
        if org.validator is not None:
            org.validator.compute = alone.committee
    baseline = alone.run()
    assert result.final_commitment == baseline.final_commitment
    assert [m.model_commitment for m in result.rounds] == [m.model_commitment for m in baseline.rounds]
    finalized = sum(m.status == "finalized" for m in result.rounds)
    assert shared.committee.confirmed == finalized == spec.rounds
    assert shared.committee.reused > 0 and alone.committee.reused == 0


@pytest.mark.parametrize("in_worker", [True, False], ids=["check-in-worker", "check-in-turn"])
def test_two_computations_that_differ_stop_the_simulation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_worker: bool
) -> None:
    real = committee.compute_round
    calls = {"n": 0}
    me = os.getpid()

    def flaky(**kwargs: Any) -> RoundOutcome:
        outcome = real(**kwargs)
        calls["n"] += 1
        # the second computation's bytes differ in one place: the worker's (a forked process,
        # which sees this patch too), or the second member's in this process
        if (in_worker and os.getpid() != me) or (not in_worker and calls["n"] == 2):
            return RoundOutcome(
                outcome.round,
                b"\x01" * 32,
                outcome.blob + b"\x00",
                outcome.model,
                outcome.accepted,
                outcome.rejected,
            )
        return outcome

    monkeypatch.setattr(committee, "compute_round", flaky)
    sim = Simulation(small_spec(rounds=1), out_dir=tmp_path / "run")
    if not in_worker:
        sim.committee.check_store = None
    with pytest.raises(
        NondeterminismError, match=r"round 1: two validators computed different aggregate, model blob"
    ):
        sim.run()


def test_the_second_computation_runs_in_another_process_from_the_blob_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check runs beside the first member, and reads the directory, not the shared cache."""
    real = committee.compute_round
    seen = tmp_path / "computed-by"

    def recorded(**kwargs: Any) -> RoundOutcome:
        with seen.open("a") as f:  # a file: the worker's memory is its own
            f.write(f"{os.getpid()} {type(kwargs['store']).__name__}\n")
        return real(**kwargs)

    monkeypatch.setattr(committee, "compute_round", recorded)
    spec = small_spec(rounds=2, validators=4)
    sim = Simulation(spec, out_dir=tmp_path / "run")
    result = sim.run()
    assert result.outcome == "completed" and sim.committee.confirmed == 2
    lines = seen.read_text().split("\n")[:-1]
    here = [line for line in lines if line.startswith(f"{os.getpid()} ")]
    there = [line for line in lines if not line.startswith(f"{os.getpid()} ")]
    assert [line.split()[1] for line in here] == ["VerifiedCache"] * 2  # one a round, here
    assert [line.split()[1] for line in there] == ["LocalStore"] * 2  # one a round, in the worker


def test_a_lying_member_still_proposes_its_own_lie(tmp_path: Path) -> None:
    """The liar is the member handed the shared outcome: it still rewrites what it proposes."""
    spec = small_spec(rounds=1, validators=4)
    sim = Simulation(spec, out_dir=tmp_path / "run", faults=[Fault.parse("lying-validator@1")])
    # the liar processes the round third, after the two members that compute it: it is handed
    # the shared outcome, and the fourth member's proposal still makes the quorum of three
    sim.orgs.insert(2, sim.orgs.pop(0))
    result = sim.run()
    assert result.outcome == "completed"
    assert sim.committee.reused >= 1
    liar = sim.orgs[2].trainer.account.address
    slashed = [e for e in sim.reader.events if e.name == "ValidatorSlashed"]
    assert [(e.args["validator"], e.args["round"]) for e in slashed] == [(liar, 1)]
