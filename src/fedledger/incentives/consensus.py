"""Score consensus and the reward split, exactly as the coordinator computes them.

The contract settles a scored round from the scores the quorum's validators posted: per
committer the stake-weighted lower median, a fee for validators whose every score is
within the tolerance of it, and the trainers' reward split by consensus score with floor
rounding. These are the same integer steps in Python, so the auditor (and anyone) can
re-derive every payout from the event log and compare it with the chain's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def weighted_lower_median(values: Sequence[int], weights: Sequence[int]) -> int:
    """The least value v with 2 * (weight of values <= v) >= total weight.

    A minority of weight can move it no further than the majority's own range: the
    contract's reason for taking it. Equal weights give the ordinary lower median.
    """
    if not values:
        raise ValueError("no values")
    total = sum(weights)
    for v in sorted(set(values)):
        if 2 * sum(w for x, w in zip(values, weights, strict=True) if x <= v) >= total:
            return v
    raise AssertionError("unreachable: the largest value always holds all the weight")


@dataclass(frozen=True)
class ScoreSettlement:
    consensus: list[int]  # one per committer, in commit order
    total: int  # the round's accepted weight
    near: list[bool]  # per voter: every score within tolerance of consensus
    fee_each: int  # what each near voter is credited


def settle_scores(
    posted: Sequence[Sequence[int]], stakes: Sequence[int], *, tolerance: int, fee: int
) -> ScoreSettlement:
    """`posted[i]` are voter i's scores in commit order; `stakes[i]` its stake at finalisation.

    With no stake at all, each voter weighs one (as on chain).
    """
    weights = list(stakes) if sum(stakes) > 0 else [1] * len(stakes)
    n = len(posted[0]) if posted else 0
    consensus = [weighted_lower_median([p[k] for p in posted], weights) for k in range(n)]
    near = [all(abs(p[k] - consensus[k]) <= tolerance for k in range(n)) for p in posted]
    agreeing = sum(near)
    fee_each = fee // agreeing if agreeing else 0
    return ScoreSettlement(consensus, sum(consensus), near, fee_each)


def split_reward(reward: int, weights: Sequence[int]) -> list[int]:
    """Each trainer's share: floor(reward * weight / total); nothing if the total is 0."""
    total = sum(weights)
    return [reward * w // total if total else 0 for w in weights]
