"""Sampling specs outside the simulation: nodes take them and find the sampler; the seat choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.errors import ChainError
from fedledger.roles.node_config import NodeConfig
from fedledger.roles.node_join import check_spec, find_sampler
from fedledger.roles.sampling import RoundSeats, round_seats
from fedledger.spec import JobSpec


def _spec(**overrides: object) -> JobSpec:
    return JobSpec.from_dict({"dataset": "digits", "trainers": 8, **overrides})


def test_a_node_takes_a_sampling_job_and_refuses_a_coordinator_without_a_sampler(tmp_path: Path) -> None:
    spec = _spec(clients_per_round=4)
    config = NodeConfig(
        rpc="http://127.0.0.1:1", coordinator="0x" + "11" * 20, job=1, key="dev:1", spec=tmp_path / "s.json",
        store=str(tmp_path),
    )  # fmt: skip
    check_spec(config, spec, {"spec_hash": spec.spec_hash()})  # no longer refused: nodes enrol and sit

    class Unbound:  # a coordinator whose `_sampler` slot is empty
        address = "0x" + "11" * 20

        def sampler(self) -> None:
            return None

    assert find_sampler(Unbound(), _spec()) is None  # type: ignore[arg-type]  # samples nothing: not asked
    with pytest.raises(ChainError) as e:
        find_sampler(Unbound(), spec)  # type: ignore[arg-type]
    assert "has no sampler bound" in str(e.value) and "\n" not in str(e.value)


def test_defaults_keep_every_trainer_and_the_fixed_committee() -> None:
    spec = _spec()
    assert not spec.sampled and spec.effective_min_commits == 4
    seats = round_seats(None, 1, 1)
    assert seats.trains("0xabc") and seats.validates("0xabc", fixed_member=True)
    assert not seats.validates("0xabc", fixed_member=False)


def test_a_sample_halves_min_commits_and_a_drawn_committee_sets_the_quorum() -> None:
    spec = _spec(clients_per_round=4, validators_per_round=5)
    assert spec.sampled and spec.effective_min_commits == 2 and spec.effective_quorum == 4
    drawn = RoundSeats(
        round=3, samples_trainers=True, draws_committee=True, trainers={"0xa": 1}, committee={}
    )
    assert drawn.trains("0xa") and not drawn.trains("0xb") and drawn.trainer_seat("0xa") == 1
    assert not drawn.validates("0xa", fixed_member=True)
