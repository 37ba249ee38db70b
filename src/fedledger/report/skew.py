"""Contribution skew: which organisations' contributions or flags diverge from the rest.

The statistic (written into every report, so a reader can recompute it):

- per organisation, its *mean contribution*: over the finalised rounds it committed to, the
  mean of its per-round contribution — the round's settled consensus score (ScoresSettled,
  as a share of 1) where the job is scored, else its share of the round's accepted examples
  (its FedAvg weight); a round in which it was excluded counts 0;
- per organisation, its *flag count*: TrainerSlashed events against it (one per flag);
- each turned into a robust z-score, z = 0.6745 · (x − median) / MAD (Iglewicz and Hoaglin's
  modified z-score), with MAD the median absolute deviation from the median. Where MAD is 0
  (most organisations equal), 1.2533 · mean absolute deviation stands in for it; where that is
  0 too, every value equals the median and no one diverges;
- an organisation *diverges* when |z| > 3.5 on either, the threshold Iglewicz and Hoaglin
  recommend, or — for flags, where most honest organisations have none — when it has any
  flag while the median organisation has none.

Medians, not means: one outlier cannot hide itself by moving the centre it is compared with.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

THRESHOLD = 3.5
_K = 0.6745  # the 0.75 quantile of the standard normal: makes MAD estimate σ
_MEAN_AD = 1.2533  # √(π/2): makes the mean absolute deviation estimate σ

STATISTIC = (
    "robust (modified) z-score z = 0.6745·(x − median)/MAD of each organisation's mean per-round "
    "contribution (settled consensus score where the job is scored, else its share of the round's "
    "accepted examples; 0 where excluded) and of its flag count (TrainerSlashed events); "
    "MAD falls back to 1.2533·mean absolute deviation when it is 0; an organisation diverges "
    f"when |z| > {THRESHOLD} on either, or has flags while the median organisation has none"
)


def robust_z(values: Sequence[float]) -> list[float]:
    """Modified z-scores of `values` (see the module docstring); all 0 when they are equal."""
    if not values:
        return []
    med = statistics.median(values)
    deviations = [abs(v - med) for v in values]
    scale = statistics.median(deviations) / _K
    if scale == 0:
        scale = _MEAN_AD * statistics.fmean(deviations)
    if scale == 0:
        return [0.0] * len(values)
    return [(v - med) / scale for v in values]


def contribution_skew(
    contributions: Mapping[str, Sequence[float]], flags: Mapping[str, int]
) -> dict[str, Any]:
    """The skew section: the statistic in words and, per organisation, its numbers and verdict.

    `contributions`: organisation -> its per-round contributions (rounds it committed to);
    `flags`: organisation -> flags against it. Organisations that never committed have no mean
    and are listed without a contribution z-score.
    """
    orgs = sorted(set(contributions) | set(flags))
    means = {o: statistics.fmean(contributions[o]) for o in orgs if contributions.get(o)}
    mean_z = dict(zip(means, robust_z(list(means.values())), strict=True))
    counts = [float(flags.get(o, 0)) for o in orgs]
    flag_z = dict(zip(orgs, robust_z(counts), strict=True))
    median_flags = statistics.median(counts) if counts else 0.0
    rows = []
    for o in orgs:
        why = []
        z = mean_z.get(o)
        if z is not None and abs(z) > THRESHOLD:
            why.append(f"contribution z = {z:+.2f} ({'above' if z > 0 else 'below'} the rest)")
        n = flags.get(o, 0)
        if abs(flag_z[o]) > THRESHOLD or (n > 0 and median_flags == 0):
            why.append(f"{n} flag{'s' if n != 1 else ''} (median {median_flags:g}, z = {flag_z[o]:+.2f})")
        rows.append(
            {
                "organisation": o,
                "rounds": len(contributions.get(o, ())),
                "mean_contribution": means.get(o),
                "contribution_z": z,
                "flags": n,
                "flags_z": flag_z[o],
                "diverges": bool(why),
                "why": "; ".join(why),
            }
        )
    return {
        "statistic": STATISTIC,
        "threshold": THRESHOLD,
        "median_mean_contribution": statistics.median(means.values()) if means else None,
        "median_flags": median_flags,
        "organisations": rows,
        "diverging": [r["organisation"] for r in rows if r["diverges"]],
    }
