"""The spec's checks for robust rules and penalties: refused up front, not mid-job."""

from __future__ import annotations

import pytest

from fedledger.errors import SpecError
from fedledger.roles.validator import rule_for
from fedledger.spec import JobSpec


def test_krum_needs_2f_plus_3_trainers() -> None:
    with pytest.raises(SpecError, match=r"krum with byzantine=2 needs n >= 2f\+3 = 7 updates a round"):
        JobSpec.from_dict({"aggregation": "krum", "trainers": 6})
    assert JobSpec.from_dict({"aggregation": "krum", "trainers": 7}).rule_min_updates == 7
    with pytest.raises(SpecError, match="multikrum with byzantine=3 needs"):
        JobSpec.from_dict({"aggregation": "multikrum", "trainers": 8, "byzantine": 3})


def test_krum_raises_the_automatic_min_commits_and_refuses_an_explicit_lower_one() -> None:
    spec = JobSpec.from_dict({"aggregation": "krum", "trainers": 10})
    assert spec.effective_min_commits == 7  # not half of 10: a round must carry n >= 2f+3
    assert JobSpec.from_dict({"aggregation": "median", "trainers": 10}).effective_min_commits == 5
    with pytest.raises(SpecError, match="min_commits=5 would let rounds finalise with fewer"):
        JobSpec.from_dict({"aggregation": "krum", "trainers": 10, "min_commits": 5})


def test_penalty_fields() -> None:
    assert JobSpec().slash_bps == 1_000
    assert JobSpec.from_dict({"slash_fraction": 0.0001}).slash_bps == 1
    with pytest.raises(SpecError, match="slash_fraction"):
        JobSpec.from_dict({"slash_fraction": 1.5})
    with pytest.raises(SpecError, match="trim_fraction"):
        JobSpec.from_dict({"trim_fraction": 0.5})
    with pytest.raises(SpecError, match="krum_keep"):
        JobSpec.from_dict({"aggregation": "multikrum", "krum_keep": 11})


@pytest.mark.parametrize(
    "name", ["fedavg", "median", "trimmed_mean", "krum", "multikrum", "clipped_fedavg", "fltrust"]
)
def test_every_rule_in_the_spec_resolves(name: str) -> None:
    rule = rule_for(JobSpec.from_dict({"aggregation": name}), root_trainer="0x" + "11" * 20)
    assert rule.name == name


def test_rule_parameters_come_from_the_spec() -> None:
    spec = JobSpec.from_dict(
        {"aggregation": "multikrum", "byzantine": 3, "krum_keep": 4, "trainers": 12, "flag_norm_ratio": 0}
    )
    rule = rule_for(spec)
    assert (rule.byzantine, rule.keep, rule.min_updates) == (3, 4, 9)  # type: ignore[attr-defined]
    assert rule.screen.max_norm_ratio is None  # type: ignore[attr-defined]
    clipped = rule_for(
        JobSpec.from_dict({"aggregation": "clipped_fedavg", "clip_norm": 0.5, "scale_bits": 20})
    )
    assert clipped.clip_norm_q == 2**19  # type: ignore[attr-defined]


def test_a_cross_field_refusal_reads_as_the_validator_wrote_it() -> None:
    with pytest.raises(SpecError) as info:
        JobSpec.from_dict({"aggregation": "krum", "trainers": 4})
    assert "krum with byzantine=2 needs" in str(info.value) and "Value error" not in str(info.value)
