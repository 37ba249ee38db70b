"""Privacy accounting: how much ε a job has spent, and what a budget affords.

Wraps Google's `dp-accounting` (pinned, 0.6.0) rather than reimplementing RDP or PLD maths.
Opacus's shape: an `Accountant` ABC keeping the history of (noise multiplier, sampling rate,
rounds), a name → class registry ("rdp", "pld"), and plain functions for the questions a job
asks: ε after r rounds, rounds a budget affords, the noise multiplier a budget needs.

The mechanism per round is the Gaussian on the sum of clipped updates with σ = z · C, user
level: neighbouring datasets differ by one trainer's whole data. Every registered trainer
commits each round, so the sampling rate is 1 unless a job samples trainers (Poisson, rate q).
The noise is *discrete* Gaussian (`dp.py`): CKS 2020 show N_Z(0, σ²) with integer
sensitivity satisfies the same ½(Δ/σ)²-zCDP, hence the same RDP curve, as the continuous
Gaussian, so the RDP accountant is sound for it. PLD models the continuous Gaussian; for the
discrete one at σ of thousands of quantisation steps the difference is far below its
discretisation error, but RDP is the default for that reason.

On chain, ε is an integer count of micro-ε rounded *up* (`micro_epsilon`), so a recorded spend
never understates the real one. Computing ε is floating point (scipy, numpy): validators must
run the same `dp-accounting` version, and even then two machines could in principle round the
last bits differently and straddle a 10⁻⁶ boundary. Rounding up to 10⁻⁶ keeps honest parties
identical in practice, not by proof. ε depends only on public values (z, q, δ, rounds), so
the budget check reduces to a round count (`rounds_affordable`) anyone can recompute from the
spec, and a disagreement on micro-ε can be settled like scores (a median) if it ever occurs.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from fractions import Fraction
from typing import ClassVar, TypeVar

import dp_accounting
from dp_accounting import pld, rdp

from fedledger.errors import PrivacyError

#: ε is stored on chain in units of 10⁻⁶.
MICRO = 10**6
#: `noise_multiplier_for` searches [Z_MIN, Z_MAX]; below 0.05 PLD needs gigabytes and no ε is meaningful.
Z_MIN, Z_MAX = 0.05, 1e4

A = TypeVar("A", bound="type[Accountant]")


# ---------------------------------------------------------------- input checks


class _DroppedOrders(logging.Filter):
    """Drops dp-accounting's warning for each Rényi order it cannot evaluate.

    The RDP accountant then leaves that order out and takes ε from the others, so ε stays an
    upper bound; the warning says nothing a user can act on, and a two-round record-level job
    printed 125 of them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to converge" not in record.getMessage()


logging.getLogger("absl").addFilter(_DroppedOrders())


