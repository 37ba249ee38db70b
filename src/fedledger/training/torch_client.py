"""PyTorch glue: weights as float32 numpy lists, plain SGD training, and a `TorchClient`.

Weights travel in `state_dict` order and include only floating tensors: integer
buffers (BatchNorm's `num_batches_tracked`) are counters, not something to
average or commit. Local training is the one place floating point is allowed
(DESIGN: determinism contract), yet it is still seeded so a simulation reruns
identically on the same machine; the shuffling seed mixes in the round number so
each round sees a different order. Thread count is left to the caller
(`configure_torch`), because importing a library must not change process state.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from fedledger.errors import DatasetError, InvalidUpdate
from fedledger.training.client import Config, Metrics, NDArrays, NumPyClient
from fedledger.training.dpsgd import DpSgd, check_private_model, dp_train


def configure_torch(threads: int | None) -> None:
    """Sets torch's intra-op threads (None keeps torch's default); call once at start-up."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def _float_items(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]


def weight_names(model: nn.Module) -> list[str]:
    """The state_dict names of the tensors `get_weights` returns, in the same order."""
    return [name for name, _ in _float_items(model)]


def get_weights(model: nn.Module) -> NDArrays:
    """Copies of the floating state as float32 arrays, so later training cannot alias them."""
    return [v.detach().cpu().numpy().astype(np.float32, copy=True) for _, v in _float_items(model)]


def set_weights(model: nn.Module, weights: NDArrays) -> None:
    """Loads `weights` (as from `get_weights`) in place; rejects a count or shape mismatch."""
    items = _float_items(model)
    if len(weights) != len(items):
        raise InvalidUpdate(f"expected {len(items)} weight tensors, got {len(weights)}")
    with torch.no_grad():
        for (name, tensor), array in zip(items, weights, strict=True):
            if tuple(array.shape) != tuple(tensor.shape):
                raise InvalidUpdate(f"{name}: expected shape {tuple(tensor.shape)}, got {tuple(array.shape)}")
            tensor.copy_(torch.from_numpy(np.asarray(array, dtype=np.float32)))


def round_seed(seed: int, round_number: int) -> int:
    """A per-round shuffling seed; SeedSequence keeps nearby (seed, round) pairs unrelated."""
    return int(np.random.SeedSequence([seed, round_number]).generate_state(1)[0])


def _check_data(x: np.ndarray, y: np.ndarray, what: str) -> None:
    if len(x) == 0:
        raise DatasetError(f"{what}: no examples")
    if len(x) != len(y):
        raise DatasetError(f"{what}: {len(x)} inputs but {len(y)} labels")


@torch.no_grad()
def sgd_step(
    params: Sequence[torch.Tensor], buffers: list[torch.Tensor | None], *, lr: float, momentum: float
) -> None:
    """One step of SGD with momentum, the same tensor operations as `torch.optim.SGD` on CPU.

    `torch.optim`'s first step imports torch._dynamo, 3.5 s in every process that trains —
    every node start, every simulation — for a compiler this code never uses. The update is
    the optimiser's single-tensor path op for op (no dampening, weight decay or Nesterov), so
    the weights are bit-identical (tests/unit/test_training_models.py checks it).
    """
    for i, p in enumerate(params):
        grad = p.grad
        if grad is None:
            continue
        if momentum != 0:
            buf = buffers[i]
            if buf is None:
                buf = buffers[i] = grad.detach().clone()
            else:
                buf.mul_(momentum).add_(grad, alpha=1)
            grad = buf
        p.add_(grad, alpha=-lr)


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float,
    seed: int,
) -> float:
    """Mini-batch SGD on cross-entropy; returns the example-weighted mean training loss.

    The optimiser is fresh each call: in FedAvg each round starts from the new
    global model, and stale momentum from the previous round would point the
    wrong way.
    """
    _check_data(x, y, "train")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # (N, *input_shape)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))  # (N,)
    rng = np.random.default_rng(seed)
    params = list(model.parameters())
    buffers: list[torch.Tensor | None] = [None] * len(params)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    total, count = 0.0, 0
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(xt)))  # (N,)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]  # (B,)
            for p in params:
                p.grad = None
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            sgd_step(params, buffers, lr=lr, momentum=momentum)
            total += float(loss.detach()) * len(idx)
            count += len(idx)
    return total / count


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over all of `x`, in eval mode with no gradients."""
    _check_data(x, y, "evaluate")
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # (N, *input_shape)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))  # (N,)
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(xt), batch_size):
            logits = model(xt[start : start + batch_size])  # (B, classes)
            target = yt[start : start + batch_size]  # (B,)
            loss_sum += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(dim=1) == target).sum())
    return loss_sum / len(xt), correct / len(xt)


def predict(model: nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Predicted class per row of `x`, (N,) int64, in eval mode with no gradients."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # (N, *input_shape)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(xt), batch_size):
            out.append(model(xt[start : start + batch_size]).argmax(dim=1).numpy())  # (B,)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


class TorchClient(NumPyClient):
    """A `NumPyClient` over one torch model and one trainer's data.

    `fit` reads optional overrides from the config a coordinator sends, with the
    job spec's field names: "round" (changes the shuffling), "local_epochs",
    "batch_size", "learning_rate", "momentum". With `dp` it runs DP-SGD instead, whose
    steps and batches come from the spec's DP parameters alone.
    """

    def __init__(
        self,
        model: nn.Module,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        *,
        epochs: int,
        batch_size: int,
        lr: float,
        momentum: float,
        seed: int,
        dp: DpSgd | None = None,
    ) -> None:
        _check_data(x_train, y_train, "TorchClient training data")
        self.model = model
        self.x_train, self.y_train = x_train, y_train
        self.x_val, self.y_val = x_val, y_val
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.seed = seed
        #: record-level DP: DP-SGD (Poisson batches, per-sample clipping, noise) instead of `train`
        self.dp = dp
        #: DP-SGD's sampling and noise from the seed (a simulation, rerun bit for bit) instead of
        #: the operating system's randomness; the seed is public, and noise known to others could
        #: be subtracted from the update, so only a simulation sets this
        self.seeded_noise = False
        if dp is not None:
            check_private_model(model)

    def get_parameters(self, config: Config) -> NDArrays:
        return get_weights(self.model)

    def parameter_names(self) -> list[str]:
        return weight_names(self.model)

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        set_weights(self.model, parameters)
        if self.dp is not None:
            loss = dp_train(
                self.model,
                self.x_train,
                self.y_train,
                dp=self.dp,
                lr=float(config.get("learning_rate", self.lr)),
                momentum=float(config.get("momentum", self.momentum)),
                seed=round_seed(self.seed, int(config.get("round", 0))) if self.seeded_noise else None,
            )
            return get_weights(self.model), len(self.x_train), {"loss": loss}
        loss = train(
            self.model,
            self.x_train,
            self.y_train,
            epochs=int(config.get("local_epochs", self.epochs)),
            batch_size=int(config.get("batch_size", self.batch_size)),
            lr=float(config.get("learning_rate", self.lr)),
            momentum=float(config.get("momentum", self.momentum)),
            seed=round_seed(self.seed, int(config.get("round", 0))),
        )
        return get_weights(self.model), len(self.x_train), {"loss": loss}

    def evaluate(self, parameters: NDArrays, config: Config) -> tuple[float, int, Metrics]:
        set_weights(self.model, parameters)
        loss, accuracy = evaluate(self.model, self.x_val, self.y_val)
        return loss, len(self.x_val), {"accuracy": accuracy}
