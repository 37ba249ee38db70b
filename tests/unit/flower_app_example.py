"""A Flower app as its users write it (quickstart-pytorch style), on sklearn's digits.

Nothing in this file knows fedledger: it is the organisation's existing Flower code that
tests/unit/test_flower_client.py runs through `load_flower_client`. The one addition a
fedledger job asks for is `build`, the model factory the spec names
(model = "flower_app_example:build"), so every party builds the same initial weights.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

NUM_CLASSES = 10


class Net(nn.Module):
    """A small MLP over the 8x8 digit images, flattened."""

    def __init__(self, input_features: int = 64, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.fc1 = nn.Linear(input_features, 32)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 64) or (B, 1, 8, 8) -> (B, 10)
        out: torch.Tensor = self.fc2(torch.relu(self.fc1(x.flatten(1))))
        return out


def build(*, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The model factory a fedledger job spec names."""
    return Net(int(np.prod(input_shape)), num_classes)


def load_data(partition_id: int, num_partitions: int) -> tuple[DataLoader[Any], DataLoader[Any]]:
    """This partition's digits, 80% train / 20% validation (the same split on every call)."""
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(42).permutation(len(y))
    rows = np.array_split(order, num_partitions)[partition_id]
    xs = torch.tensor(x[rows] / 16.0, dtype=torch.float32)  # (N, 64)
    ys = torch.tensor(y[rows], dtype=torch.int64)  # (N,)
    cut = int(0.8 * len(rows))
    train = TensorDataset(xs[:cut], ys[:cut])
    val = TensorDataset(xs[cut:], ys[cut:])
    return DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=256)


def train(net: Net, loader: DataLoader[Any], epochs: int, seed: int) -> float:
    torch.manual_seed(seed)  # the loader's shuffling draws from torch's global RNG
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    net.train()
    total, count = 0.0, 0
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(net(xb), yb)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(yb)
            count += len(yb)
    return total / count


def test(net: Net, loader: DataLoader[Any]) -> tuple[float, float]:
    criterion = nn.CrossEntropyLoss(reduction="sum")
    net.eval()
    loss, correct, count = 0.0, 0, 0
    with torch.no_grad():
        for xb, yb in loader:
            out = net(xb)
            loss += float(criterion(out, yb))
            correct += int((out.argmax(1) == yb).sum())
            count += len(yb)
    return loss / count, correct / count


def get_weights(net: Net) -> list[np.ndarray]:
    return [val.cpu().numpy() for _, val in net.state_dict().items()]


def set_weights(net: Net, parameters: list[np.ndarray]) -> None:
    params_dict = zip(net.state_dict().keys(), parameters, strict=True)
    state_dict = OrderedDict({k: torch.tensor(v) for k, v in params_dict})
    net.load_state_dict(state_dict, strict=True)


class FlowerClient(NumPyClient):
    def __init__(self, partition_id: int, num_partitions: int, local_epochs: int = 1) -> None:
        self.partition_id = partition_id
        self.net = Net()
        self.trainloader, self.valloader = load_data(partition_id, num_partitions)
        self.local_epochs = local_epochs

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return get_weights(self.net)

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        set_weights(self.net, parameters)
        seed = 1000 * int(config.get("server-round", 0)) + self.partition_id
        loss = train(self.net, self.trainloader, self.local_epochs, seed)
        return get_weights(self.net), len(self.trainloader.dataset), {"train_loss": loss}  # type: ignore[arg-type]

    def evaluate(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        set_weights(self.net, parameters)
        loss, accuracy = test(self.net, self.valloader)
        return loss, len(self.valloader.dataset), {"accuracy": accuracy}  # type: ignore[arg-type]


def client_fn(context: Context) -> Any:
    partition_id = int(context.node_config["partition-id"])
    num_partitions = int(context.node_config["num-partitions"])
    local_epochs = int(context.run_config.get("local-epochs", 1))
    return FlowerClient(partition_id, num_partitions, local_epochs).to_client()


app = ClientApp(client_fn=client_fn)


class ContextClient(FlowerClient):
    """A client that reads its partition from the Context itself."""

    def __init__(self, context: Context) -> None:
        super().__init__(
            int(context.node_config["partition-id"]),
            int(context.node_config["num-partitions"]),
            int(context.run_config.get("local-epochs", 1)),
        )


class WholeDataClient(FlowerClient):
    """A single-site client: all of the data, no arguments."""

    def __init__(self) -> None:
        super().__init__(0, 1)
