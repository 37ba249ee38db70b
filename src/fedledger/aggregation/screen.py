"""Which updates a robust rule flags, and the aggregate-screen-reaggregate pattern.

A flag slashes stake on chain, so the tests are ones a validator can justify to an
auditor with exact integers, relative to the rule's own robust aggregate of the round:

- an empty update (the global model resubmitted: free riding), provable from the blob;
- a copy of an update committed earlier (a Sybil or a free rider copying), provable;
- an update pointing away from the robust aggregate (cosine below `min_cosine`), if it
  is at least half the round's median norm: a tiny update from a trainer with little
  data is noisy in direction and harmless in effect, and must not cost its stake;
- an update far longer than the round's typical one (norm above `max_norm_ratio` times
  the lower median norm), the signature of scaling and model-replacement attacks.

Every rule screens against the same reference, the coordinate-wise median of the round's
updates: the most robust statistic the rules share, and one a single attacker cannot
steer (Krum's one selected update would make every honest update at an angle to it look
suspect). The thresholds are spec fields; docs/design.md records how their defaults
were measured to flag no honest trainer on non-IID MNIST.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from fedledger.aggregation.base import RoundAggregate, Update, apply_delta
from fedledger.aggregation.stats import (
    apply_delta_or_keep,
    coordinate_median,
    lower_median,
    model_dot,
    squared_norm,
)

Delta = dict[str, np.ndarray]
#: A rule's core: (updates) -> (aggregate delta, trainers whose updates it used).
Combine = Callable[[Sequence[Update]], tuple[Delta, tuple[str, ...]]]


@dataclass(frozen=True)
class Screen:
    """Flagging thresholds; a threshold of None turns its test off."""

    min_cosine: Fraction | None = Fraction(0)
    max_norm_ratio: Fraction | None = Fraction(8)
    #: The cosine test applies only to updates at least this long relative to the median.
    cosine_min_norm_ratio: Fraction = Fraction(1, 2)


def _fingerprint(delta: Mapping[str, np.ndarray]) -> bytes:
    h = hashlib.sha256()
    for name in sorted(delta):
        arr = np.ascontiguousarray(delta[name], dtype="<i8")
        h.update(name.encode() + b"\0" + str(arr.shape).encode() + b"\0" + arr.tobytes())
    return h.digest()


def _cosine_below(dot: int, na2: int, nb2: int, bound: Fraction) -> bool:
    """Exactly: dot / sqrt(na2 * nb2) < bound, with na2, nb2 > 0."""
    p, q = bound.numerator, bound.denominator
    lhs = dot * q  # compare dot*q with p*sqrt(na2*nb2), signs first, then squares
    if lhs < 0 <= p:
        return True
    if lhs >= 0 > p:
        return False
    if lhs >= 0:  # both sides >= 0
        return lhs * lhs < p * p * na2 * nb2
    return lhs * lhs > p * p * na2 * nb2  # both negative: the larger magnitude is smaller


def screen_updates(
    updates: Sequence[Update], reference: Mapping[str, np.ndarray], screen: Screen
) -> dict[str, str]:
    """trainer -> reason for every update `screen` flags against the robust `reference`."""
    flagged: dict[str, str] = {}
    first_seen: dict[bytes, Update] = {}
    for u in sorted(updates, key=lambda u: (u.order, int(u.trainer, 16))):
        fp = _fingerprint(u.delta)
        earlier = first_seen.setdefault(fp, u)
        if earlier is not u:
            flagged[u.trainer] = f"identical to the update {earlier.trainer} committed earlier"
    norms2 = {u.trainer: squared_norm(u.delta) for u in updates}
    for u in updates:
        if norms2[u.trainer] == 0 and u.trainer not in flagged:
            flagged[u.trainer] = "empty update: the global model resubmitted"
    ref2 = squared_norm(reference)
    typical2 = lower_median(list(norms2.values()))
    if screen.min_cosine is not None and ref2 > 0:
        k = screen.cosine_min_norm_ratio
        for u in updates:
            n2 = norms2[u.trainer]
            # skip empty updates and those shorter than k * median: n2 * q^2 < p^2 * typical2
            if u.trainer in flagged or n2 == 0 or n2 * k.denominator**2 < k.numerator**2 * typical2:
                continue
            d = model_dot(u.delta, reference)
            if _cosine_below(d, n2, ref2, screen.min_cosine):
                cos = d / math.sqrt(n2 * ref2)
                flagged[u.trainer] = (
                    f"points away from the robust aggregate: cosine {cos:.3f} < {float(screen.min_cosine):g}"
                )
    if screen.max_norm_ratio is not None:
        r = screen.max_norm_ratio
        for u in updates:
            n2 = norms2[u.trainer]
            if u.trainer in flagged or typical2 == 0:
                continue
            # norm > r * typical  <=>  n2 * q^2 > p^2 * typical2   (all non-negative)
            if n2 * r.denominator**2 > r.numerator**2 * typical2:
                ratio = math.sqrt(n2 / typical2)
                flagged[u.trainer] = f"norm {ratio:.1f}x the round's median norm (bound {float(r):g}x)"
    return flagged


def aggregate_screened(
    global_model: Mapping[str, np.ndarray],
    ordered: Sequence[Update],
    screen: Screen | None,
    combine: Combine,
) -> RoundAggregate:
    """Flag against the coordinate-wise median, then aggregate the unflagged with the rule.

    A robust rule tolerates outliers, but it is better still without them. Everything
    flagged leaves the model unchanged (and the chain fails the round for too few
    accepted updates).
    """
    flagged: dict[str, str] = {}
    if screen is not None:
        flagged = screen_updates(ordered, coordinate_median([u.delta for u in ordered]), screen)
    kept = [u for u in ordered if u.trainer not in flagged]
    if not kept:
        return RoundAggregate(model=apply_delta_or_keep(global_model, None), used=(), flagged=flagged)
    delta, used = combine(kept)
    return RoundAggregate(model=apply_delta(global_model, delta), used=used, flagged=flagged)
