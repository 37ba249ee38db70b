"""Secure aggregation on chain: the key directory (register_with_key) and share reveals (reveal)."""

from __future__ import annotations

import pytest
from coordinator_harness import ZERO32, h, names, only

from fedledger.chain.contracts import Phase
from fedledger.errors import TransactionReverted

KEY = bytes(range(1, 33))


def _keyed_job(world, n_trainers: int = 3, **overrides):  # type: ignore[no-untyped-def]
    job_id = world.create(**overrides)
    for v in world.validators:
        world.coord.register(v, job_id, as_trainer=False)
    for i, t in enumerate(world.trainers[:n_trainers]):
        world.coord.register_with_key(t, job_id, bytes([i + 1]) * 32)
    return job_id


def test_register_with_key_registers_a_trainer_and_publishes_its_key(world):
    job_id = world.create(stake=1_000)
    t = world.trainers[0]
    r = world.coord.register_with_key(t, job_id, KEY)
    assert names(world.d, r) == ["Transfer", "Registered", "KeyRegistered"]
    assert only(world.d, r, "KeyRegistered") == {"job_id": job_id, "trainer": t.address, "public_key": KEY}
    assert only(world.d, r, "Registered")["trainer"] is True
    assert world.coord.public_key(job_id, t.address) == KEY
    assert world.coord.public_key(job_id, world.trainers[1].address) == ZERO32
    assert world.coord.trainer_state(job_id, t.address).registered is True
    assert world.coord.job_state(job_id).trainers == 1


def test_register_with_key_reverts(world):
    job_id = world.create()
    t = world.trainers[0]
    with pytest.raises(TransactionReverted) as e:
        world.coord.register_with_key(t, job_id, ZERO32)
    assert e.value.reason == "coordinator: key is zero"
    world.coord.register_with_key(t, job_id, KEY)
    with pytest.raises(TransactionReverted) as e:  # a key cannot be replaced
        world.coord.register_with_key(t, job_id, h("other key"))
    assert e.value.reason == "coordinator: already registered"
    # the directory closes at the job's first commit: masks are computed against it
    world.coord.register_with_key(world.trainers[1], job_id, h("k1"))
    world.commit(job_id, t)
    with pytest.raises(TransactionReverted) as e:
        world.coord.register_with_key(world.trainers[2], job_id, h("k2"))
    assert e.value.reason == "coordinator: key directory closed"
    # the plain checks of `register` still apply
    with pytest.raises(TransactionReverted) as e:
        world.coord.register_with_key(world.trainers[3], 99, KEY)
    assert e.value.reason == "coordinator: job not running"


def test_a_round_that_failed_without_commits_leaves_the_key_directory_open(world):
    """Nodes that start after round 1's window leave it with no commit: nothing was masked yet,
    so late organisations may still publish keys; once a failed round had commits, they may not."""
    job_id = world.create(min_commits=2, max_failures=5)
    world.coord.register_with_key(world.trainers[0], job_id, h("k0"))
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)  # round 1 fails: too few commits (none)
    assert world.coord.job_state(job_id).round == 2
    world.coord.register_with_key(world.trainers[1], job_id, h("k1"))
    world.commit(job_id, world.trainers[0])
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)  # round 2 fails with one commit: masks were made
    state = world.coord.job_state(job_id)
    assert (state.round, state.commits, state.version) == (3, 0, 0)
    with pytest.raises(TransactionReverted) as e:
        world.coord.register_with_key(world.trainers[2], job_id, h("k2"))
    assert e.value.reason == "coordinator: key directory closed"


