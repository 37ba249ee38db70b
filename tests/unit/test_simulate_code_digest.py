"""A simulation approves the user's model code by digest, and refuses code that is not the approved."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.errors import CodeError
from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec
from fedledger.training.code import code_digest

REF = "flower_app_example:build"  # the user's factory, a module beside this test


def test_the_spec_records_the_digest_of_the_user_s_model_code(tmp_path: Path) -> None:
    spec = JobSpec(dataset="digits", model=REF, trainers=2, rounds=1, partition="iid")
    sim = Simulation(spec, out_dir=tmp_path / "run")
    assert sim.spec.code_digest == code_digest([REF, ""]) != ""
    result = sim.run()
    assert result.outcome == "completed"


def test_code_that_differs_from_the_approved_digest_is_refused_before_training(tmp_path: Path) -> None:
    approved = "0x" + "ab" * 32
    spec = JobSpec(dataset="digits", model=REF, trainers=2, rounds=1, partition="iid", code_digest=approved)
    message = r"simulate: code of flower_app_example has digest 0x[0-9a-f]{64} here but the job approved 0xab"
    with pytest.raises(CodeError, match=message):
        Simulation(spec, out_dir=tmp_path / "run")


def test_an_unchanged_flower_client_trains_in_a_simulation_under_the_digest(tmp_path: Path) -> None:
    client = "flower_app_example:client_fn"  # the user's Flower client_fn, loading its own digits share
    spec = JobSpec(dataset="digits", model=REF, client=client, trainers=2, rounds=2, partition="iid")
    sim = Simulation(spec, out_dir=tmp_path / "run")
    assert sim.spec.code_digest == code_digest([REF, client])
    result = sim.run()
    assert result.outcome == "completed"
    assert result.final_accuracy > 0.5  # the example's MLP on digits: well above chance (0.1)
