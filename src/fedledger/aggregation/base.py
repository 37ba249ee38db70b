"""The aggregation interface: a small ABC for the roles, pure integer functions beside it.

Every rule maps (global model, committed updates) to a new global model in int64 arithmetic
with defined rounding, so every honest validator gets identical bytes and therefore an
identical commitment (DESIGN, determinism contract). Rules are looked up by the name in the
job spec, through `RULES`.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from fedledger.errors import InvalidUpdate, SpecError

#: Modules that define the built-in rules; imported lazily by `get_rule` so that importing
#: this module alone is enough to look up any built-in rule.
BUILTIN_RULE_MODULES = (
    "fedledger.aggregation.fedavg",
    "fedledger.aggregation.median",
    "fedledger.aggregation.trimmed_mean",
    "fedledger.aggregation.krum",
    "fedledger.aggregation.clipped",
    "fedledger.aggregation.fltrust",
)


@dataclass(frozen=True)
class Update:
    """One trainer's committed update for a round; `delta` is int64, shaped like the model."""

    trainer: str
    commitment: bytes
    num_examples: int
    delta: Mapping[str, np.ndarray]
    #: Position in commit order (block, then log index): decides which of two identical
    #: updates came first. Defaults keep hand-built updates in address order.
    order: int = 0


@dataclass(frozen=True)
class RoundAggregate:
    """What a rule made of a round: the new model, whose updates it used, whom it flags.

    A flagged update is excluded and its trainer slashed on chain, so a rule flags only
    what it can justify to an auditor. An update merely not `used` (one Krum did not
    select) is neither: its trainer acted in good faith.
    """

    model: dict[str, np.ndarray]
    used: tuple[str, ...]
    flagged: Mapping[str, str]  # trainer -> reason


class AggregationRule(ABC):
    """A named, deterministic way to turn a round's updates into the next global model."""

    name: ClassVar[str]
    #: Fewest updates the rule needs per round; the spec check enforces it up front.
    min_updates: int = 1

    @abstractmethod
    def aggregate(self, global_model: Mapping[str, np.ndarray], updates: Sequence[Update]) -> RoundAggregate:
        """The NEW global model (int64, not a delta), the updates in it and the flags."""


def ordered_updates(updates: Sequence[Update], global_model: Mapping[str, np.ndarray]) -> list[Update]:
    """Updates sorted by trainer, refusing duplicates and layouts unlike the global model.

    Sorting first means the input order provably cannot change any rule's result.
    """
    if not updates:
        raise InvalidUpdate("no updates to aggregate")
    ordered = sorted(updates, key=lambda u: (u.trainer.lower(), u.trainer))
    seen: set[str] = set()
    for u in ordered:
        if u.trainer.lower() in seen:
            raise InvalidUpdate(f"trainer {u.trainer} has more than one update")
        seen.add(u.trainer.lower())
        check_same_layout(u.delta, global_model, f"update from {u.trainer}")
    return ordered


RULES: dict[str, type[AggregationRule]] = {}
R = TypeVar("R", bound=type[AggregationRule])


def register_rule(cls: R) -> R:
    """Class decorator: makes a rule available to `get_rule` under `cls.name`."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise SpecError("aggregation", f"rule class {cls.__name__} has no `name`")
    existing = RULES.get(name)
    if existing is not None and existing is not cls:
        raise SpecError("aggregation", f"rule '{name}' is registered twice")
    RULES[name] = cls
    return cls


def get_rule(name: str, **kwargs: Any) -> AggregationRule:
    """An instance of the rule called `name`; SpecError listing the known rules otherwise."""
    for module in BUILTIN_RULE_MODULES:
        importlib.import_module(module)
    cls = RULES.get(name)
    if cls is None:
        known = ", ".join(sorted(RULES)) or "none"
        raise SpecError("aggregation", f"unknown rule '{name}' (known: {known})")
    factory: Callable[..., AggregationRule] = cls
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise SpecError("aggregation", f"rule '{name}': bad parameters: {exc}") from None


def max_abs(arr: np.ndarray) -> int:
    """max |x| as a Python int (np.abs would wrap at int64 min)."""
    if arr.size == 0:
        return 0
    return max(abs(int(arr.max())), abs(int(arr.min())))


def check_same_layout(
    tensors: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], what: str
) -> None:
    """InvalidUpdate unless `tensors` has exactly the names and shapes of `reference`, in int64."""
    missing = [n for n in reference if n not in tensors]
    extra = [n for n in tensors if n not in reference]
    if missing or extra:
        raise InvalidUpdate(f"{what}: missing tensors {missing}, unexpected tensors {extra}")
    for name, ref in reference.items():
        arr = tensors[name]
        if not isinstance(arr, np.ndarray) or arr.dtype != np.int64:
            dtype = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
            raise InvalidUpdate(f"{what}: tensor '{name}': dtype {dtype} is not int64")
        if arr.shape != ref.shape:
            raise InvalidUpdate(f"{what}: tensor '{name}': shape {arr.shape} != expected {ref.shape}")


def check_inputs(deltas: Sequence[Mapping[str, np.ndarray]], weights: Sequence[int]) -> None:
    """InvalidUpdate unless there are deltas, one weight each, all laid out like the first."""
    if not deltas:
        raise InvalidUpdate("no updates to aggregate")
    if len(deltas) != len(weights):
        raise InvalidUpdate(f"{len(deltas)} deltas but {len(weights)} weights")
    for i, d in enumerate(deltas):
        check_same_layout(d, deltas[0], f"delta {i}")


def apply_delta(
    global_model: Mapping[str, np.ndarray], delta: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """global + delta in int64, refusing to wrap around (key order of `global_model`)."""
    check_same_layout(global_model, global_model, "global model")
    check_same_layout(delta, global_model, "delta")
    out: dict[str, np.ndarray] = {}
    for name, g in global_model.items():
        g_flat, d_flat = g.reshape(-1), delta[name].reshape(-1)  # (n,) each
        total = g_flat + d_flat  # (n,) may wrap, checked next
        # Two's-complement overflow happened iff both operands share a sign the sum lacks.
        wrapped = ((g_flat ^ total) & (d_flat ^ total)) < 0
        if np.any(wrapped):
            raise InvalidUpdate(f"tensor '{name}': global + delta overflows int64")
        out[name] = total.reshape(g.shape)
    return out
