"""The spec check for private jobs: what secure aggregation and differential privacy refuse, in one line."""

from __future__ import annotations

import pytest

from fedledger.errors import SpecError
from fedledger.spec import JobSpec


@pytest.mark.parametrize("rule", ["median", "trimmed_mean", "krum", "multikrum", "fltrust"])
def test_secagg_refuses_rules_that_need_individual_updates(rule: str) -> None:
    with pytest.raises(SpecError, match=f"privacy=secagg hides individual updates, which {rule} needs"):
        JobSpec.from_dict({"privacy": "secagg", "aggregation": rule, "trainers": 10, "byzantine": 1})


def test_secagg_accepts_fedavg_and_fixed_clipping_only() -> None:
    assert JobSpec.from_dict({"privacy": "secagg"}).secure
    assert JobSpec.from_dict({"privacy": "secagg", "aggregation": "clipped_fedavg", "clip_norm": 1.0}).secure
    with pytest.raises(SpecError, match="needs a fixed clip_norm > 0"):
        JobSpec.from_dict({"privacy": "secagg", "aggregation": "clipped_fedavg"})
    with pytest.raises(SpecError, match="scoring needs"):
        JobSpec.from_dict({"privacy": "secagg", "scoring": "gtg"})
    with pytest.raises(SpecError, match="at least 2 trainers"):
        JobSpec.from_dict({"privacy": "secagg", "trainers": 1, "min_commits": 1})
    with pytest.raises(SpecError, match="secagg_threshold"):
        JobSpec.from_dict({"privacy": "secagg", "secagg_threshold": 1.0})


def test_dp_calibrates_its_noise_or_refuses_the_rounds() -> None:
    spec = JobSpec.from_dict({"dp_epsilon": 8.0, "rounds": 20})
    assert spec.dp and 2.5 < spec.noise_multiplier < 3.2  # RDP: ~2.85 for 20 rounds at δ = 1e-5
    assert spec.dp_clip_q == 1 << spec.scale_bits
    with pytest.raises(SpecError, match=r"affords \d+ rounds at noise multiplier 1, not 20"):
        JobSpec.from_dict({"dp_epsilon": 2.0, "dp_noise_multiplier": 1.0, "rounds": 20})
    with pytest.raises(SpecError, match="does not combine with contribution scoring"):
        JobSpec.from_dict({"dp_epsilon": 8.0, "scoring": "loo"})
    assert not JobSpec().dp and not JobSpec().secure
