"""Attacks on the sampler (issue 15): each test is one adversary's move and what stops it.

The ones the code withstood when written are kept as regression tests of the guarantee; the
ejected trainer sitting on a drawn committee succeeded and was fixed in `sampler.check`
(docs/design.md, "Sampling on chain").
"""

from __future__ import annotations

import pytest
from coordinator_harness import h
from test_sampling import _reason, current_draw, sampled_job

from fedledger.chain.contracts import Phase
from fedledger.chain.sampling import LANE_COMMITTEE, LANE_TRAINERS, seat_index
from fedledger.chain.types import RoundStatus


def _started(world, **kw):
    job_id = sampled_job(world, **kw)
    world.d.sampler.start(world.sponsor, job_id)
    d = current_draw(world, job_id)
    trainers = [world.trainers[i] for i in d.seats(LANE_TRAINERS) if i is not None]
    committee = [world.trainers[i] for i in d.seats(LANE_COMMITTEE) if i is not None]
    return job_id, trainers, committee


def test_a_trainer_cannot_commit_twice_under_two_seats(world):
    job_id, trainers, _ = _started(world)
    world.coord.commit(trainers[0], job_id, 1, h("a"), 10, 0)
    for seat in (0, 1, 2):
        assert (
            _reason(lambda seat=seat: world.coord.commit(trainers[0], job_id, 1, h("b"), 10, seat))
            == "coordinator: already committed"
        )
    assert world.coord.job_state(job_id).commits == 1


@pytest.mark.parametrize("seat", [3, 4, 5, 2**16, 2**256 - 1])
def test_a_seat_past_the_draw_holds_nobody(world, seat):
    # 3 seats drawn from 6: seats 3..5 would map to real enrolments if the range were not checked
    job_id, _, _ = _started(world)
    for t in world.trainers:
        assert (
            _reason(lambda t=t: world.coord.commit(t, job_id, 1, h("x"), 10, seat))
            == "sampler: not in the sample"
        )
    assert world.d.sampler.seat(job_id, 1, committee=False, seat=seat) == "0x" + "00" * 20


def test_a_trainer_seat_is_not_a_committee_seat_and_a_member_proposes_once(world):
    job_id, trainers, committee = _started(world)
    for s, t in enumerate(trainers):
        world.coord.commit(t, job_id, 1, h(f"u{s}"), 10, s)
    d = current_draw(world, job_id)
    committee_seat = {world.trainers[i].address: s for s, i in enumerate(d.seats(LANE_COMMITTEE))}
    # every trainer naming its trainer seat (or any seat it does not hold) in the committee lane
    for s, t in enumerate(trainers):
        if committee_seat.get(t.address) != s:
            assert (
                _reason(lambda t=t, s=s: world.coord.propose(t, job_id, 1, h("agg"), [], seat=s))
                == "coordinator: not a registered validator"
            )
    member = committee[0]
    world.coord.propose(member, job_id, 1, h("agg"), [], seat=0)
    assert (
        _reason(lambda: world.coord.propose(member, job_id, 1, h("agg"), [], seat=0))
        == "coordinator: already proposed"
    )
    # a second vote from the same member (another seat, another aggregate) is refused too
    assert _reason(lambda: world.coord.propose(member, job_id, 1, h("other"), [], seat=1)) in {
        "coordinator: already proposed",
        "coordinator: not a registered validator",
    }
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING


def test_an_enrolment_after_the_draw_counts_only_from_the_next(world):
    job_id = world.create(committee=[], quorum=1, clients_per_round=2, validators_per_round=1, min_commits=1)
    early, late = world.trainers[:2], world.trainers[2]
    for t in (*early, late):
        world.coord.register(t, job_id, as_trainer=True)
    for t in early:
        world.d.sampler.enrol(t, job_id)
    world.d.sampler.start(world.sponsor, job_id)
    world.d.sampler.enrol(late, job_id)  # after seeing the seed
    d = current_draw(world, job_id)
    assert d.enrolled == 2 and world.d.sampler.enrolled(job_id) == 3
    for seat in range(3):
        assert world.d.sampler.seat(job_id, 1, committee=False, seat=seat) != late.address
        assert (
            _reason(lambda seat=seat: world.coord.commit(late, job_id, 1, h("x"), 10, seat))
            == "sampler: not in the sample"
        )
    # the next draw sees all three
    for s, i in enumerate(d.seats(LANE_TRAINERS)):
        world.coord.commit(world.trainers[i], job_id, 1, h(f"u{s}"), 10, s)
    member = world.trainers[d.seats(LANE_COMMITTEE)[0]]
    world.coord.propose(member, job_id, 1, h("agg"), [], seat=0)
    assert current_draw(world, job_id).enrolled == 3


def test_a_sponsor_who_never_starts_loses_round_one_only(world):
    job_id = sampled_job(world, clients=3, validators=2)
    world.expire(job_id)
    world.coord.advance(world.sponsor, job_id)  # round 1 undrawn: nobody could commit, it failed
    state = world.coord.job_state(job_id)
    assert (state.phase, state.round) == (Phase.OPEN, 2)
    d = current_draw(world, job_id)
    assert (d.round, d.enrolled) == (2, 6)
    for s, i in enumerate(d.seats(LANE_TRAINERS)):
        world.coord.commit(world.trainers[i], job_id, 2, h(f"u{s}"), 10, s)
    for s, i in enumerate(d.seats(LANE_COMMITTEE)):
        world.coord.propose(world.trainers[i], job_id, 2, h("agg"), [], seat=s)
    result = world.coord.round_result(job_id, 2)
    assert result.status == RoundStatus.FINALIZED and result.accepted_commits == 3


