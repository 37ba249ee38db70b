"""Small models every party can rebuild identically from (name, shapes, seed).

The initial global model is not sent anywhere: each party builds it from the job
spec, so construction must be deterministic and must not disturb the caller's
global torch RNG (it runs inside `torch.random.fork_rng`). The models are sized
for CPU simulations of many trainers on two cores. Measured on MNIST (FedAvg, 10
Dirichlet(0.5) trainers, 20 rounds): the convolutions cost nearly all the time
and the dense layer nearly none, so the CNN has narrow convolutions (8 and 16
channels, 54k parameters) and keeps the full 7x7 map for the dense layer; a
16/32-channel CNN averaged down to 4x4 (47k parameters) was ~3x slower per round
and less accurate (94% vs 96% at 20 rounds).

A spec's model may instead be a reference "package.module:build" to the users' own
PyTorch module factory. Its calling convention:

    def build(*, input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module

called with keyword arguments only (input_shape excludes the batch dimension: (C, H, W)
for images, (features,) for tables), inside `torch.random.fork_rng` after
`torch.manual_seed(spec.seed)`, so a factory that draws its initial weights from torch's
global RNG (the default for every torch layer) gives every party identical weights. It
must not read other randomness (numpy, random) or the clock. The module is checked once:
it has parameters, and a dummy batch of 2 zero inputs in eval mode gives (2, num_classes)
logits. Weights travel in `state_dict` order (torch_client.get_weights), floating tensors
only.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from fedledger.errors import CodeError, SpecError
from fedledger.training.code import describe_error, load_ref

MODELS: tuple[str, ...] = ("cnn", "mlp", "logreg")
HIDDEN = 64
CNN_WIDTHS = (8, 16)
CNN_POOL = 7  # largest feature map the dense layer sees; 28x28 input leaves exactly 7x7


class SmallCNN(nn.Module):
    """Two conv-relu-pool blocks, a 64-unit layer, then logits; any (C, H, W) with H, W >= 4."""

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, widths: tuple[int, int] = CNN_WIDTHS
    ) -> None:
        super().__init__()
        channels, height, width = input_shape
        c1, c2 = widths
        self.features = nn.Sequential(
            nn.Conv2d(channels, c1, kernel_size=5, padding=2),  # (B, c1, H, W)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, c1, H/2, W/2)
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),  # (B, c2, H/2, W/2)
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, c2, H/4, W/4)
        )
        # 28x28 leaves 7x7 (784 features at 16 channels, 50k weights in the next layer) and
        # 8x8 leaves 2x2; larger inputs are averaged down to 7x7 to cap the dense layer.
        pooled = (min(height // 4, CNN_POOL), min(width // 4, CNN_POOL))
        self.pool = nn.AdaptiveAvgPool2d(pooled)  # (B, c2, <=7, <=7)
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, c2 * ph * pw)
            nn.Linear(c2 * pooled[0] * pooled[1], HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, num_classes),  # (B, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, num_classes)
        out: torch.Tensor = self.classifier(self.pool(self.features(x)))
        return out


def _init_weights(model: nn.Module) -> None:
    """He init for the ReLU layers, zero biases.

    torch's default (Kaiming-uniform with a=sqrt(5)) leaves this CNN's activations so
    small that federated clients, each taking ~25 steps per round on a few hundred
    images, sit on the loss plateau (2.30, 10% accuracy) for several rounds.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def _check_shape(name: str, input_shape: tuple[int, ...], num_classes: int) -> None:
    if num_classes < 2:
        raise SpecError("model", f"{name} needs at least 2 classes, got {num_classes}")
    if not input_shape or any(d < 1 for d in input_shape):
        raise SpecError("model", f"{name}: invalid input shape {input_shape}")
    if name == "cnn" and (len(input_shape) != 3 or min(input_shape[1:]) < 4):
        raise SpecError(
            "model",
            f"cnn needs image input (C, H, W) with H, W >= 4, got {input_shape}; "
            "use 'mlp' or 'logreg' for tabular data",
        )


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int) -> nn.Module:
    """Builds `name` (built-in or "package.module:build") with weights drawn from `seed` alone.

    The caller's RNG state is untouched.
    """
    if ":" in name:
        return _build_user_model(name, input_shape, num_classes, seed=seed)
    if name not in MODELS:
        raise SpecError(
            "model",
            f"unknown model {name!r}; known models: {', '.join(MODELS)}, "
            "or a factory reference 'package.module:build'",
        )
    _check_shape(name, input_shape, num_classes)
    features = math.prod(input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: nn.Module
        if name == "cnn":
            model = SmallCNN(input_shape, num_classes)
            _init_weights(model)
        elif name == "mlp":
            model = nn.Sequential(
                nn.Flatten(),  # (B, features)
                nn.Linear(features, HIDDEN),
                nn.ReLU(),
                nn.Linear(HIDDEN, num_classes),  # (B, num_classes)
            )
        else:
            model = nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes))
    return model


def _build_user_model(ref: str, input_shape: tuple[int, ...], num_classes: int, *, seed: int) -> nn.Module:
    """Calls the user's factory under the seeded, forked RNG and checks what comes back."""
    _check_shape(ref, input_shape, num_classes)
    factory = load_ref(ref, field="model")
    if not callable(factory):
        raise CodeError(
            "model",
            f"{ref} is a {type(factory).__name__}, not a callable factory returning a torch nn.Module",
        )
    call = f"{ref}(input_shape={tuple(input_shape)}, num_classes={num_classes})"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = factory(input_shape=tuple(input_shape), num_classes=num_classes)
        except Exception as exc:  # the user's code: report what it raised, not a traceback
            raise CodeError("model", f"{call} raised {describe_error(exc)}") from None
        if not isinstance(model, nn.Module):
            raise CodeError("model", f"{call} returned a {type(model).__name__}, not a torch nn.Module")
        if not any(True for _ in model.parameters()):
            raise CodeError("model", f"{call} returned a {type(model).__name__} with no parameters to train")
        _check_output(model, call, input_shape, num_classes)
    return model


def _check_output(model: nn.Module, call: str, input_shape: tuple[int, ...], num_classes: int) -> None:
    """A dummy batch of 2 zero inputs must give (2, num_classes) logits; train/eval mode is kept."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))  # (2, num_classes) expected
    except Exception as exc:
        raise CodeError(
            "model", f"{call}: a batch of shape {(2, *input_shape)} fails in forward: {describe_error(exc)}"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise CodeError("model", f"{call}: forward returned a {type(out).__name__}, not a tensor of logits")
    if tuple(out.shape) != (2, num_classes):
        raise CodeError(
            "model",
            f"{call}: a batch of shape {(2, *input_shape)} gives output shape {tuple(out.shape)}, "
            f"expected (2, {num_classes}): one logit per class",
        )


def count_parameters(model: nn.Module) -> int:
    """Trainable scalars: what an update carries, so what codec and chain costs scale with."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
