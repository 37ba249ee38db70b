"""`--backend ray` against the in-process backend: the same job gives the same bytes.

A local Ray (2 CPUs) is started by the test itself, once; its start-up is seconds on two
cores, so the job is small (4 organisations, 3 of them sampled a round, 2 rounds of the
digits CNN — a model whose kernels would show a thread-count mismatch) and everything is
checked on the one pair of runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.sim.memory import PeakMemory
from fedledger.sim.ray_backend import RayBackend, RayClient, RayConfig
from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec
from fedledger.training.partition_client import PartitionClient
from fedledger.training.torch_client import configure_torch

SPEC = {"dataset": "digits", "model": "cnn", "trainers": 4, "rounds": 2, "local_epochs": 1,
        "min_commits": 3, "clients_per_round": 3, "seed": 7}  # fmt: skip


def _commits(sim: Simulation) -> list[tuple[int, str, str, int]]:
    """Every commit on chain: (round, organisation, update commitment, examples)."""
    return sorted(
        (r, sim.participants[c.trainer], c.commitment.hex(), c.num_examples)
        for r in sim.reader.rounds
        for c in sim.reader.commits(r)
    )


def test_ray_backend_is_bit_identical_to_in_process(tmp_path: Path) -> None:
    configure_torch(1)
    spec = JobSpec.from_dict(SPEC)
    plain = Simulation(spec, out_dir=tmp_path / "inprocess")
    expected = plain.run()
    with PeakMemory() as memory, RayBackend(RayConfig(num_cpus=2)) as backend:
        sim = Simulation(spec, out_dir=tmp_path / "ray", backend=backend)
        # organisations are row indices into one shared array, not copies, and hold no model
        clients = [o.trainer.client for o in sim.orgs]
        assert all(isinstance(c, RayClient) and isinstance(c.part, PartitionClient) for c in clients)
        parts = [c.part for c in clients if isinstance(c, RayClient)]
        assert len({id(p.dataset) for p in parts}) == 1
        assert not any(hasattr(p, "model") for p in parts)
        result = sim.run()
        # every sampled trainer's fit ran as a task launched at the round's start, none again
        assert backend.launched == 3 * spec.rounds
    assert memory.peak > memory.driver > 0  # the Ray processes are counted beside the driver

    assert [m.commits for m in result.rounds] == [3, 3]  # the sample, not all four
    assert _commits(sim) == _commits(plain)
    assert [m.model_commitment for m in result.rounds] == [m.model_commitment for m in expected.rounds]
    assert result.final_commitment == expected.final_commitment
    final = result.final_commitment.hex()
    assert sim.disk.path_for(result.final_commitment).read_bytes() == plain.disk.path_for(
        expected.final_commitment
    ).read_bytes(), final
    assert result.outcome == "completed"


def test_unreachable_ray_address_is_one_line(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run(
        [sys.executable, "-m", "fedledger.cli.main", "simulate", "--backend", "ray", "--ray-address",
         f"127.0.0.1:{port}", "--out", str(tmp_path / "run"), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--client-resources", '{"num_cpus": 1}'], "--client-resources applies to --backend ray only"),
        (["--ray-address", "auto"], "--ray-address applies to --backend ray only"),
        (["--backend", "ray", "--attack", "sign-flip"], "--backend ray trains the bundled datasets' "
         "partitions, not --attack; leave --backend out to run it in-process"),
        (["--backend", "ray", "--client-resources", "{}", "--ray-address", "auto", "--ray-cpus", "2"],
         "--ray-cpus sizes a local Ray; a cluster joined with --ray-address has its own"),
    ],
)
def test_ray_flags_that_cannot_work_are_one_line_before_ray_starts(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from fedledger.cli.main import main

    assert main(["simulate", "--out", str(tmp_path / "run"), "--quiet", *argv]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]
    assert not (tmp_path / "run").exists()


def test_simulate_cli_on_ray_says_where_it_trains_and_its_peak_memory(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "fedledger.cli.main", "simulate", "--dataset", "digits", "--model", "logreg",
         "--trainers", "3", "--rounds", "1", "--backend", "ray", "--ray-cpus", "2", "--client-resources",
         '{"num_cpus": 1, "num_gpus": 0}', "--peak-memory", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "training: Ray (local, 2 CPUs; 1 CPU, 0 GPU per organisation)" in proc.stdout
    assert "1 round finalised" in proc.stdout
    assert "peak memory" in proc.stdout.strip().splitlines()[-1]
