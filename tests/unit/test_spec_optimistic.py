"""The spec refuses an optimistic job whose rounds one chunk could not prove, each in one line."""

from __future__ import annotations

import pytest

from fedledger.errors import SpecError
from fedledger.sim.faults import Fault
from fedledger.sim.setup import check_targets
from fedledger.spec import JobSpec


def spec(**fields: object) -> JobSpec:
    return JobSpec.from_dict({"verification": "optimistic", **fields})


def test_the_default_job_runs_optimistic_with_its_terms() -> None:
    s = spec(challenge_bounty=0.25)
    assert s.optimistic and s.bounty_bps == 2_500 and s.effective_quorum == 7


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"aggregation": "krum"}, "the rule must be chunk-local"),
        ({"aggregation": "clipped_fedavg"}, "needs a fixed clip_norm"),
        ({"privacy": "secagg"}, "privacy=secagg"),
        ({"dp_epsilon": 5.0}, "differential privacy at organisation level"),
        ({"scoring": "loo"}, "contribution scoring"),
        ({"validators_per_round": 5}, "validators_per_round"),
        ({"trainers": 5}, "an escalated round is decided by 4 votes"),
        ({"challenge_window_s": 4000}, "must fit in aggregate_window_s"),
        (
            {"readers": [{"address": "0x" + "11" * 20, "key": "0x" + "22" * 32}]},
            "readers \\(sealed updates",
        ),
    ],
)
def test_what_optimistic_mode_cannot_prove_is_refused(fields: dict[str, object], why: str) -> None:
    with pytest.raises(SpecError, match=why):
        spec(**fields)


def test_a_clipped_job_with_a_fixed_bound_is_accepted() -> None:
    s = spec(aggregation="clipped_fedavg", clip_norm=0.5, scale_bits=20)
    assert s.clip_norm_q == 1 << 19


def test_the_lying_proposer_fault_needs_optimistic_mode_and_the_lying_validator_quorum_mode() -> None:
    with pytest.raises(SpecError, match="lying-proposer needs verification=optimistic"):
        check_targets(JobSpec(), [Fault("lying-proposer", 1)])
    with pytest.raises(SpecError, match="lying-validator needs verification=quorum"):
        check_targets(spec(), [Fault("lying-validator", 1)])
    check_targets(spec(), [Fault("lying-proposer", 1)])
