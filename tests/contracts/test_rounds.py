"""rounds.vy alone: the phase machine with the modules it uses, a stub sampler and no tokens.

The coordinator tests drive rounds through commits and proposals; here a job's state is set
directly, so the failure counter, the abort, the key directory's closing, and where a
finalised round's tokens go are each checked on their own.
"""

from __future__ import annotations

import boa
import pytest
from module_harness import load

OPEN, AGGREGATING, DONE, ABORTED = 1, 2, 3, 4
FINALIZED, FAILED = 1, 2
MODEL0 = b"\x01" * 32
CONFIG = dict(
    sponsor="0x" + "00" * 19 + "01",
    token="0x" + "00" * 19 + "02",
    spec_hash=b"\x03" * 32,
    initial_model=MODEL0,
    rounds=3,
    min_commits=2,
    quorum=1,
    commit_window=100,
    aggregate_window=50,
    max_failures=1,
    stake=1_000,
    reward_per_round=900,
    slash_bps=3_000,
    max_flags=2,
    scored=False,
    validator_fee_bps=0,
    score_tolerance=0,
    min_reputation=0,
    use_allowlist=False,
    clients_per_round=0,
    validators_per_round=0,
    committee_size=0,
)


def config(**overrides: object) -> tuple[object, ...]:
    return tuple({**CONFIG, **overrides}.values())


@pytest.fixture
def sampler():
    return load("sampler_stub")


@pytest.fixture
def rounds(sampler):
    return load("rounds_harness", sampler.address)


def state(rounds) -> tuple[int, int, int, int]:
    """(phase, round, commits, version) of job 1."""
    job = rounds.job_state(1)
    return job[0], job[1], job[3], job[6]


def test_each_round_that_opens_asks_the_sampler_to_draw_from_the_current_model(rounds, sampler) -> None:
    rounds.start(1, config(), 2_700, MODEL0)
    assert state(rounds) == (OPEN, 1, 0, 0)
    assert (sampler.draws(), sampler.last_round(), sampler.last_model()) == (1, 1, MODEL0)
    rounds.fail(1, "too few commits")
    assert state(rounds) == (OPEN, 2, 0, 0)
    assert (sampler.draws(), sampler.last_round()) == (2, 2)


def test_more_than_max_failures_in_a_row_abort_the_job_and_a_finalised_round_resets_the_count(
    rounds, sampler
) -> None:
    trainers = [boa.env.generate_address() for _ in range(2)]
    rounds.start(1, config(max_failures=1), 2_700, MODEL0)
    for t in trainers:
        rounds.join(1, t, 1_000)
    rounds.fail(1, "no quorum")  # one failure: round 2 opens
    for t in trainers:
        rounds.commit(1, t, 10)
    rounds.close(1)
    rounds.finalize(1, b"\x05" * 32, [], 0)  # round 2 finalised: the count starts again
    assert state(rounds) == (OPEN, 3, 0, 1)
    rounds.fail(1, "no quorum")  # one failure after the reset: round 4 opens
    assert state(rounds) == (OPEN, 4, 0, 1)
    draws = sampler.draws()
    rounds.fail(1, "no quorum")  # two in a row: abort, no round opens
    assert state(rounds)[0] == ABORTED
    assert sampler.draws() == draws
    assert rounds.round_result(1, 4)[0][0] == FAILED
    assert rounds.global_model(1) == b"\x05" * 32


def test_a_failed_round_closes_the_key_directory_only_if_it_had_commits_before_any_version(rounds) -> None:
    trainers = [boa.env.generate_address() for _ in range(2)]
    rounds.start(1, config(max_failures=5), 2_700, MODEL0)
    for t in trainers:
        rounds.join(1, t, 1_000)
    rounds.fail(1, "too few commits")  # nobody committed: nothing was masked
    assert rounds.keys_used(1) is False
    rounds.commit(1, trainers[0], 10)
    rounds.fail(1, "too few commits")  # a commit was masked against the directory
    assert rounds.keys_used(1) is True


def test_advance_moves_only_expired_phases(rounds) -> None:
    trainers = [boa.env.generate_address() for _ in range(2)]
    rounds.start(1, config(max_failures=5), 2_700, MODEL0)
    for t in trainers:
        rounds.join(1, t, 1_000)
        rounds.commit(1, t, 10)
    with boa.reverts("coordinator: phase not expired"):
        rounds.advance(1)
    boa.env.time_travel(seconds=101)
    rounds.advance(1)  # enough commits: aggregation
    assert state(rounds)[:3] == (AGGREGATING, 1, 2)
    boa.env.time_travel(seconds=51)
    rounds.advance(1)  # no quorum in time: the round fails, the next opens
    assert state(rounds)[:2] == (OPEN, 2)
    assert rounds.round_result(1, 1)[0][0] == FAILED
    boa.env.time_travel(seconds=101)
    rounds.advance(1)  # no commits: the round fails again
    assert state(rounds)[:2] == (OPEN, 3)


def test_a_flagged_update_is_slashed_into_the_pool_even_if_the_round_then_fails(rounds) -> None:
    trainers = sorted((boa.env.generate_address() for _ in range(3)), key=lambda a: int(a, 16))
    rounds.start(1, config(), 2_700, MODEL0)
    for t in trainers:
        rounds.join(1, t, 1_000)
        rounds.commit(1, t, 10 * (1 + trainers.index(t)))
    rounds.close(1)
    # the quorum leaves out trainers[0] (flagged) and trainers[2] (not flagged)
    rounds.finalize(1, b"\x07" * 32, [trainers[0], trainers[2]], 0b01)
    result, aggregate = rounds.round_result(1, 1)
    # one update accepted, below min_commits: the round fails, but the slash stands
    assert result[0] == FAILED and aggregate == b"\x00" * 32
    assert rounds.stake_of(1, trainers[0]) == 700
    assert rounds.stake_of(1, trainers[2]) == 1_000
    assert rounds.pool(1) == 2_700 + 300


def test_a_finalised_round_pays_its_reward_out_of_the_pool_and_ejects_at_max_flags(rounds) -> None:
    trainers = sorted((boa.env.generate_address() for _ in range(3)), key=lambda a: int(a, 16))
    rounds.start(1, config(max_flags=1, rounds=1), 2_700, MODEL0)
    for t in trainers:
        rounds.join(1, t, 1_000)
        rounds.commit(1, t, 10)
    rounds.close(1)
    rounds.finalize(1, b"\x07" * 32, [trainers[1]], 0b1)
    result, aggregate = rounds.round_result(1, 1)
    # (status, accepted_commits, accepted_weight, reward, scored)
    assert tuple(result) == (FINALIZED, 2, 20, 900, False)
    assert aggregate == b"\x07" * 32
    assert rounds.pool(1) == 2_700 - 900 + 300
    ejected = rounds.trainer_state(1, trainers[1])
    assert (ejected[0], ejected[7], ejected[10]) == (False, 1, True)  # registered, flags, ejected
    phase, _, _, version = state(rounds)
    assert (phase, version) == (DONE, 1)
    assert rounds.job_state(1)[4] == 2  # trainers still registered
