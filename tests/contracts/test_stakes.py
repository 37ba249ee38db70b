"""stakes.vy alone: a dissenting validator's slash, capped by what it still holds, goes to the pool.

Slashing moves tokens, it never makes or burns them: whatever the reports, stake plus pool
stays what it was.
"""

from __future__ import annotations

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from module_harness import load

FINALIZED, FAILED = 1, 2
AGREED, DISSENT = b"\xaa" * 32, b"\xdd" * 32


@pytest.fixture(scope="module")
def stakes():
    return load("stakes_harness")


def test_only_a_proposal_outside_a_finalised_quorum_is_slashed(stakes) -> None:
    honest, liar, idle = (boa.env.generate_address() for _ in range(3))
    with boa.env.anchor():
        stakes.setup(1, 2, 1_000, 2_500)
        for v in (honest, liar, idle):
            stakes.deposit(1, v, 1_000)
        stakes.vote(1, 1, honest, AGREED)
        stakes.vote(1, 1, boa.env.generate_address(), AGREED)
        stakes.vote(1, 1, liar, DISSENT)
        with boa.reverts("coordinator: round not finalized"):
            stakes.report_dissent(1, 1, liar)
        stakes.set_round(1, 1, FAILED)
        with boa.reverts("coordinator: round not finalized"):
            stakes.report_dissent(1, 1, liar)
        stakes.set_round(1, 1, FINALIZED)
        with boa.reverts("coordinator: proposal agreed with quorum"):
            stakes.report_dissent(1, 1, honest)
        with boa.reverts("coordinator: no proposal to dispute"):
            stakes.report_dissent(1, 1, idle)
        stakes.report_dissent(1, 1, liar)
        assert (stakes.stake_of(1, liar), stakes.pool(1)) == (750, 250)
        with boa.reverts("coordinator: no proposal to dispute"):
            stakes.report_dissent(1, 1, liar)  # once per validator and round


@settings(max_examples=25, deadline=None)
@given(
    held=st.integers(0, 10**6),
    stake=st.integers(0, 10**6),
    slash_bps=st.integers(0, 10_000),
    rounds=st.integers(1, 6),
)
def test_slashing_is_capped_by_what_is_left_and_conserves_tokens(
    stakes, held: int, stake: int, slash_bps: int, rounds: int
) -> None:
    liar = boa.env.generate_address()
    with boa.env.anchor():
        stakes.setup(1, 2, stake, slash_bps)
        stakes.deposit(1, liar, held)
        left = held
        for r in range(1, rounds + 1):
            stakes.vote(1, r, liar, DISSENT)
            stakes.set_round(1, r, FINALIZED)
            stakes.report_dissent(1, r, liar)
            left -= min(stake * slash_bps // 10_000, left)
            assert stakes.stake_of(1, liar) == left
            assert stakes.stake_of(1, liar) + stakes.pool(1) == held
