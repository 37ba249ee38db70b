"""An existing Flower client (tests/unit/flower_app_example.py) runs unchanged as a fedledger client.

The example is a user's quickstart-pytorch-style app on sklearn's digits (offline, real
data); these tests drive it only through `load_flower_client`, as a node does.
"""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from fedledger.errors import CodeError
from fedledger.training.client import NDArrays, NumPyClient
from fedledger.training.flower import FlowerClient, FlowerClientApp, FlowerNumPyClient, load_flower_client
from fedledger.training.models import build_model
from fedledger.training.torch_client import get_weights

APP = "flower_app_example"
N = 3


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Two torch threads on a busy 2-core machine spin-wait and run ~10x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def initial() -> NDArrays:
    """The job's initial model: the spec's factory, built by fedledger from the seed."""
    return get_weights(build_model(f"{APP}:build", (64,), 10, seed=0))


def clients(attr: str) -> list[NumPyClient]:
    return [load_flower_client(f"{APP}:{attr}", partition_id=i, num_partitions=N) for i in range(N)]


def fedavg(cs: list[NumPyClient], start: NDArrays, rounds: int) -> NDArrays:
    """Plain FedAvg: the example-weighted mean of the clients' fitted weights."""
    weights = start
    for r in range(1, rounds + 1):
        results = [c.fit(weights, {"round": r}) for c in cs]
        total = sum(n for _, n, _ in results)
        weights = [
            sum((n / total) * arrays[k].astype(np.float64) for arrays, n, _ in results).astype(np.float32)
            for k in range(len(weights))
        ]
    return weights


def accuracy(cs: list[NumPyClient], weights: NDArrays) -> float:
    results = [c.evaluate(weights, {}) for c in cs]
    return sum(float(m["accuracy"]) * n for _, n, m in results) / sum(n for _, n, _ in results)


def test_each_form_of_flower_client_is_wrapped() -> None:
    kinds = {
        "client_fn": FlowerClient,
        "app": FlowerClientApp,
        "ContextClient": FlowerNumPyClient,
        "WholeDataClient": FlowerNumPyClient,
    }
    for attr, kind in kinds.items():
        client = load_flower_client(f"{APP}:{attr}", partition_id=1, num_partitions=N)
        assert type(client) is kind
        shapes = [a.shape for a in client.get_parameters({})]
        assert shapes == [w.shape for w in initial()] == [(32, 64), (32,), (10, 32), (10,)]
        assert client.parameter_names() == [f"param_{i:04d}" for i in range(4)]


def test_fit_trains_from_the_given_parameters_and_counts_examples() -> None:
    start = initial()
    client = load_flower_client(f"{APP}:client_fn", partition_id=0, num_partitions=N)
    new, num_examples, metrics = client.fit(start, {"round": 1})
    assert num_examples == int(0.8 * len(np.array_split(np.arange(1797), N)[0])) == 479
    assert [a.shape for a in new] == [a.shape for a in start]
    assert all(not np.array_equal(a, b) for a, b in zip(new, start, strict=True))
    assert float(metrics["train_loss"]) > 0
    whole = load_flower_client(f"{APP}:WholeDataClient", partition_id=0, num_partitions=1)
    assert whole.fit(start, {"round": 1})[1] == int(0.8 * 1797)
    loss, n_val, val_metrics = client.evaluate(start, {})
    assert n_val == 599 - 479 and loss > 0 and 0 <= float(val_metrics["accuracy"]) <= 1


def test_fedavg_over_three_flower_clients_learns_digits() -> None:
    cs = clients("client_fn")
    start = initial()
    before = accuracy(cs, start)
    after = accuracy(cs, fedavg(cs, start, rounds=4))
    assert before < 0.3
    assert after > 0.85, (before, after)


def test_client_fn_app_and_subclass_give_the_same_bytes() -> None:
    start = initial()
    results = {attr: fedavg(clients(attr), start, rounds=2) for attr in ("client_fn", "app", "ContextClient")}
    ref = b"".join(a.tobytes() for a in results["client_fn"])
    for attr, weights in results.items():
        assert b"".join(a.tobytes() for a in weights) == ref, attr
    assert ref != b"".join(a.tobytes() for a in start)


def test_context_is_the_simulation_engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = user_module(
        tmp_path,
        monkeypatch,
        """
        from flwr.client import NumPyClient
        SEEN = []
        class Recorder(NumPyClient):
            def __init__(self, context):
                SEEN.append(context)
            def get_parameters(self, config):
                return []
        """,
    )
    load_flower_client(
        f"{mod}:Recorder",
        partition_id=2,
        num_partitions=5,
        node_config={"data-source": "/data/org3.parquet", "partition-id": 99},
        run_config={"local-epochs": 3},
    )
    (context,) = sys.modules[mod].SEEN
    assert context.node_config == {
        "data-source": "/data/org3.parquet",
        "partition-id": 2,
        "num-partitions": 5,
    }
    assert context.run_config == {"local-epochs": 3}
    assert context.node_id == 3 and len(context.state) == 0


