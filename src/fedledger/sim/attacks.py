"""Byzantine trainers for the simulator: the attacks robust rules and flags must withstand.

Each attack turns a share of the consortium's trainers malicious from round one. Data
attacks change what a malicious trainer trains on; model attacks change the update it
submits. Every malicious trainer still commits through the real protocol, so what it
achieves is what the validators and the contract let it achieve.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from fedledger.errors import SpecError
from fedledger.spec import JobSpec
from fedledger.training.client import ClientWrapper, Config, Metrics, NDArrays, NumPyClient
from fedledger.training.consortium import Consortium
from fedledger.training.partition_client import make_client

ATTACKS = {
    "label-flip": "trains on flipped labels (y -> C-1-y)",
    "sign-flip": "submits its honest update reversed and scaled: -4x",
    "gaussian": "submits Gaussian noise of half the spec's norm bound",
    "backdoor": "trains with a pixel trigger (label 0), scales its update by n/k (model replacement)",
    "free-ride": "resubmits the global model: an empty update, claiming its examples",
    "sybil": "one organisation behind every malicious identity: pooled data, flipped labels, one update",
}

#: The backdoor's target label and trigger: a bright 4x4 patch near the bottom-right corner.
BACKDOOR_TARGET = 0
SIGN_FLIP_SCALE = 4.0
#: Attack updates stay inside the spec's norm bound (an attacker knows the spec): 90% of it.
NORM_BUDGET = 0.9


def add_trigger(x: np.ndarray) -> np.ndarray:
    """A copy of image batch x (N, C, H, W) with the trigger patch set to the maximum value."""
    out = np.array(x, copy=True)
    out[..., -6:-2, -6:-2] = 1.0
    return out


@dataclass(frozen=True)
class Attack:
    """`kind` played by round(fraction * trainers) trainers, the last ones by number."""

    kind: str
    fraction: float

    def __post_init__(self) -> None:
        if self.kind not in ATTACKS:
            raise SpecError("attack", f"unknown attack {self.kind!r}; known: {', '.join(ATTACKS)}")
        if not 0 <= self.fraction < 1:
            raise SpecError("malicious", f"malicious fraction {self.fraction} must be in [0, 1)")

    def malicious(self, trainers: int) -> list[int]:
        """1-based numbers of the malicious trainers (round half up, so 0.2 of 10 is 2)."""
        k = int(Fraction(repr(self.fraction)) * trainers + Fraction(1, 2))
        return list(range(trainers - k + 1, trainers + 1))


class _UpdateAttack(ClientWrapper):
    """Wraps an honest client and rewrites the update it returns."""

    def __init__(self, inner: NumPyClient, spec: JobSpec, seed: int) -> None:
        super().__init__(inner)
        self.bound = spec.max_update_norm * NORM_BUDGET
        self.rng = np.random.default_rng(seed)

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        new, n, metrics = self.inner.fit(parameters, config)
        delta = [
            np.asarray(w, dtype=np.float64) - np.asarray(g, dtype=np.float64)
            for w, g in zip(new, parameters, strict=True)
        ]
        delta = self.rewrite(delta)
        norm = float(np.sqrt(sum(float((d * d).sum()) for d in delta)))
        if norm > self.bound:  # stay just inside the validity bound
            delta = [d * (self.bound / norm) for d in delta]
        out = [
            (np.asarray(g, dtype=np.float64) + d).astype(np.float32)
            for g, d in zip(parameters, delta, strict=True)
        ]
        return out, n, metrics

    def rewrite(self, delta: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError


class SignFlip(_UpdateAttack):
    def rewrite(self, delta: list[np.ndarray]) -> list[np.ndarray]:
        return [-SIGN_FLIP_SCALE * d for d in delta]


class Gaussian(_UpdateAttack):
    def rewrite(self, delta: list[np.ndarray]) -> list[np.ndarray]:
        size = sum(d.size for d in delta)
        sigma = 0.5 * self.bound / NORM_BUDGET / np.sqrt(size)
        return [self.rng.normal(0.0, sigma, d.shape) for d in delta]


class Boost(_UpdateAttack):
    """Model replacement: scale the (backdoored) update so it survives averaging."""

    def __init__(self, inner: NumPyClient, spec: JobSpec, seed: int, factor: float) -> None:
        super().__init__(inner, spec, seed)
        self.factor = factor

    def rewrite(self, delta: list[np.ndarray]) -> list[np.ndarray]:
        return [self.factor * d for d in delta]


class ClaimExamples(ClientWrapper):
    """Trains like `inner` but claims `examples` (a Sybil identity's own small share)."""

    def __init__(self, inner: NumPyClient, examples: int) -> None:
        super().__init__(inner)
        self.examples = examples

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        new, _, metrics = self.inner.fit(parameters, config)
        return new, self.examples, metrics


class FreeRide(ClaimExamples):
    """Does no work: hands the global model back as its own, claiming its examples."""

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        return [np.array(p, dtype=np.float32, copy=True) for p in parameters], self.examples, {}


def apply_attack(
    consortium: Consortium, spec: JobSpec, attack: Attack
) -> tuple[list[NumPyClient], list[int]]:
    """The consortium's clients with the malicious ones replaced, and their 1-based numbers."""
    ds = consortium.dataset
    bad = attack.malicious(spec.trainers)
    clients: list[NumPyClient] = list(consortium.clients)
    flip = ds.num_classes - 1
    if attack.kind == "sybil" and bad:
        rows = np.concatenate([consortium.parts[i - 1] for i in bad])
        for i in bad:
            # one organisation, one seed, one pooled dataset: identical updates from every identity
            shared = make_client(spec, ds, ds.x_train[rows], flip - ds.y_train[rows], seed=spec.seed + bad[0])
            clients[i - 1] = ClaimExamples(shared, len(consortium.parts[i - 1]))
        return clients, bad
    for i in bad:
        rows = consortium.parts[i - 1]
        x, y = ds.x_train[rows], ds.y_train[rows]
        seed = spec.seed + i
        if attack.kind == "label-flip":
            clients[i - 1] = make_client(spec, ds, x, flip - y, seed)
        elif attack.kind == "sign-flip":
            clients[i - 1] = SignFlip(clients[i - 1], spec, seed)
        elif attack.kind == "gaussian":
            clients[i - 1] = Gaussian(clients[i - 1], spec, seed)
        elif attack.kind == "free-ride":
            clients[i - 1] = FreeRide(clients[i - 1], len(rows))
        elif attack.kind == "backdoor":
            poisoned = add_trigger(x)
            xb = np.concatenate([x, poisoned])
            yb = np.concatenate([y, np.full(len(y), BACKDOOR_TARGET, dtype=y.dtype)])
            boost = spec.trainers / len(bad)
            clients[i - 1] = Boost(make_client(spec, ds, xb, yb, seed), spec, seed, boost)
    return clients, bad


#: Trainers of different real value, for contribution scoring (not attacks: none is flagged).
PROFILES = {
    "label-noise": "half of its labels replaced by random ones",
    "duplicate": "holds a copy of trainer 1's data instead of its own",
    "tiny": "keeps only 10 of its rows",
    "free-ride": "resubmits the global model, claiming its examples",
}


def parse_profile(text: str) -> tuple[str, int]:
    """KIND@TRAINER, e.g. `label-noise@3`."""
    kind, _, who = text.partition("@")
    if kind not in PROFILES or not who.isdigit():
        raise SpecError("profile", f"{text!r} is not KIND@TRAINER with KIND one of {', '.join(PROFILES)}")
    return kind, int(who)


def apply_profiles(
    consortium: Consortium, spec: JobSpec, clients: list[NumPyClient], profiles: list[tuple[str, int]]
) -> list[NumPyClient]:
    """`clients` with the profiled trainers' data (or behaviour) changed."""
    ds = consortium.dataset
    out = list(clients)
    rng = np.random.default_rng([spec.seed, 0xDA7A])
    for kind, i in profiles:
        if not 1 <= i <= spec.trainers:
            raise SpecError("profile", f"trainer {i} is outside 1..{spec.trainers}")
        rows = consortium.parts[i - 1]
        x, y = ds.x_train[rows], ds.y_train[rows].copy()
        if kind == "label-noise":
            noisy = rng.random(len(y)) < 0.5
            y[noisy] = rng.integers(0, ds.num_classes, int(noisy.sum()))
            out[i - 1] = make_client(spec, ds, x, y, spec.seed + i)
        elif kind == "duplicate":
            first = consortium.parts[0]
            out[i - 1] = make_client(spec, ds, ds.x_train[first], ds.y_train[first], spec.seed + i)
        elif kind == "tiny":
            out[i - 1] = make_client(spec, ds, x[:10], y[:10], spec.seed + i)
        elif kind == "free-ride":
            out[i - 1] = FreeRide(out[i - 1], len(rows))
    return out


def backdoor_success(predict: np.ndarray, labels: np.ndarray) -> float:
    """Share of triggered test images whose true label is not the target that hit the target."""
    mask = labels != BACKDOOR_TARGET
    if not mask.any():
        return float("nan")
    return float((predict[mask] == BACKDOOR_TARGET).mean())
