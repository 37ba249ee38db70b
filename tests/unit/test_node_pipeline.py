"""A node's round pipeline: a proposal sent beside training, and round 1's wait for organisations.

The proposal's outcome is met on the node's own thread (`NodeValidation.settle`), exactly as a
proposal sent in line would be: a round decided first is only logged, an outage or another
revert is raised there and the round is proposed again. Fakes stand in for the chain here;
tests/integration/test_nodes.py runs the whole pipeline in node processes on anvil.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any, cast

import pytest

from fedledger.chain.contracts import JobState, Phase
from fedledger.errors import ChainUnavailable, TransactionReverted
from fedledger.roles.node_training import NodeTraining
from fedledger.roles.node_validation import NodeValidation
from fedledger.spec import JobSpec
from fedledger.store.cached import VerifiedCache
from fedledger.store.memory import MemoryStore

AGGREGATING_3 = JobState(Phase.AGGREGATING, 3, 0, 4, 4, 400, 2)


class FakeCoordinator:
    def __init__(self, state: JobState) -> None:
        self.state = state
        self.address = "0x" + "11" * 20

    def job_state(self, job: int) -> JobState:
        return self.state


def validation(state: JobState) -> NodeValidation:
    return NodeValidation(
        name="org-01",
        job=1,
        spec=JobSpec(trainers=4),
        coordinator=cast(Any, FakeCoordinator(state)),
        store=VerifiedCache(MemoryStore()),
        validator=cast(Any, SimpleNamespace(compute=None)),
        reader=cast(Any, None),
        availability_wait_s=1.0,
    )


def in_flight(v: NodeValidation, error: BaseException | None) -> Future[None]:
    done: Future[None] = Future()
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
    v.proposed.add(3)
    v.inflight = (AGGREGATING_3, done)
    return done


def test_a_round_decided_before_the_proposal_landed_is_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="fedledger.node")
    v = validation(AGGREGATING_3)
    in_flight(v, TransactionReverted("coordinator: already proposed"))
    v.settle()
    assert v.inflight is None and 3 in v.proposed
    assert "decided before this proposal landed" in caplog.text


def test_a_revert_after_the_round_moved_on_is_only_logged() -> None:
    v = validation(JobState(Phase.OPEN, 4, 0, 0, 4, 0, 3))
    in_flight(v, TransactionReverted("coordinator: round not aggregating"))
    v.settle()
    assert 3 in v.proposed


def test_another_revert_while_the_round_aggregates_is_raised_and_the_round_proposed_again() -> None:
    v = validation(AGGREGATING_3)
    in_flight(v, TransactionReverted("coordinator: not a registered validator"))
    with pytest.raises(TransactionReverted, match="not a registered validator"):
        v.settle()
    assert 3 not in v.proposed and v.inflight is None


def test_an_outage_during_the_proposal_is_raised_on_the_nodes_thread() -> None:
    v = validation(AGGREGATING_3)
    in_flight(v, ChainUnavailable("JSON-RPC node at http://127.0.0.1:1 unreachable"))
    with pytest.raises(ChainUnavailable):
        v.settle()
    assert 3 not in v.proposed  # the next pass computes and proposes it again


def test_settle_looks_without_waiting_unless_told_to() -> None:
    v = validation(AGGREGATING_3)
    pending: Future[None] = Future()
    v.inflight = (AGGREGATING_3, pending)
    v.settle()
    assert v.inflight is not None  # still in flight: the pass goes on
    pending.set_exception(ChainUnavailable("gone"))
    v.close()  # the node is stopping: logged, not raised
    assert v.inflight is None and v.stopping.is_set()


def test_an_interrupted_node_does_not_wait_for_its_proposal() -> None:
    v = validation(AGGREGATING_3)
    pending: Future[None] = Future()  # never completes: a hung JSON-RPC node
    v.inflight = (AGGREGATING_3, pending)
    v.close(wait=False)
    assert v.stopping.is_set()  # a proposal retrying on its helper thread gives up


def test_an_outage_while_checking_a_revert_leaves_the_round_to_propose_again() -> None:
    class Unreachable(FakeCoordinator):
        def job_state(self, job: int) -> JobState:
            raise ChainUnavailable("JSON-RPC node at http://127.0.0.1:1 unreachable")

    v = validation(AGGREGATING_3)
    v.coordinator = cast(Any, Unreachable(AGGREGATING_3))
    in_flight(v, TransactionReverted("coordinator: already proposed"))
    with pytest.raises(ChainUnavailable):
        v.settle()
    assert 3 not in v.proposed  # the next pass asks the chain again and proposes if needed


class Clock:
    def __init__(self) -> None:
        self.t = 1_000

    def now(self) -> int:
        return self.t


def training(clock: Clock | None = None, **spec: Any) -> NodeTraining:
    return NodeTraining(
        name="org-01",
        job=1,
        spec=JobSpec(**{"trainers": 4, "commit_window_s": 60, **spec}),
        chain=cast(Any, clock or Clock()),
        trainer=cast(Any, SimpleNamespace(stopped=False)),
        reader=cast(Any, None),
        join_wait_s=0.2,
    )


def opened(trainers: int, *, commits: int = 0, round: int = 1, version: int = 0) -> JobState:
    """An open round; it opened at t = 1,000 with a 60 s commit window."""
    return JobState(Phase.OPEN, round, 1_060, commits, trainers, 0, version)


def test_round_one_waits_for_the_organisations_the_spec_counts() -> None:
    t = training()
    assert t.holds_first_commit(opened(3))
    assert not t.holds_first_commit(opened(4))  # everyone is in: commit at once


def test_an_fltrust_job_also_waits_for_the_sponsors_root_node() -> None:
    t = training(aggregation="fltrust", dataset="digits")
    assert t.holds_first_commit(opened(4))  # four organisations and no root yet, or the reverse
    assert not t.holds_first_commit(opened(5))


def test_the_wait_is_bounded() -> None:
    t = training()
    assert t.holds_first_commit(opened(2))
    time.sleep(0.25)
    assert not t.holds_first_commit(opened(2))  # join_wait_s is over: go with who is there


def test_the_wait_leaves_half_the_commit_window() -> None:
    clock = Clock()
    t = training(clock, commit_window_s=60)
    assert t.holds_first_commit(opened(2))
    clock.t = 1_030  # half of round 1's window has passed on the chain's clock
    assert not t.holds_first_commit(opened(2))


def test_only_the_jobs_first_commit_waits() -> None:
    t = training()
    assert not t.holds_first_commit(opened(3, commits=1))  # someone committed: the round is closing
    assert not t.holds_first_commit(opened(3, round=2, version=1))  # a later round
    assert not t.holds_first_commit(opened(3, round=2))  # round 1 failed: not waited for again
    assert not training(clients_per_round=2).holds_first_commit(opened(3))  # the draw decides


def test_an_aggregate_is_held_in_memory_only_within_the_cache_budget() -> None:
    from fedledger.codec.commitment import merkle_root

    inner = MemoryStore()
    cache = VerifiedCache(inner, max_bytes=64)
    small, large = b"s" * 64, b"l" * 65
    assert cache.hold(merkle_root(small), small)
    assert cache.get(merkle_root(small)) == small and not inner.has(merkle_root(small))  # read from memory
    assert not cache.hold(merkle_root(large), large)  # over budget: the caller uploads it in line
