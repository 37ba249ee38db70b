"""The contribution-skew statistic: robust z-scores of mean contribution and flag counts."""

from __future__ import annotations

import pytest

from fedledger.report.skew import THRESHOLD, contribution_skew, robust_z


def test_robust_z_is_the_modified_z_score() -> None:
    z = robust_z([1.0, 2.0, 3.0, 4.0, 100.0])
    # median 3, absolute deviations 2 1 0 1 97 -> MAD 1; z = 0.6745 (x - 3) / 1
    assert z == pytest.approx([-1.349, -0.6745, 0.0, 0.6745, 65.4265])


def test_equal_values_have_no_outlier_and_mad_zero_falls_back_to_the_mean_deviation() -> None:
    assert robust_z([0.25, 0.25, 0.25]) == [0.0, 0.0, 0.0]
    z = robust_z([0.0, 0.0, 0.0, 0.0, 4.0])  # MAD 0; mean absolute deviation 0.8
    assert z[-1] == pytest.approx(4.0 / (1.2533 * 0.8))
    assert z[:4] == [0.0] * 4


def test_a_free_rider_and_a_flagged_organisation_diverge_the_rest_do_not() -> None:
    honest = {f"org-{i:02d}": [0.1, 0.11, 0.09] for i in range(1, 9)}
    honest["org-02"] = [0.1, 0.1, 0.1]
    contributions = {**honest, "free-rider": [0.0, 0.0, 0.0]}
    flags = {o: 0 for o in contributions} | {"org-05": 2}
    skew = contribution_skew(contributions, flags)
    assert skew["diverging"] == ["free-rider", "org-05"]
    rows = {r["organisation"]: r for r in skew["organisations"]}
    assert rows["free-rider"]["contribution_z"] < -THRESHOLD
    assert "flag" in rows["org-05"]["why"] and rows["org-05"]["flags"] == 2
    assert "0.6745" in skew["statistic"]


def test_an_organisation_that_never_committed_has_no_mean() -> None:
    skew = contribution_skew({"a": [0.5], "b": [], "c": [0.5]}, {"a": 0, "b": 0, "c": 0})
    row = next(r for r in skew["organisations"] if r["organisation"] == "b")
    assert row["mean_contribution"] is None and row["contribution_z"] is None and not row["diverges"]
