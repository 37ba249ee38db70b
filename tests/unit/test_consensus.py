"""Score consensus and quantisation: the contract's integer steps, in Python."""

from __future__ import annotations

import math

import pytest

from fedledger.chain.contracts import SCORE_ONE
from fedledger.incentives.consensus import settle_scores, split_reward, weighted_lower_median
from fedledger.roles.scorer import quantize_scores, scores_in_commit_order


def test_weighted_lower_median():
    assert weighted_lower_median([5, 1, 9], [1, 1, 1]) == 5
    assert weighted_lower_median([5, 1, 9, 7], [1, 1, 1, 1]) == 5  # lower of the two middles
    assert weighted_lower_median([5, 1, 9], [0, 1, 1]) == 1  # no stake, no say
    assert weighted_lower_median([5, 1, 9], [1, 1, 5]) == 9  # a stake majority decides
    with pytest.raises(ValueError):
        weighted_lower_median([], [])


def test_a_minority_stays_inside_the_majoritys_range():
    honest = [[4_000, 7_000], [4_100, 6_900], [3_950, 7_050]]
    liars = [[SCORE_ONE, 0], [SCORE_ONE, 0]]
    s = settle_scores(honest + liars, [1] * 5, tolerance=200, fee=1_000)
    assert 3_950 <= s.consensus[0] <= 4_100 and 6_900 <= s.consensus[1] <= 7_050
    assert s.near == [True, True, True, False, False] and s.fee_each == 333


def test_no_stake_means_one_vote_each_and_zero_total_pays_nobody():
    s = settle_scores([[0, 0], [0, 0]], [0, 0], tolerance=0, fee=10)
    assert (s.consensus, s.total, s.fee_each) == ([0, 0], 0, 5)
    assert split_reward(900, [0, 0]) == [0, 0]
    assert split_reward(1_000, [1, 2]) == [333, 666]


def test_quantize_scores_relative_to_the_best_half_up():
    assert quantize_scores([0.5, 1.0, -0.2, 0.0, 0.33335]) == [5_000, SCORE_ONE, 0, 0, 3_334]
    assert quantize_scores([-1.0, 0.0]) == [0, 0]
    assert quantize_scores([math.nan, 2.0]) == [0, SCORE_ONE]


def test_scores_follow_commit_order_and_excluded_score_zero():
    commits = [("0xB", 5, 1), ("0xA", 5, 0), ("0xC", 4, 7)]
    assert scores_in_commit_order(commits, {"0xa": 10, "0xc": 30}) == [30, 10, 0]
