"""Privacy accounting (privacy/accountant.py) over Google's dp-accounting: RDP and PLD."""

from __future__ import annotations

import itertools
import logging
import math
from fractions import Fraction

import pytest

from fedledger.errors import PrivacyError
from fedledger.privacy import accountant as acc

DELTA = 1e-5


def test_registry_knows_rdp_and_pld() -> None:
    assert isinstance(acc.create_accountant("rdp"), acc.RdpAccountant)
    assert isinstance(acc.create_accountant("pld"), acc.PldAccountant)
    with pytest.raises(PrivacyError, match="unknown accountant 'moments'; known: pld, rdp"):
        acc.create_accountant("moments")


@pytest.mark.parametrize(("z", "q", "rounds"), [(1.0, 1.0, 10), (5.0, 1.0, 50), (1.1, 0.1, 100)])
def test_rdp_and_pld_roughly_agree(z: float, q: float, rounds: int) -> None:
    rdp = acc.epsilon(z, q, rounds, DELTA, "rdp")
    pld = acc.epsilon(z, q, rounds, DELTA, "pld")
    assert 0.75 * rdp < pld <= 1.02 * rdp  # PLD is the tighter of the two


def test_epsilon_grows_with_rounds() -> None:
    eps = [acc.epsilon(3.0, 1.0, r, DELTA) for r in range(1, 41)]
    assert all(a < b for a, b in itertools.pairwise(eps))
    pld = [acc.epsilon(3.0, 1.0, r, DELTA, "pld") for r in (1, 5, 20)]
    assert pld == sorted(pld) and len(set(pld)) == 3
    assert acc.epsilon(3.0, 1.0, 0, DELTA) == 0.0


def test_epsilon_falls_with_noise_and_sampling() -> None:
    assert acc.epsilon(2.0, 1.0, 10, DELTA) > acc.epsilon(4.0, 1.0, 10, DELTA)
    assert acc.epsilon(2.0, 1.0, 10, DELTA) > acc.epsilon(2.0, 0.2, 10, DELTA)


@pytest.mark.parametrize("name", ["rdp", "pld"])
def test_budget_rounds_epsilon_round_trip(name: str) -> None:
    budget, z = 8.0, 5.0
    rounds = acc.rounds_affordable(budget, DELTA, z, accountant=name)
    assert rounds > 0
    assert acc.epsilon(z, 1.0, rounds, DELTA, name) <= budget < acc.epsilon(z, 1.0, rounds + 1, DELTA, name)
    found = acc.noise_multiplier_for(budget, DELTA, rounds, accountant=name)
    assert found <= z * (1 + 1e-4)
    assert acc.epsilon(found, 1.0, rounds, DELTA, name) <= budget
    assert acc.epsilon(found * (1 - 1e-3), 1.0, rounds, DELTA, name) > budget


def test_rounds_affordable_edges() -> None:
    assert acc.rounds_affordable(0.01, DELTA, 1.0) == 0  # one round already costs more
    assert acc.rounds_affordable(50.0, DELTA, 1e3, max_rounds=1000) == 1000  # capped
    assert acc.rounds_affordable(8.0, DELTA, 2.0, max_rounds=3) == 3


def test_noise_multiplier_for_with_sampling() -> None:
    z = acc.noise_multiplier_for(8.0, DELTA, 200, sampling_rate=0.1)
    assert acc.epsilon(z, 0.1, 200, DELTA) <= 8.0
    assert z < acc.noise_multiplier_for(8.0, DELTA, 200)  # sampling amplifies privacy
    assert acc.noise_multiplier_for(1e6, DELTA, 1) == acc.Z_MIN
    with pytest.raises(PrivacyError, match="rounds must be"):
        acc.noise_multiplier_for(8.0, DELTA, 0)


def test_accountant_history_merges_steps_and_matches_the_function() -> None:
    a = acc.create_accountant("rdp")
    assert a.get_epsilon(DELTA) == 0.0 and len(a) == 0
    for _ in range(7):
        a.step(2.0)
    a.step(2.0, rounds=3)
    assert a.history == [(2.0, 1.0, 10)] and len(a) == 10
    assert a.get_epsilon(DELTA) == acc.epsilon(2.0, 1.0, 10, DELTA)
    a.step(4.0, 0.5, 2)
    assert a.history[-1] == (4.0, 0.5, 2)
    assert a.get_epsilon(DELTA) > acc.epsilon(2.0, 1.0, 10, DELTA)


def test_micro_epsilon_never_understates() -> None:
    for eps in (0.0, 0.5, 1.2345678901, 7.999999, 8.0000001, 123.456):
        micro = acc.micro_epsilon(eps)
        assert Fraction(eps) * acc.MICRO <= micro < Fraction(eps) * acc.MICRO + 1
    assert acc.micro_epsilon(0.5) == 500_000  # exact in binary, so no rounding
    assert acc.micro_epsilon(0.1) == 100_001  # 0.1 in binary is a hair above 1/10
    assert acc.epsilon_from_micro(acc.micro_epsilon(2.5)) == 2.5
    with pytest.raises(PrivacyError):
        acc.micro_epsilon(-1.0)
    with pytest.raises(PrivacyError):
        acc.epsilon_from_micro(-1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise_multiplier": 0.0}, "noise multiplier"),
        ({"noise_multiplier": -1.0}, "noise multiplier"),
        ({"noise_multiplier": math.nan}, "noise multiplier"),
        ({"sampling_rate": 0.0}, "sampling rate"),
        ({"sampling_rate": 1.5}, "sampling rate"),
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"delta": math.nan}, "delta"),
        ({"rounds": -1}, "rounds"),
        ({"rounds": 2.5}, "rounds"),
    ],
)
def test_bad_input_is_refused(kwargs: dict[str, float], match: str) -> None:
    args: dict[str, float] = {"noise_multiplier": 1.0, "sampling_rate": 1.0, "rounds": 3, "delta": DELTA}
    args.update(kwargs)
    with pytest.raises(PrivacyError, match=match):
        acc.epsilon(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("budget", [0.0, -1.0, math.nan, math.inf])
def test_bad_budget_is_refused(budget: float) -> None:
    with pytest.raises(PrivacyError, match="epsilon"):
        acc.rounds_affordable(budget, DELTA, 1.0)
    with pytest.raises(PrivacyError, match="epsilon"):
        acc.noise_multiplier_for(budget, DELTA, 10)


def test_orders_the_rdp_accountant_drops_are_not_printed(caplog: pytest.LogCaptureFixture) -> None:
    # q = 0.1, z = 1: dp-accounting cannot evaluate the smallest orders and warns once per order
    # per evaluation; ε from the remaining orders is still an upper bound
    absl = logging.getLogger("absl")
    (dropped,) = [f for f in absl.filters if isinstance(f, acc._DroppedOrders)]
    with caplog.at_level(logging.WARNING):
        absl.removeFilter(dropped)
        try:
            unfiltered = acc.epsilon(1.0, 0.1, 100, DELTA, "rdp")
        finally:
            absl.addFilter(dropped)
        assert [r for r in caplog.records if "converge" in r.getMessage()]  # the case does warn
        caplog.clear()
        eps = acc.epsilon(1.0, 0.1, 100, DELTA, "rdp")
    assert eps == unfiltered and math.isfinite(eps) and eps > 0
    assert not [r for r in caplog.records if "converge" in r.getMessage()]
