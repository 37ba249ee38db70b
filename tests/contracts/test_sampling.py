"""Sampling on chain (issue 15): the sampler's draw, its Python mirror, and who may commit and propose."""

from __future__ import annotations

import pytest
from coordinator_harness import h
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedledger.chain.contracts import Phase
from fedledger.chain.sampling import LANE_COMMITTEE, LANE_TRAINERS, Draw, draw_seed, seat_index
from fedledger.errors import TransactionReverted


def _reason(call) -> str:
    with pytest.raises(TransactionReverted) as e:
        call()
    return str(e.value.reason)


def sampled_job(world, *, clients: int = 3, validators: int = 2, enrol: bool = True) -> int:
    """A job drawing `clients` trainers and `validators` committee seats from the six trainers."""
    job_id = world.create(committee=[], quorum=2, clients_per_round=clients, validators_per_round=validators)
    sampler = world.d.sampler
    for t in world.trainers:
        world.coord.register(t, job_id, as_trainer=True)
        if enrol:
            sampler.enrol(t, job_id)
    return job_id


def current_draw(world, job_id: int) -> Draw:
    r, seed, n, clients, validators = world.d.sampler.draw_state(job_id)
    return Draw(round=r, seed=seed, enrolled=n, clients=clients, validators=validators)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**112 - 1),
    committee=st.booleans(),
    n=st.integers(1, 20_000),
    data=st.data(),
)
def test_python_mirror_matches_the_contract(world, seed, committee, n, data):
    seat = data.draw(st.integers(0, n - 1))
    lane = LANE_COMMITTEE if committee else LANE_TRAINERS
    got = world.d.sampler.seat_index(seed, committee=committee, n=n, seat=seat)
    want = seat_index(seed, lane, n, seat)
    assert got == (n if want is None else want)


def test_seats_are_distinct_and_cover_small_pools():
    # a permutation: every registration gets exactly one seat when the seats cover them
    for n in (1, 2, 3, 10, 17, 64, 100):
        idx = [seat_index(12345, LANE_TRAINERS, n, s) for s in range(n)]
        assert sorted(i for i in idx if i is not None) == list(range(n))


def test_every_index_is_drawn_equally_often():
    # over many seeds each of 50 enrolments sits in one of 10 seats about 1/5 of the time
    counts = [0] * 50
    for seed in range(2_000):
        for s in range(10):
            i = seat_index(seed * 0x9E3779B97F4A7C15 + 12345, LANE_TRAINERS, 50, s)
            assert i is not None
            counts[i] += 1
    expected, sigma = 400, (2_000 * 0.2 * 0.8) ** 0.5
    assert all(abs(c - expected) < 5 * sigma for c in counts), counts


def test_only_the_sample_commits_and_only_the_committee_proposes(world):
    job_id = sampled_job(world)
    sampler = world.d.sampler
    receipt = sampler.start(world.sponsor, job_id)
    drawn = next(e for e in sampler.events_in(receipt) if e.name == "SampleDrawn").args
    d = current_draw(world, job_id)
    assert (d.round, d.enrolled, d.clients, d.validators) == (1, 6, 3, 2)
    # the seed is re-derivable from the event: the job, the round, the model, the block's randomness
    assert drawn["seed"] == d.seed == draw_seed(job_id, 1, drawn["global_model"], drawn["randomness"])

    by_index = {i: world.trainers[i] for i in range(6)}  # enrolled in this order
    seats = d.seats(LANE_TRAINERS)
    sampled = [by_index[i] for i in seats if i is not None]
    assert len(set(a.address for a in sampled)) == 3
    outsider = next(t for t in world.trainers if t not in sampled)
    for s, t in enumerate(sampled[:2]):
        assert sampler.seat(job_id, 1, committee=False, seat=s) == t.address
    # not sampled: refused, whatever seat it names
    for s in range(3):
        assert (
            _reason(lambda s=s: world.coord.commit(outsider, job_id, 1, h("x"), 5, s))
            == "sampler: not in the sample"
        )
    # a sampled trainer naming someone else's seat is refused too
    assert (
        _reason(lambda: world.coord.commit(sampled[0], job_id, 1, h("y"), 5, 1))
        == "sampler: not in the sample"
    )
    for s, t in enumerate(sampled):
        world.coord.commit(t, job_id, 1, h(f"u{s}"), 10, s)
    # every seat committed: the commit phase closed early
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING

    committee = [by_index[i] for i in d.seats(LANE_COMMITTEE) if i is not None]
    assert len(committee) == 2
    stranger = next(t for t in world.trainers if t not in committee)
    assert (
        _reason(lambda: world.coord.propose(stranger, job_id, 1, h("agg"), [], seat=0))
        == "coordinator: not a registered validator"
    )
    for s, v in enumerate(committee):
        receipt = world.coord.propose(v, job_id, 1, h("agg"), [], seat=s)
    assert any(e.name == "RoundFinalized" for e in world.coord.events_in(receipt))
    # round 2 was drawn as it opened, from the new model
    d2 = current_draw(world, job_id)
    assert d2.round == 2 and d2.seed != d.seed


