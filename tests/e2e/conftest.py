"""Small real runs shared by the end-to-end tests (digits: seconds, not minutes)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fedledger.sim.faults import Fault
from fedledger.sim.simulate import Simulation, SimulationResult
from fedledger.spec import JobSpec

SMALL = dict(
    dataset="digits",
    model="mlp",
    trainers=4,
    rounds=3,
    local_epochs=3,
    learning_rate=0.05,
    partition="iid",
    name="e2e",
)


def small_spec(**overrides: object) -> JobSpec:
    return JobSpec.from_dict({**SMALL, **overrides})


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationResult]:
    """One honest run; tests copy it before tampering."""
    out = tmp_path_factory.mktemp("runs") / "clean"
    result = Simulation(small_spec(), out_dir=out).run()
    return out, result


@pytest.fixture()
def run_copy(clean_run: tuple[Path, SimulationResult], tmp_path: Path) -> Path:
    src, _ = clean_run
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationResult]:
    out = tmp_path_factory.mktemp("runs") / "faulty"
    faults = [
        Fault.parse("huge-norm@2"),
        Fault.parse("corrupt-blob@3:2"),
        Fault.parse("float-blob@4:3"),
        Fault.parse("nan-weights@5:3"),
    ]
    result = Simulation(small_spec(trainers=7, min_commits=3), out_dir=out, faults=faults).run()
    return out, result
