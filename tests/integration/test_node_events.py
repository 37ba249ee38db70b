"""Pushed events on a real anvil: a coordinator event wakes a subscriber at once (WebSocket and
HTTP filter), and nodes whose subscription is cut fall back to polling and still finish."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from consortium_harness import assert_nothing_lost, cut_from_the_chain_after_round_one

from fedledger.chain.wakeup import FilterWakeup, WsWakeup, ws_url_for
from fedledger.codec.blob import encode_tensors
from fedledger.errors import ChainError
from fedledger.roles.devnet import Devnet, start_devnet
from fedledger.roles.sponsor import create_job
from fedledger.spec import JobSpec
from fedledger.store.local import LocalStore

pytestmark = pytest.mark.anvil

SPEC = {"name": "events", "dataset": "digits", "model": "logreg", "trainers": 2, "rounds": 1, "stake": 10}


@pytest.fixture(scope="module")
def net() -> Iterator[Devnet]:
    n = start_devnet(accounts=3)
    yield n
    n.stop()


def emit_job_created(net: Devnet, tmp: Path) -> None:
    """One coordinator transaction with an event: a new job."""
    initial = LocalStore(tmp).put(encode_tensors({}, metadata={"kind": "model"}))
    create_job(
        deployment=net.deployment,
        sponsor=net.accounts[0],
        spec=JobSpec.from_dict(SPEC),
        initial_model=initial,
        committee=[a.address for a in net.accounts[1:3]],
    )


def test_subscription_wakes_on_a_coordinator_event(net: Devnet, tmp_path: Path) -> None:
    address = net.deployment.coordinator.address
    w = WsWakeup(ws_url_for(net.node.url), ["logs", {"address": address}], 0.5, 30.0)
    try:
        deadline = time.monotonic() + 10
        while not w.live:
            assert time.monotonic() < deadline, "no subscription to anvil's WebSocket"
            time.sleep(0.01)
        w.wait()  # the subscription's own wake-up
        emit_job_created(net, tmp_path)
        t0 = time.monotonic()
        assert w.wait() is True  # pushed, not the 30 s recheck
        assert time.monotonic() - t0 < 1.0
    finally:
        w.close()


def test_http_filter_wakes_on_a_coordinator_event(net: Devnet, tmp_path: Path) -> None:
    address = net.deployment.coordinator.address
    w = FilterWakeup(
        lambda: net.chain.new_event_filter(address),
        net.chain.filter_changes,
        0.05,
        30.0,
        errors=(ChainError,),
    )
    assert w.wait() is True and w.live  # the filter is made
    emit_job_created(net, tmp_path)
    t0 = time.monotonic()
    assert w.wait() is True
    assert time.monotonic() - t0 < 1.0


def test_cut_subscriptions_fall_back_to_polling_and_the_job_finishes(tmp_path: Path) -> None:
    """Every node's WebSocket goes through a proxy that resets it mid-job: they poll, re-subscribe
    once the endpoint is back, and the job finishes with nothing lost."""
    cons = cut_from_the_chain_after_round_one(tmp_path, rounds=3)
    try:
        assert cons.rpc_proxy is not None
        time.sleep(3)
        cons.rpc_proxy.unblock()
        cons.wait_done(timeout=180)
        assert cons.coordinator.job_state(cons.job_id).version == 3
        logs = cons.logs()
        assert "event subscription" in logs and "dropped" in logs, logs
        assert "is back" in logs, logs
        assert_nothing_lost(cons, cons.audit())
    finally:
        cons.stop()