def _payouts_after_abort(world, job_id) -> None:
    """Everyone gets back exactly what it put in: stakes to the trainers, the pool to the sponsor."""
    assert world.coord.job_state(job_id).phase == Phase.ABORTED
    for t in world.trainers:
        assert world.coord.stake_of(job_id, t.address) == 1_000
        before = world.token.balance_of(t.address)
        world.coord.withdraw(t, job_id)
        assert world.token.balance_of(t.address) - before == 1_000
    pool = world.coord.pool(job_id)
    before = world.token.balance_of(world.sponsor.address)
    world.coord.reclaim(world.sponsor, job_id)
    assert world.token.balance_of(world.sponsor.address) - before == pool > 0


def test_fewer_enrolled_than_min_commits_fails_cleanly_and_refunds(world):
    # 3 seats, min_commits 3, but only 2 trainers enrol: the draw seats 2, never enough
    job_id = world.create(committee=[], quorum=1, clients_per_round=3, validators_per_round=1, min_commits=3)
    for t in world.trainers:
        world.coord.register(t, job_id, as_trainer=True)
    for t in world.trainers[:2]:
        world.d.sampler.enrol(t, job_id)
    world.d.sampler.start(world.sponsor, job_id)
    d = current_draw(world, job_id)
    assert sum(i is not None for i in d.seats(LANE_TRAINERS)) == 2
    for s, i in enumerate(d.seats(LANE_TRAINERS)):
        if i is not None:
            world.coord.commit(world.trainers[i], job_id, 1, h(f"u{s}"), 10, s)
    # every seat committed but below min_commits: it does not close early, it fails on the window
    assert world.coord.job_state(job_id).phase == Phase.OPEN
    for _ in range(2):  # max_failures=1: two failures in a row abort
        world.expire(job_id)
        world.coord.advance(world.sponsor, job_id)
    _payouts_after_abort(world, job_id)


def test_a_round_whose_drawn_trainers_are_all_offline_fails_and_nobody_is_punished(world):
    job_id, _, _ = _started(world)
    for _ in range(2):
        world.expire(job_id)
        world.coord.advance(world.sponsor, job_id)
    for t in world.trainers:
        assert world.coord.trainer_state(job_id, t.address).flags == 0
    _payouts_after_abort(world, job_id)


def test_an_ejected_trainer_cannot_sit_on_a_drawn_committee(world):
    """ATTACK that succeeded: the committee lane checked only `trainer_at[index] == caller`, so a
    trainer ejected for poisoning (stake slashed, registration gone) still voted on aggregates."""
    job_id = world.create(committee=[], quorum=2, validators_per_round=6, max_flags=1, min_commits=2)
    for t in world.trainers:
        world.coord.register(t, job_id, as_trainer=True)
        world.d.sampler.enrol(t, job_id)
    world.d.sampler.start(world.sponsor, job_id)
    d = current_draw(world, job_id)
    seat_of = {world.trainers[i].address: s for s, i in enumerate(d.seats(LANE_COMMITTEE))}
    for t in world.trainers:  # clients_per_round 0: every trainer commits, seat ignored
        world.coord.commit(t, job_id, 1, h(f"u:{t.address}"), 10, 0)
    poisoner = world.trainers[5]
    honest = [t for t in world.trainers if t is not poisoner]
    for v in honest[:2]:
        world.coord.propose(
            v, job_id, 1, h("agg1"), [poisoner.address], [poisoner.address], seat=seat_of[v.address]
        )
    assert world.coord.trainer_state(job_id, poisoner.address).ejected
    d2 = current_draw(world, job_id)
    seat2 = {world.trainers[i].address: s for s, i in enumerate(d2.seats(LANE_COMMITTEE))}
    assert poisoner.address in seat2  # still enrolled, so still drawn (6 seats of 6)
    for t in honest:
        world.coord.commit(t, job_id, 2, h(f"v:{t.address}"), 10, 0)
    assert (
        _reason(lambda: world.coord.propose(poisoner, job_id, 2, h("evil"), [], seat=seat2[poisoner.address]))
        == "coordinator: not a registered validator"
    )
    assert world.d.sampler.read("check", job_id, 2, poisoner.address, True, seat2[poisoner.address]) == 0


@pytest.mark.parametrize("n", [1, 2, 3, 7, 97, 10_000])
def test_the_mirror_matches_the_contract_at_edge_sizes(world, n):
    # clients = n (every enrolment seated, so all of them checked for small n), prime n, 10,000
    seed = 0xDEADBEEF * n + 12345
    seats = range(n) if n <= 97 else [0, 1, 2, n // 2, n - 2, n - 1]
    for lane, committee in ((LANE_TRAINERS, False), (LANE_COMMITTEE, True)):
        got = [world.d.sampler.seat_index(seed, committee=committee, n=n, seat=s) for s in seats]
        want = [seat_index(seed, lane, n, s) for s in seats]
        assert got == [n if w is None else w for w in want]
        if n <= 97:
            assert sorted(got) == list(range(n))
