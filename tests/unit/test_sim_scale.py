"""Simulation at scale without Ray running: the round's sample, resource requests, memory, views."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from fedledger.errors import BackendError
from fedledger.sim.memory import PeakMemory, tree_rss
from fedledger.sim.ray_backend import ClientResources
from fedledger.spec import JobSpec
from fedledger.training.consortium import build_consortium
from fedledger.training.partition_client import PartitionClient
from fedledger.training.torch_client import TorchClient


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("num_cpus=1", "--client-resources is not JSON"),
        ("[1]", "must be a JSON object"),
        ('{"cpus": 1}', "unknown key 'cpus'; known: num_cpus, num_gpus"),
        ('{"num_cpus": -1}', "num_cpus must be a number >= 0, got -1"),
        ('{"num_gpus": true}', "num_gpus must be a number >= 0, got True"),
        ('{"num_cpus": 0}', "must reserve some num_cpus or num_gpus"),
    ],
)
def test_bad_client_resources_are_one_line(text: str, message: str) -> None:
    with pytest.raises(BackendError, match=message.replace("[", r"\[")):
        ClientResources.parse(text)


def test_client_resources_as_flower_writes_them() -> None:
    parsed = ClientResources.parse('{"num_cpus": 2, "num_gpus": 0.5}')
    assert parsed == ClientResources(num_cpus=2, num_gpus=0.5)
    assert ClientResources.parse("{}") == ClientResources(num_cpus=1, num_gpus=0)


def test_ray_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from fedledger.sim.ray_backend import RayBackend, RayConfig

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(BackendError, match=r"needs Ray: pip install 'flwr\[simulation\]==1.42.0'"):
        RayBackend(RayConfig())


def test_peak_memory_counts_the_processes_this_one_started() -> None:
    before = tree_rss()
    script = "import time; x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096]); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        with PeakMemory(interval_s=0.05) as memory:
            deadline = time.monotonic() + 20
            while tree_rss() < before + 250 * 2**20 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert memory.peak >= before + 250 * 2**20
    assert memory.driver < memory.peak
    assert "peak memory" in memory.line()


def test_lazy_organisations_are_views_that_train_like_the_eager_ones() -> None:
    spec = JobSpec.from_dict({"dataset": "lending_club", "model": "logreg", "trainers": 50,
                              "partition": "iid"})  # fmt: skip
    eager = build_consortium(spec)
    lazy = build_consortium(spec, lazy=True)
    parts = [c for c in lazy.clients if isinstance(c, PartitionClient)]
    assert len(parts) == 50 and all(p.dataset is lazy.dataset for p in parts)  # one array, index arrays
    assert sum(len(p.rows) for p in parts) == len(lazy.dataset.y_train)
    params = eager.clients[0].get_parameters({})
    for i in (0, 17, 49):
        client = eager.clients[i]
        assert isinstance(client, TorchClient)
        client.seeded_noise = True
        want, n, _ = client.fit(params, {"round": 3})
        got, m, _ = parts[i].fit(params, {"round": 3})
        assert n == m and all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))
