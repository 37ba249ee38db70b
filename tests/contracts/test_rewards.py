"""rewards.vy alone: the stake-weighted median, the validator fee, lazy settlement and reputation.

The coordinator tests reach these through whole rounds; here random committees, stakes and
scores meet a Python statement of the rule, which a round-level test cannot vary as widely.
"""

from __future__ import annotations

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from module_harness import load

SCORE_ONE = 10_000
MASK16 = 2**16 - 1
PROPOSAL = b"\x11" * 32
OTHER = b"\x22" * 32


@pytest.fixture(scope="module")
def rewards():
    return load("rewards_harness")


def lower_weighted_median(values: list[int], weights: list[int]) -> int:
    """The least value whose weight at or below it is at least half the total."""
    total = sum(weights)
    return min(
        v for v in values if 2 * sum(w for x, w in zip(values, weights, strict=True) if x <= v) >= total
    )


def words(scores: list[int]) -> list[int]:
    out = [0] * ((len(scores) + 15) // 16)
    for slot, s in enumerate(scores):
        out[slot // 16] |= s << (16 * (slot % 16))
    return out


committees = st.integers(1, 6).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 5_000), min_size=n, max_size=n),  # stakes
        st.lists(st.booleans(), min_size=n, max_size=n),  # voted for PROPOSAL
    )
)


@settings(max_examples=40, deadline=None)
@given(
    committee=committees,
    commits=st.integers(1, 40),
    tolerance=st.integers(0, 3_000),
    fee=st.integers(0, 10**6),
    data=st.data(),
)
def test_consensus_is_the_stake_weighted_lower_median_and_the_fee_goes_to_those_near_it(
    rewards,
    committee: tuple[list[int], list[bool]],
    commits: int,
    tolerance: int,
    fee: int,
    data: st.DataObject,
) -> None:
    stakes, votes = committee
    votes[0] = True  # a quorum has at least one voter
    members = [boa.env.generate_address() for _ in stakes]
    posted = [
        data.draw(st.lists(st.integers(0, SCORE_ONE), min_size=commits, max_size=commits)) for _ in members
    ]
    with boa.env.anchor():
        rewards.setup(1, 3, PROPOSAL, members, votes, stakes, tolerance, True)
        for m, scores in zip(members, posted, strict=True):
            rewards.post(1, m, words(scores))
        total, paid = rewards.settle_scores(1, 3, commits, PROPOSAL, fee)

        voters = [i for i, v in enumerate(votes) if v]
        weights = [stakes[i] for i in voters]
        if sum(weights) == 0:
            weights = [1] * len(voters)  # all stakes slashed away: one validator, one vote
        medians = [lower_weighted_median([posted[i][s] for i in voters], weights) for s in range(commits)]
        assert [rewards.consensus_score(1, 3, s) for s in range(commits)] == medians
        assert total == sum(medians)

        near = [i for i in voters if all(abs(posted[i][s] - medians[s]) <= tolerance for s in range(commits))]
        each = fee // len(near) if near else 0
        assert paid == each * len(near)
        for i, m in enumerate(members):
            assert rewards.fees_of(1, m) == (each if i in near else 0)


def test_a_minority_of_stake_cannot_move_the_median() -> None:
    """Two honest validators with most of the stake outvote a liar who scores the best update 0."""
    rewards = load("rewards_harness")
    members = [boa.env.generate_address() for _ in range(3)]
    rewards.setup(1, 1, PROPOSAL, members, [True] * 3, [400, 400, 300], 100, True)
    rewards.post(1, members[0], words([6_000, 4_000]))
    rewards.post(1, members[1], words([6_050, 3_990]))
    rewards.post(1, members[2], words([SCORE_ONE, 0]))
    total, paid = rewards.settle_scores(1, 1, 2, PROPOSAL, 900)
    # the median lies within the honest pair's range on both updates, whatever the liar said
    assert [rewards.consensus_score(1, 1, s) for s in range(2)] == [6_050, 3_990]
    assert total == 10_040
    # the liar is far from the consensus: the fee is split between the two honest ones
    assert paid == 900
    assert [rewards.fees_of(1, m) for m in members] == [450, 450, 0]


def test_validators_of_another_proposal_do_not_score() -> None:
    rewards = load("rewards_harness")
    members = [boa.env.generate_address() for _ in range(2)]
    rewards.setup(1, 1, PROPOSAL, members, [True, False], [1, 1_000_000], 0, True)
    rewards.post(1, members[0], words([5_000]))
    rewards.post(1, members[1], words([9_000]))
    assert rewards.settle_scores(1, 1, 1, PROPOSAL, 0) == (5_000, 0)