def test_an_unsampled_trainer_is_not_punished(world):
    job_id = sampled_job(world)
    world.d.sampler.start(world.sponsor, job_id)
    d = current_draw(world, job_id)
    sampled = [world.trainers[i] for i in d.seats(LANE_TRAINERS) if i is not None]
    committee = [world.trainers[i] for i in d.seats(LANE_COMMITTEE) if i is not None]
    for s, t in enumerate(sampled):
        world.coord.commit(t, job_id, 1, h(f"u{s}"), 10, s)
    for s, v in enumerate(committee):
        world.coord.propose(v, job_id, 1, h("agg"), [], seat=s)
    outsider = next(t for t in world.trainers if t not in sampled)
    state = world.coord.trainer_state(job_id, outsider.address)
    assert state.registered and state.sampled and state.flags == 0
    assert world.coord.stake_of(job_id, outsider.address) == 1_000


def test_sampler_reverts(world):
    sampler = world.d.sampler
    assert _reason(lambda: sampler.transact(world.sponsor, "bind")) == "sampler: already bound"
    assert (
        _reason(lambda: sampler.transact(world.sponsor, "draw", 1, 1, h("m")))
        == "sampler: caller is not the coordinator"
    )
    plain = world.job()
    assert _reason(lambda: sampler.enrol(world.trainers[0], plain)) == "sampler: job draws nobody"
    job_id = sampled_job(world, enrol=False)
    assert _reason(lambda: sampler.enrol(world.outsider, job_id)) == "sampler: not a registered trainer"
    assert _reason(lambda: sampler.start(world.sponsor, job_id)) == "sampler: nobody to draw"
    sampler.enrol(world.trainers[0], job_id)
    assert _reason(lambda: sampler.enrol(world.trainers[0], job_id)) == "sampler: already enrolled"
    assert _reason(lambda: sampler.start(world.trainers[0], job_id)) == "sampler: caller is not the sponsor"
    sampler.start(world.sponsor, job_id)
    assert _reason(lambda: sampler.start(world.sponsor, job_id)) == "sampler: round already drawn"
    world.expire(job_id)
    world.coord.advance(world.sponsor, job_id)  # too few commits: the round failed, round 2 opened drawn
    assert current_draw(world, job_id).round == 2
    world.expire(job_id)
    world.coord.advance(world.sponsor, job_id)  # a second failure in a row (max_failures=1): aborted
    assert world.coord.job_state(job_id).phase == Phase.ABORTED
    assert _reason(lambda: sampler.start(world.sponsor, job_id)) == "sampler: round not open"


def test_a_drawn_committee_replaces_the_fixed_one(world):
    # a drawn committee with a fixed one as well, or in a scored job, is refused
    with pytest.raises(TransactionReverted) as e:
        world.create(quorum=2, validators_per_round=3)
    assert e.value.reason == "coordinator: quorum above committee size"
    with pytest.raises(TransactionReverted):
        world.create(committee=[], quorum=2, validators_per_round=3, scored=True)
