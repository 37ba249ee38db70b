"""Models build deterministically, weights roundtrip, and FedAvg over TorchClients learns."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from fedledger import spec
from fedledger.errors import InvalidUpdate, SpecError
from fedledger.training.client import NumPyClient
from fedledger.training.datasets import load_dataset
from fedledger.training.models import MODELS, build_model, count_parameters
from fedledger.training.partition import partition
from fedledger.training.torch_client import (
    TorchClient,
    evaluate,
    get_weights,
    set_weights,
    weight_names,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Two torch threads on a busy 2-core machine spin-wait and run ~10x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_registry_matches_spec() -> None:
    assert set(MODELS) == set(spec.MODELS)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8)])
def test_forward_shapes(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, shape, 10, seed=0)
    assert model(torch.zeros(5, *shape)).shape == (5, 10)


def test_tabular_models_and_cnn_refusal() -> None:
    for name in ("mlp", "logreg"):
        assert build_model(name, (30,), 2, seed=0)(torch.zeros(3, 30)).shape == (3, 2)
    with pytest.raises(SpecError, match="cnn needs image input"):
        build_model("cnn", (30,), 2, seed=0)
    with pytest.raises(SpecError, match="known models: cnn, mlp, logreg"):
        build_model("resnet", (1, 28, 28), 10, seed=0)


def test_cnn_is_small() -> None:
    assert count_parameters(build_model("cnn", (1, 28, 28), 10, seed=0)) < 60_000


def test_init_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = get_weights(build_model("cnn", (1, 28, 28), 10, seed=7))
    assert torch.equal(torch.rand(1), before)
    b = get_weights(build_model("cnn", (1, 28, 28), 10, seed=7))
    c = get_weights(build_model("cnn", (1, 28, 28), 10, seed=8))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_weights_roundtrip() -> None:
    src = build_model("cnn", (1, 28, 28), 10, seed=1)
    dst = build_model("cnn", (1, 28, 28), 10, seed=2)
    weights = get_weights(src)
    assert all(w.dtype == np.float32 for w in weights)
    assert weight_names(src) == list(src.state_dict())
    set_weights(dst, weights)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(src(x), dst(x))
    weights[0][...] = 0.0  # a copy: changing it does not touch the model
    assert not np.all(get_weights(src)[0] == 0.0)
    with pytest.raises(InvalidUpdate, match="expected shape"):
        set_weights(dst, [np.zeros((1,), np.float32), *weights[1:]])
    with pytest.raises(InvalidUpdate, match="weight tensors"):
        set_weights(dst, weights[:-1])


def _client(ds_name: str = "digits", seed: int = 0) -> TorchClient:
    ds = load_dataset(ds_name)
    model = build_model("mlp", ds.input_shape, ds.num_classes, seed=0)
    return TorchClient(
        model,
        ds.x_train[:200],
        ds.y_train[:200],
        ds.x_test,
        ds.y_test,
        epochs=1,
        batch_size=32,
        lr=0.05,
        momentum=0.9,
        seed=seed,
    )


def test_client_is_flower_shaped_and_round_changes_shuffling() -> None:
    client = _client()
    assert isinstance(client, NumPyClient)
    assert client.parameter_names() == ["1.weight", "1.bias", "3.weight", "3.bias"]
    start = client.get_parameters({})
    w1, n, metrics = client.fit(start, {"round": 1})
    w1_again, _, _ = client.fit(start, {"round": 1})
    w2, _, _ = client.fit(start, {"round": 2})
    assert n == 200 and isinstance(metrics["loss"], float)
    assert all(np.array_equal(a, b) for a, b in zip(w1, w1_again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(w1, w2, strict=True))
    loss, n_val, val_metrics = client.evaluate(w1, {})
    assert n_val == len(client.x_val) and 0.0 <= float(val_metrics["accuracy"]) <= 1.0
    assert loss > 0


def test_default_parameter_names() -> None:
    class Dummy(NumPyClient):
        def get_parameters(self, config: dict[str, object]) -> list[np.ndarray]:  # type: ignore[override]
            return [np.zeros(2), np.zeros(3)]

        def fit(self, parameters, config):  # type: ignore[no-untyped-def]
            raise NotImplementedError

        def evaluate(self, parameters, config):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    assert Dummy().parameter_names() == ["param_0000", "param_0001"]


def test_fedavg_on_digits_learns() -> None:
    """Plain float FedAvg weighted by examples: 4 iid trainers, a few rounds."""
    ds = load_dataset("digits")
    parts = partition(ds, 4, "iid", alpha=0.5, seed=0)
    global_model = build_model("cnn", ds.input_shape, ds.num_classes, seed=0)
    clients = [
        TorchClient(
            build_model("cnn", ds.input_shape, ds.num_classes, seed=0),
            ds.x_train[p],
            ds.y_train[p],
            ds.x_test,
            ds.y_test,
            epochs=2,
            batch_size=32,
            lr=0.05,
            momentum=0.9,
            seed=i,
        )
        for i, p in enumerate(parts)
    ]
    weights = get_weights(global_model)
    for rnd in range(1, 6):
        results = [c.fit(weights, {"round": rnd}) for c in clients]
        total = sum(n for _, n, _ in results)
        weights = [
            (sum(w[k].astype(np.float64) * n for w, n, _ in results) / total).astype(np.float32)
            for k in range(len(weights))
        ]
    set_weights(global_model, weights)
    _, accuracy = evaluate(global_model, ds.x_test, ds.y_test)
    assert accuracy > 0.85


def test_sgd_step_is_bit_identical_to_torch_optim_sgd() -> None:
    """Our step and torch.optim.SGD (CPU, momentum) give the same bits after many steps."""
    import torch
    from torch import nn

    from fedledger.training.torch_client import sgd_step

    torch.manual_seed(0)
    ours = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))
    theirs = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))
    theirs.load_state_dict(ours.state_dict())
    opt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9)
    params, buffers = list(ours.parameters()), [None] * 4
    x, y = torch.randn(64, 20), torch.randint(0, 3, (64,))
    for step in range(25):
        idx = slice(step % 4 * 16, step % 4 * 16 + 16)
        for p in params:
            p.grad = None
        nn.functional.cross_entropy(ours(x[idx]), y[idx]).backward()
        sgd_step(params, buffers, lr=0.05, momentum=0.9)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(theirs(x[idx]), y[idx]).backward()
        opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