# trainer word fields (packing.vy)
def trainer_word(
    *,
    last_round: int,
    examples: int = 0,
    slot: int = 0,
    excluded: bool = False,
    settled: bool = False,
    score: int = 0,
    rounds: int = 0,
    flags: int = 0,
) -> int:
    return (
        1
        | (excluded << 1)
        | (settled << 2)
        | (last_round << 3)
        | (examples << 35)
        | (slot << 83)
        | (flags << 191)
        | (score << 207)
        | (rounds << 223)
    )


def round_word(status: int, weight: int = 0, reward: int = 0, scored: bool = False) -> int:
    return status | (weight << 40) | (reward << 104) | (scored << 232)


def field(word: int, at: int, bits: int) -> int:
    return (word >> at) & ((1 << bits) - 1)


def test_a_pending_round_settles_nothing_and_a_failed_one_settles_to_zero(rewards) -> None:
    with boa.env.anchor():
        t = trainer_word(last_round=2, examples=50)
        assert rewards.settled(1, t) == (t, 0)  # no outcome yet
        rewards.set_round(1, 2, round_word(2))  # failed
        assert rewards.settled(1, t) == (t | 4, 0)
        assert rewards.settled(1, t | 4) == (t | 4, 0)  # settled once only


def test_a_finalised_round_pays_by_examples_and_counts_the_round(rewards) -> None:
    with boa.env.anchor():
        rewards.set_round(1, 2, round_word(1, weight=300, reward=10_000))
        word, share = rewards.settled(1, trainer_word(last_round=2, examples=50, rounds=4))
        assert share == 10_000 * 50 // 300
        assert word & 4 and field(word, 223, 16) == 5
        # an excluded update is paid nothing but the round still counts
        word, share = rewards.settled(1, trainer_word(last_round=2, examples=50, excluded=True))
        assert share == 0 and field(word, 223, 16) == 1


def test_a_scored_round_pays_by_consensus_and_moves_the_score_a_quarter_of_the_way(rewards) -> None:
    members = [boa.env.generate_address()]
    with boa.env.anchor():
        rewards.setup(1, 2, PROPOSAL, members, [True], [1], 0, True)
        rewards.post(1, members[0], words([2_000, 8_000]))
        assert rewards.settle_scores(1, 2, 2, PROPOSAL, 0) == (10_000, 0)
        rewards.set_round(1, 2, round_word(1, weight=10_000, reward=5_000, scored=True))
        word, share = rewards.settled(1, trainer_word(last_round=2, slot=1, score=4_000, rounds=3))
        assert share == 5_000 * 8_000 // 10_000
        assert field(word, 207, 16) == (3 * 4_000 + 8_000) // 4
        # a trainer's first scored round takes the consensus score as it is
        word, _ = rewards.settled(1, trainer_word(last_round=2, slot=0))
        assert field(word, 207, 16) == 2_000


def test_reputation_is_the_mean_score_weighted_by_scored_rounds(rewards) -> None:
    account = boa.env.generate_address()
    with boa.env.anchor():
        rewards.setup(1, 1, PROPOSAL, [], [], [], 0, True)
        rewards.setup(2, 1, PROPOSAL, [], [], [], 0, False)
        rewards.fold(1, account, trainer_word(last_round=1, score=9_000, rounds=3, flags=1))
        rewards.fold(1, account, trainer_word(last_round=1, score=5_000, rounds=1))
        # an unscored job adds rounds, flags and a job, not to the score
        rewards.fold(2, account, trainer_word(last_round=1, score=0, rounds=7, flags=2))
        assert rewards.reputation(account) == ((3 * 9_000 + 5_000) // 4, 11, 4, 3, 3)


def test_with_every_stake_slashed_away_each_validator_has_one_vote() -> None:
    rewards = load("rewards_harness")
    members = [boa.env.generate_address() for _ in range(3)]
    rewards.setup(1, 1, PROPOSAL, members, [True] * 3, [0, 0, 0], 0, True)
    for m, score in zip(members, [1_000, 7_000, 9_000], strict=True):
        rewards.post(1, m, words([score]))
    # by stake nobody would weigh anything; by head count the middle score is the median
    assert rewards.settle_scores(1, 1, 1, PROPOSAL, 0) == (7_000, 0)