def _finite(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PrivacyError(f"{what} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise PrivacyError(f"{what} is {value}; it must be finite")
    return float(value)


def check_noise_multiplier(z: float) -> float:
    if _finite(z, "noise multiplier") <= 0:
        raise PrivacyError(f"noise multiplier is {z}; it must be > 0 (0 means no privacy)")
    return float(z)


def check_sampling_rate(q: float) -> float:
    if not 0 < _finite(q, "sampling rate") <= 1:
        raise PrivacyError(f"sampling rate is {q}; it must be in (0, 1]")
    return float(q)


def check_delta(delta: float) -> float:
    if not 0 < _finite(delta, "delta") < 1:
        raise PrivacyError(f"delta is {delta}; it must be in (0, 1)")
    return float(delta)


def check_epsilon(epsilon: float) -> float:
    if _finite(epsilon, "epsilon") <= 0:
        raise PrivacyError(f"epsilon is {epsilon}; a budget must be > 0")
    return float(epsilon)


def _check_rounds(rounds: int) -> int:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise PrivacyError(f"rounds must be a non-negative integer, got {rounds!r}")
    return rounds


# ---------------------------------------------------------------- accountants


class Accountant(ABC):
    """A job's privacy ledger: `step` once per finalised round, `get_epsilon` any time.

    Keeps only the history and recomputes ε from it through a fresh library accountant, so
    two parties with the same history get the same answer whatever order they asked in.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        #: (noise multiplier, sampling rate, rounds), consecutive equal steps merged.
        self.history: list[tuple[float, float, int]] = []

    @abstractmethod
    def _library(self) -> dp_accounting.PrivacyAccountant:
        """A fresh, empty dp-accounting accountant."""

    def step(self, noise_multiplier: float, sampling_rate: float = 1.0, rounds: int = 1) -> None:
        z, q = check_noise_multiplier(noise_multiplier), check_sampling_rate(sampling_rate)
        r = _check_rounds(rounds)
        if r == 0:
            return
        if self.history and self.history[-1][:2] == (z, q):
            self.history[-1] = (z, q, self.history[-1][2] + r)
        else:
            self.history.append((z, q, r))

    def get_epsilon(self, delta: float) -> float:
        """ε spent so far at δ (0.0 before any round)."""
        check_delta(delta)
        if not self.history:
            return 0.0
        acc = self._library()
        for z, q, r in self.history:
            acc.compose(_round_event(z, q), r)
        eps = float(acc.get_epsilon(delta))
        if not math.isfinite(eps) or eps < 0:
            raise PrivacyError(f"{self.name} accountant returned ε = {eps}; noise too small for δ = {delta}")
        return eps

    def __len__(self) -> int:
        return sum(r for _, _, r in self.history)


def _round_event(z: float, q: float) -> dp_accounting.DpEvent:
    event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(z)
    return event if q == 1.0 else dp_accounting.PoissonSampledDpEvent(q, event)


ACCOUNTANTS: dict[str, type[Accountant]] = {}


def register_accountant(cls: A) -> A:
    ACCOUNTANTS[cls.name] = cls
    return cls


def create_accountant(name: str) -> Accountant:
    """The registered accountant called `name` ("rdp" or "pld")."""
    try:
        return ACCOUNTANTS[name]()
    except KeyError:
        raise PrivacyError(f"unknown accountant {name!r}; known: {', '.join(sorted(ACCOUNTANTS))}") from None


@register_accountant
class RdpAccountant(Accountant):
    """Rényi DP (Mironov 2017): fast (about a millisecond), slightly loose; the default."""

    name = "rdp"

    def _library(self) -> dp_accounting.PrivacyAccountant:
        return rdp.RdpAccountant()


@register_accountant
class PldAccountant(Accountant):
    """Privacy loss distributions: tighter ε (~5–10% lower), about a second per evaluation."""

    name = "pld"

    def __init__(self, value_discretization_interval: float = 1e-3) -> None:
        super().__init__()
        self.interval = value_discretization_interval

    def _library(self) -> dp_accounting.PrivacyAccountant:
        return pld.PLDAccountant(value_discretization_interval=self.interval)


# ---------------------------------------------------------------- the questions a job asks


def epsilon(
    noise_multiplier: float, sampling_rate: float, rounds: int, delta: float, accountant: str = "rdp"
) -> float:
    """ε after `rounds` rounds of the Gaussian with multiplier z at sampling rate q."""
    acc = create_accountant(accountant)
    acc.step(noise_multiplier, sampling_rate, rounds)
    return acc.get_epsilon(delta)


def rounds_affordable(
    epsilon_budget: float,
    delta: float,
    noise_multiplier: float,
    sampling_rate: float = 1.0,
    accountant: str = "rdp",
    max_rounds: int = 10**6,
    steps_per_round: int = 1,
) -> int:
    """The most rounds whose ε stays ≤ the budget (0 if one round already exceeds it).

    A round is `steps_per_round` releases (DP-SGD steps at record level). ε grows with
    rounds, so doubling then bisection: O(log r) evaluations. Capped at `max_rounds`,
    which is returned if even that many fit.
    """
    budget = check_epsilon(epsilon_budget)
    if isinstance(steps_per_round, bool) or not isinstance(steps_per_round, int) or steps_per_round < 1:
        raise PrivacyError(f"steps per round must be a positive integer, got {steps_per_round!r}")

    def fits(r: int) -> bool:
        return epsilon(noise_multiplier, sampling_rate, r * steps_per_round, delta, accountant) <= budget

    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= max_rounds and fits(hi):
        lo, hi = hi, hi * 2
    if hi > max_rounds:
        if fits(max_rounds):
            return max_rounds
        hi = max_rounds
    while hi - lo > 1:  # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def noise_multiplier_for(
    epsilon_budget: float,
    delta: float,
    rounds: int,
    sampling_rate: float = 1.0,
    accountant: str = "rdp",
    rel_tol: float = 1e-4,
) -> float:
    """The smallest z (within rel_tol) whose ε after `rounds` rounds is ≤ the budget.

    Bisection on z, returning the upper end, so the answer always meets the budget.
    """
    budget = check_epsilon(epsilon_budget)
    if _check_rounds(rounds) == 0:
        raise PrivacyError("rounds must be ≥ 1 to calibrate noise")

    def fits(z: float) -> bool:
        return epsilon(z, sampling_rate, rounds, delta, accountant) <= budget

    lo, hi = 1.0, 1.0  # bracket from z = 1 outwards: tiny z makes PLD's arrays explode
    if fits(hi):
        while True:
            if hi <= Z_MIN:
                return Z_MIN
            lo = max(hi / 2, Z_MIN)
            if not fits(lo):
                break
            hi = lo
    else:
        while not fits(hi):
            if hi >= Z_MAX:
                raise PrivacyError(f"no noise multiplier ≤ {Z_MAX:g} reaches ε = {budget} in {rounds} rounds")
            lo, hi = hi, hi * 2
    while hi / lo > 1 + rel_tol:  # fits(hi), not fits(lo)
        mid = math.sqrt(lo * hi)  # geometric: z spans decades
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def micro_epsilon(eps: float) -> int:
    """⌈ε · 10⁶⌉ from ε's exact binary value: the integer recorded on chain, never below ε."""
    value = _finite(eps, "epsilon")
    if value < 0:
        raise PrivacyError(f"epsilon is {eps}; it cannot be negative")
    return math.ceil(Fraction(value) * MICRO)


def epsilon_from_micro(micro: int) -> float:
    """The ε an on-chain micro-ε integer stands for (for display)."""
    if isinstance(micro, bool) or not isinstance(micro, int) or micro < 0:
        raise PrivacyError(f"micro-epsilon must be a non-negative integer, got {micro!r}")
    return micro / MICRO
