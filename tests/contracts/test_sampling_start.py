"""The sponsor's `job start` (`roles/sponsor.start_draw`): round 1 drawn once the consortium enrolled."""

from __future__ import annotations

import pytest
from coordinator_harness import World
from test_sampling import sampled_job

from fedledger.errors import ChainError
from fedledger.roles.sponsor import start_draw


def test_start_waits_for_the_enrolled_then_draws_once(world: World) -> None:
    job = sampled_job(world, enrol=False)
    sampler = world.d.sampler
    assert sampler is not None
    with pytest.raises(ChainError) as e:  # nobody enrolled yet: one line that says what to do
        start_draw(world.coord, world.sponsor, job, enrolled=6, timeout=0, poll=0)
    assert str(e.value) == (
        f"only 0 of 6 trainers enrolled in job {job} within 0 s: start their nodes, or give --enrolled fewer"
    )
    assert sampler.draw_state(job)[0] == 0  # nothing drawn
    for t in world.trainers:
        sampler.enrol(t, job)
    assert start_draw(world.coord, world.sponsor, job, enrolled=6, timeout=0) == (1, True)
    assert sampler.draw_state(job)[:3:2] == (1, 6)  # round 1, drawn from all six
    assert start_draw(world.coord, world.sponsor, job, enrolled=6, timeout=0) == (1, False)


def test_start_refuses_a_job_that_samples_nobody(world: World) -> None:
    job = world.create()
    with pytest.raises(ChainError) as e:
        start_draw(world.coord, world.sponsor, job, enrolled=1, timeout=0)
    assert str(e.value) == f"job {job} samples nobody: there is no draw to start"