def test_committers_reveal_once_in_the_aggregating_round(world):
    job_id = _keyed_job(world, n_trainers=3, min_commits=2)
    a, b, c = world.trainers[:3]
    world.commit(job_id, a)
    with pytest.raises(TransactionReverted) as e:
        world.coord.reveal(a, job_id, 1, h("shares"))
    assert e.value.reason == "coordinator: round not aggregating"
    world.commit(job_id, b)
    world.commit(job_id, c)
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING
    r = world.coord.reveal(a, job_id, 1, h("shares a"))
    assert names(world.d, r) == ["SharesRevealed"]
    assert only(world.d, r, "SharesRevealed") == {
        "job_id": job_id,
        "trainer": a.address,
        "round": 1,
        "commitment": h("shares a"),
    }
    with pytest.raises(TransactionReverted) as e:
        world.coord.reveal(a, job_id, 1, h("shares a again"))
    assert e.value.reason == "coordinator: already revealed"
    with pytest.raises(TransactionReverted) as e:
        world.coord.reveal(b, job_id, 2, h("shares b"))
    assert e.value.reason == "coordinator: wrong round"
    with pytest.raises(TransactionReverted) as e:
        world.coord.reveal(b, job_id, 1, ZERO32)
    assert e.value.reason == "coordinator: empty commitment"
    with pytest.raises(TransactionReverted) as e:
        world.coord.reveal(world.trainers[4], job_id, 1, h("shares x"))
    assert e.value.reason == "coordinator: not a committer"
    with pytest.raises(TransactionReverted) as e:
        world.coord.reveal(world.validators[0], job_id, 1, h("shares v"))
    assert e.value.reason == "coordinator: not a committer"
    world.coord.reveal(b, job_id, 1, h("shares b"))
    # the next round: a trainer that did not commit to it cannot reveal for it
    world.finalize(job_id)
    assert world.coord.job_state(job_id).round == 2
    world.commit(job_id, a)
    world.commit(job_id, b)
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING
    with pytest.raises(TransactionReverted) as e:
        world.coord.reveal(c, job_id, 2, h("shares c"))
    assert e.value.reason == "coordinator: not a committer"
    world.coord.reveal(a, job_id, 2, h("shares a2"))  # revealing last round does not block this one


def _aggregating(world, job_id):  # type: ignore[no-untyped-def]
    for t in world.trainers[:2]:
        world.commit(job_id, t)
    assert world.coord.job_state(job_id).phase == Phase.AGGREGATING
    return world.coord.job_state(job_id).round


def test_the_quorum_records_the_privacy_spent(world):
    job_id = world.job(n_trainers=2, rounds=3, quorum=2)
    v0, v1, v2 = world.validators
    r = _aggregating(world, job_id)
    agg = h("agg 1")
    first = world.coord.propose(v0, job_id, r, agg, [], micro_epsilon=1_500_000)
    assert "PrivacySpent" not in names(world.d, first)
    # a different ε is a different proposal: it does not count towards the first one's quorum
    other = world.coord.propose(v1, job_id, r, agg, [], micro_epsilon=1_400_000)
    assert only(world.d, other, "AggregateProposed")["votes"] == 1
    assert world.coord.epsilon_spent(job_id) == 0
    done = world.coord.propose(v2, job_id, r, agg, [], micro_epsilon=1_500_000)
    assert only(world.d, done, "PrivacySpent") == {"job_id": job_id, "round": r, "micro_epsilon": 1_500_000}
    assert names(world.d, done).index("PrivacySpent") < names(world.d, done).index("RoundFinalized")
    assert world.coord.epsilon_spent(job_id) == 1_500_000
    # ε never goes down: a quorum that records less reverts the deciding proposal
    r = _aggregating(world, job_id)
    world.coord.propose(v0, job_id, r, h("agg 2"), [], micro_epsilon=1_000_000)
    with pytest.raises(TransactionReverted) as e:
        world.coord.propose(v1, job_id, r, h("agg 2"), [], micro_epsilon=1_000_000)
    assert e.value.reason == "coordinator: epsilon decreased"
    world.coord.propose(v2, job_id, r, h("agg 2"), [], micro_epsilon=2_100_000)
    done = world.coord.propose(v1, job_id, r, h("agg 2"), [], micro_epsilon=2_100_000)
    assert only(world.d, done, "PrivacySpent")["micro_epsilon"] == 2_100_000


def test_a_job_without_dp_records_nothing(world):
    job_id = world.job(n_trainers=2, rounds=2, quorum=2)
    _aggregating(world, job_id)
    receipt = world.finalize(job_id)
    assert "PrivacySpent" not in names(world.d, receipt)
    assert world.coord.epsilon_spent(job_id) == 0
