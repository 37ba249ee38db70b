"""One challenged coordinate in Python ints, computed exactly as contracts/disputes.vy computes it.

A challenge names one coordinate of the disputed chunk (the first wrong one `chunk.check_chunk`
finds): a chunk is wrong exactly when one of its values is, and recomputing one value costs the
contract O(n) for n trainers where a whole chunk would cost O(512 n), or O(512 n log n) sorting
for the median. Every byte of every input chunk is still Merkle-checked, so the proof is the
same size; only the arithmetic shrinks.

The order-statistic rules are checked, not recomputed: sorting n values on chain is O(n^2) gas,
so the challenger supplies two witnesses, `low` = s[k] and `high` = s[n-1-k] of the sorted
values s, and the contract counts values below and up to each. A witness is right iff
count(< w) <= position < count(<= w), which one pass checks. Then the kept sum is

    sum of values strictly between low and high + (count(<= low) - k) * low + (n - k - count(< high)) * high

(or (n - 2k) * low when low == high), and the result is that sum over n - 2k, halves rounded up.
The median is the trimmed mean with k = (n - 1) // 2: for an even n that is lo + (hi - lo + 1) // 2,
the same integer `stats.coordinate_median` takes, so one mechanism serves both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fedledger.aggregation.chunk import ChunkRule
from fedledger.errors import InvalidUpdate

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: rule ids in a claim, as disputes.vy numbers them
RULE_IDS = {"fedavg": 1, "clipped_fedavg": 2, "median": 3, "trimmed_mean": 4}


def trim_count(rule: ChunkRule, n: int) -> int:
    """Values dropped at each end: (n - 1) // 2 for the median, floor(beta * n) for the trimmed mean."""
    if rule.name == "median":
        return (n - 1) // 2
    if rule.name == "trimmed_mean":
        return n * rule.trim_fraction.numerator // rule.trim_fraction.denominator
    return 0


def div_half_up(acc: int, total: int) -> int:
    """acc / total to the nearest integer, halves up, for total > 0 (`stats.div_half_up` on one int)."""
    quotient, remainder = divmod(acc, total)  # floor division: remainder in [0, total)
    return quotient + (1 if remainder >= total - remainder else 0)


def witnesses(rule: ChunkRule, values: Sequence[int]) -> tuple[int, int]:
    """The (low, high) a challenger supplies: s[k] and s[n-1-k]; (0, 0) for the weighted rules."""
    if rule.name not in ("median", "trimmed_mean"):
        return 0, 0
    s = sorted(int(v) for v in values)
    k = trim_count(rule, len(s))
    return s[k], s[len(s) - 1 - k]


@dataclass
class Counts:
    """What one pass over the values keeps for the order-statistic check (the contract's tally)."""

    below_low: int = 0
    upto_low: int = 0
    below_high: int = 0
    upto_high: int = 0
    between_sum: int = 0

    def add(self, v: int, low: int, high: int) -> None:
        self.below_low += v < low
        self.upto_low += v <= low
        self.below_high += v < high
        self.upto_high += v <= high
        if low < v < high:
            self.between_sum += v


def ordered_value(n: int, k: int, low: int, high: int, counts: Counts) -> int:
    """The trimmed mean from verified witnesses; InvalidUpdate when they are not s[k], s[n-1-k]."""
    if not (
        low <= high
        and counts.below_low <= k < counts.upto_low
        and counts.below_high <= n - 1 - k < counts.upto_high
    ):
        raise InvalidUpdate("disputes: witnesses are not the order statistics")
    kept = n - 2 * k
    if low == high:
        total = kept * low
    else:
        total = counts.between_sum + (counts.upto_low - k) * low + (n - k - counts.below_high) * high
    return div_half_up(total, kept)


def clip_value(value: int, squared_norm: int, bound: int) -> int:
    """One coordinate of an update clipped to `bound`, given the whole update's squared norm."""
    norm = math.isqrt(squared_norm)
    return value if norm <= bound else div_half_up(value * bound, norm)


def coordinate_delta(
    rule: ChunkRule,
    values: Sequence[int],
    weights: Sequence[int],
    squared_norms: Sequence[int],
    low: int = 0,
    high: int = 0,
) -> int:
    """The aggregate delta at one coordinate, from every accepted update's value there."""
    n = len(values)
    if rule.name in ("fedavg", "clipped_fedavg"):
        if rule.name == "clipped_fedavg":
            values = [clip_value(v, s, rule.clip_norm_q) for v, s in zip(values, squared_norms, strict=True)]
        total = sum(weights)
        if total == 0:
            raise InvalidUpdate("disputes: weights sum to 0")
        return div_half_up(sum(w * v for w, v in zip(weights, values, strict=True)), total)
    counts = Counts()
    for v in values:
        counts.add(int(v), low, high)
    return ordered_value(n, trim_count(rule, n), low, high, counts)


def proves_fraud(previous: int, proposed: int, delta: int) -> bool:
    """True iff the proposed model value is not previous + delta (an out-of-int64 sum never is)."""
    return previous + delta != proposed
