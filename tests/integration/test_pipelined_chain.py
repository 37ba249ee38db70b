"""The pipelined chain (chain/pipelined.py): the in-process EVM in a second process.

What must hold for a simulation to use it in place of `InProcessChain`: the same
transactions give byte-identical receipts, blocks and logs (so the export and the audit's
re-execution cannot tell them apart), submitted transactions keep their order, a revert is
raised where the caller looks, and the child process never outlives its use or hangs its
parent. The Chain-interface behaviour itself is in test_chain_conformance.py, which runs on
this backend too.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from test_chain_conformance import _params, h

from fedledger.chain.base import Chain, Receipt, dev_accounts
from fedledger.chain.contracts import Phase, deploy_contracts
from fedledger.chain.inprocess import InProcessChain
from fedledger.chain.pipelined import PipelinedChain
from fedledger.errors import ChainError, TransactionReverted


def _job(chain: Chain, *, submit: bool) -> list[Receipt]:
    """A two-round job: commits submitted (or sent) while other work goes on, a revert among them."""
    accounts = dev_accounts(5)
    sponsor, trainers = accounts[0], accounts[1:]
    d = deploy_contracts(chain, sponsor)
    token, coord = d.token, d.coordinator
    for a in accounts:
        token.mint(sponsor, a.address, 10**21)
        token.approve(a, coord.address, 2**256 - 1)
    params = _params(token.address, [trainers[0].address])  # 2 rounds, quorum 1, stake 10
    job_id, _ = coord.create_job(sponsor, params)
    for t in trainers:
        coord.register(t, job_id, as_trainer=True)
    for rnd in (1, 2):
        pending = []
        for i, t in enumerate(trainers):
            if submit:
                pending.append(coord.commit_later(t, job_id, rnd, h(f"{rnd}:{i}"), 10 + i))
            else:
                coord.commit(t, job_id, rnd, h(f"{rnd}:{i}"), 10 + i)
            if i == 0:  # a duplicate, queued behind the first: reverts, is not mined, uses no nonce
                twice = coord.transact_later(t, "commit", job_id, rnd, h("twice"), 1, 0)
                pending.append(twice)
        for p in pending:
            if p is twice:
                with pytest.raises(TransactionReverted) as e:
                    p.result()
                assert str(e.value) == "commit: reverted: coordinator: already committed"
            else:
                p.result()
        coord.propose(trainers[0], job_id, rnd, h(f"agg{rnd}"), [])
    assert coord.job_state(job_id).phase == Phase.DONE
    for t in trainers:
        coord.withdraw(t, job_id)
    return chain.receipts()


def test_pipelined_receipts_are_byte_for_byte_the_in_process_ones():
    pipelined = PipelinedChain()
    try:
        got = _job(pipelined, submit=True)
    finally:
        pipelined.close()
    want = _job(InProcessChain(), submit=False)
    assert len(got) == len(want) == 6 + 10 + 1 + 4 + 2 * (4 + 1) + 4  # 6 deployments
    assert got == want  # hashes, blocks, timestamps, block hashes, gas, logs, signed bytes


def test_two_pipelined_runs_are_identical():
    runs = []
    for _ in range(2):
        chain = PipelinedChain()
        try:
            runs.append(_job(chain, submit=True))
        finally:
            chain.close()
    assert runs[0] == runs[1]


def test_submit_returns_before_the_transaction_has_run():
    chain = PipelinedChain()
    try:
        accounts = dev_accounts(2)
        d = deploy_contracts(chain, accounts[0])
        data = d.token.abi.functions["mint"].encode_call(accounts[1].address, 1)
        t0 = time.perf_counter()
        pending = [chain.submit(accounts[0], d.token.address, data) for _ in range(40)]
        submitted = time.perf_counter() - t0
        receipts = [p.result() for p in pending]
        waited = time.perf_counter() - t0
        # 40 submits are 40 pipe writes; executing 40 mints (each signed, run and logged) takes
        # the child several times as long, and the caller waited only at result()
        assert submitted < waited / 2, (submitted, waited)
        first = receipts[0].block_number
        assert [r.block_number for r in receipts] == list(range(first, first + 40))
        assert chain.work()["transactions"] == 6 + 40  # the 6 deployments and the mints
    finally:
        chain.close()


def test_the_child_ignores_ctrl_c_and_stops_on_close():
    chain = PipelinedChain()
    accounts = dev_accounts(1)
    deploy_contracts(chain, accounts[0])
    pid = chain.pid
    os.kill(pid, signal.SIGINT)  # Ctrl-C reaches the whole process group: the parent decides
    time.sleep(0.2)
    assert chain.block_number() == 6  # still serving, state intact (6 deployments)
    chain.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)
    with pytest.raises(ChainError) as e:
        chain.block_number()
    assert str(e.value) == "the pipelined chain is closed"


def test_a_dead_child_fails_waiting_calls_instead_of_hanging():
    chain = PipelinedChain()
    accounts = dev_accounts(1)
    deploy_contracts(chain, accounts[0])
    os.kill(chain.pid, signal.SIGKILL)
    with pytest.raises(ChainError, match="chain process"):
        chain.block_number()
    chain.close()


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return waited == 0