# -- one-line errors ---------------------------------------------------------------------

_names = itertools.count()


def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    name = f"user_flower_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return name


BAD = """
from flwr.client import ClientApp, NumPyClient
from flwr.app import Message
import numpy as np

W = [np.zeros((2, 3), np.float32), np.zeros(3, np.float32)]

class Base(NumPyClient):
    def get_parameters(self, config):
        return [w.copy() for w in W]
    def fit(self, parameters, config):
        return [p + 1 for p in parameters], 10, {}
    def evaluate(self, parameters, config):
        return 0.5, 10, {"accuracy": 0.9}

class TwoTuple(Base):
    def fit(self, parameters, config):
        return parameters, 10

class OneArrayShort(Base):
    def fit(self, parameters, config):
        return parameters[:1], 10, {}

class WrongShape(Base):
    def fit(self, parameters, config):
        return [parameters[0], np.zeros(4, np.float32)], 10, {}

class Raises(Base):
    def fit(self, parameters, config):
        raise RuntimeError("out of memory")

class NeedsData(Base):
    def __init__(self, net, trainloader):
        pass

def returns_str(context):
    return "client"

def returns_wrong_shape(context):
    return WrongShape().to_client()

def two_tuple_fn(context):
    return TwoTuple().to_client()

message_app = ClientApp()

@message_app.train()
def train(msg, context):
    return Message(msg.content, reply_to=msg)

NUMBER = 3
"""


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("NUMBER", r"is a int, not a flwr NumPyClient subclass, a client_fn\(context\) or a ClientApp"),
        ("np", r"is a module, not a flwr NumPyClient"),
        ("returns_str", r"returns_str\(context\) returned a str, not a flwr Client .*to_client\(\)"),
        ("missing", r"has no attribute 'missing'"),
        ("NeedsData", r"NeedsData\(context\) raised TypeError: .*name your client_fn instead"),
        ("message_app", r"ClientApp without a client_fn \(Flower's Message API"),
    ],
)
def test_load_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attr: str, message: str
) -> None:
    mod = user_module(tmp_path, monkeypatch, BAD)
    with pytest.raises(CodeError, match=message) as info:
        client = load_flower_client(f"{mod}:{attr}", partition_id=0, num_partitions=1)
        client.fit(client.get_parameters({}), {"round": 1})  # message_app fails only when called
    assert "\n" not in str(info.value) and str(info.value).startswith("job spec: client: ")


@pytest.mark.parametrize(
    ("attr", "message"),
    [
        ("TwoTuple", r"fit returned a 2-tuple, not \(parameters, num_examples, metrics\)"),
        ("OneArrayShort", r"fit returned 1 arrays for 2 parameters"),
        ("WrongShape", r"fit: array 1 has shape \(4,\), the parameters' has \(3,\)"),
        ("returns_wrong_shape", r"fit: array 1 has shape \(4,\), the parameters' has \(3,\)"),
        ("two_tuple_fn", r"fit raised TypeError: NumPyClient.fit did not return a tuple with 3 elements"),
        ("Raises", r"fit raised RuntimeError: out of memory$"),
    ],
)
def test_fit_errors_name_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attr: str, message: str
) -> None:
    mod = user_module(tmp_path, monkeypatch, BAD)
    client = load_flower_client(f"{mod}:{attr}", partition_id=0, num_partitions=1)
    with pytest.raises(CodeError, match=message) as info:
        client.fit(client.get_parameters({}), {"round": 1})
    assert "\n" not in str(info.value)


def test_base_client_from_the_error_module_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = user_module(tmp_path, monkeypatch, BAD)
    client = load_flower_client(f"{mod}:Base", partition_id=0, num_partitions=1)
    new, n, _ = client.fit(client.get_parameters({}), {"round": 1})
    assert n == 10 and all((a == 1).all() for a in new)
    assert client.evaluate(new, {}) == (0.5, 10, {"accuracy": 0.9})


def test_missing_flwr_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flwr.client", None)
    with pytest.raises(CodeError, match=r"^job spec: client: .*install fedledger\[flower\]$"):
        load_flower_client(f"{APP}:client_fn", partition_id=0, num_partitions=1)


def test_a_node_loads_only_its_own_organisations_flower_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client_fn that can load only this organisation's data must not be called for the others."""
    from fedledger.spec import JobSpec
    from fedledger.training.consortium import build_consortium

    mod = user_module(
        tmp_path,
        monkeypatch,
        f"""
        from {APP} import client_fn as example
        CALLED = []
        def client_fn(context):
            pid = context.node_config["partition-id"]
            CALLED.append(pid)
            if pid != 1:
                raise FileNotFoundError(f"partition {{pid}}'s data is not on this machine")
            return example(context)
        """,
    )
    spec = JobSpec(dataset="digits", model=f"{APP}:build", client=f"{mod}:client_fn", trainers=3, rounds=1)
    consortium = build_consortium(spec, only=1)
    assert sys.modules[mod].CALLED == [1]
    assert isinstance(consortium.clients[1], FlowerNumPyClient | FlowerClient | FlowerClientApp)
