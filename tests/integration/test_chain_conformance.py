"""One suite of Chain-interface behaviour, run against every backend.

The `chain` fixture here extends tests/conftest.py's (the in-process EVM and a JSON-RPC
client on a real anvil node) with the pipelined chain, the in-process EVM in a second
process (chain/pipelined.py), so every test here runs on all three.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from eth_utils import keccak

from fedledger.chain.abi import ContractABI
from fedledger.chain.anvil import AnvilNode, find_anvil
from fedledger.chain.artifacts import load_artifact
from fedledger.chain.base import Chain, LogEntry, Receipt, dev_accounts
from fedledger.chain.contracts import JobParams, Phase, RewardToken, deploy_contracts
from fedledger.chain.inprocess import InProcessChain
from fedledger.chain.pipelined import PipelinedChain
from fedledger.chain.rpc import RpcChain
from fedledger.errors import ChainUnavailable, TransactionReverted

ZERO_ADDRESS = "0x" + "00" * 20
TX_HASH = re.compile(r"^0x[0-9a-f]{64}$")


@pytest.fixture(params=["inprocess", "pipelined", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """A fresh chain per test, on each backend."""
    if request.param == "inprocess":
        yield InProcessChain()
    elif request.param == "pipelined":
        pipelined = PipelinedChain()
        yield pipelined
        pipelined.close()
    else:
        yield RpcChain(request.getfixturevalue("anvil").url)


def h(label: str) -> bytes:
    return bytes(keccak(text=label))


def _token(chain: Chain, deployer) -> RewardToken:
    t = RewardToken.deploy(chain, deployer, "fedledger reward", "FED")
    assert isinstance(t, RewardToken)
    return t


def _params(token: str, committee: list[str], **kw) -> JobParams:
    base = dict(
        token=token,
        spec_hash=h("spec"),
        initial_model=h("m0"),
        rounds=2,
        min_commits=1,
        quorum=1,
        commit_window=100,
        aggregate_window=50,
        max_failures=1,
        stake=10,
        reward_per_round=1_000,
        slash_bps=0,
        max_flags=0,
        committee=committee,
        allowlist=[],
    )
    base.update(kw)
    return JobParams(**base)


# -- deploy / send / logs ---------------------------------------------------------------------


def test_deploy_returns_address_with_code(chain, accounts):
    artifact = load_artifact("reward_token")
    abi = ContractABI(artifact.abi)
    r = chain.deploy(accounts[0], artifact.bytecode, abi.encode_constructor("n", "S"))
    assert r.contract_address is not None and r.to is None
    assert r.sender == accounts[0].address
    assert r.gas_used > 100_000
    assert TX_HASH.match(r.tx_hash)
    name = abi.functions["name"]
    assert name.decode_result(chain.call(r.contract_address, name.encode_call())) == "n"
    # an address without code answers nothing
    assert chain.call("0x" + "ab" * 20, name.encode_call()) == b""


def test_send_returns_receipt_with_decoded_logs(chain, accounts):
    token = _token(chain, accounts[0])
    data = token.abi.functions["mint"].encode_call(accounts[1].address, 123)
    r = chain.send(accounts[0], token.address, data)
    assert isinstance(r, Receipt)
    assert (r.sender, r.to, r.input, r.contract_address) == (
        accounts[0].address,
        token.address,
        data,
        None,
    )
    assert TX_HASH.match(r.tx_hash)
    assert r.block_number == chain.block_number()
    assert r.timestamp == chain.timestamp()
    assert len(r.logs) == 1
    log = r.logs[0]
    assert isinstance(log, LogEntry)
    assert (log.address, log.block_number, log.tx_hash, log.log_index) == (
        token.address,
        r.block_number,
        r.tx_hash,
        0,
    )
    assert log.topics[0] == token.abi.event_names["Transfer"].topic
    [ev] = token.events_in(r)
    assert (ev.name, ev.args) == (
        "Transfer",
        {"sender": ZERO_ADDRESS, "receiver": accounts[1].address, "value": 123},
    )
    assert (ev.block_number, ev.tx_hash, ev.log_index, ev.address) == (
        r.block_number,
        r.tx_hash,
        0,
        token.address,
    )


def test_log_indexes_count_within_a_transaction(chain, deployed, accounts):
    coord = deployed.coordinator
    job_id, r = coord.create_job(accounts[0], _params(deployed.token.address, [accounts[1].address]))
    assert [lg.log_index for lg in r.logs][:3] == [r.logs[0].log_index + i for i in range(3)]
    assert [e.name for e in deployed.token.events_in(r)] == ["Transfer"]
    assert [e.name for e in coord.events_in(r)] == ["JobCreated", "RoundOpened"]
    assert job_id == 1


@pytest.mark.parametrize("gas", [None, 200_000])
def test_revert_raises_exact_reason_and_changes_no_state(chain, accounts, gas):
    token = _token(chain, accounts[0])
    token.mint(accounts[0], accounts[1].address, 10)
    data = token.abi.functions["transfer"].encode_call(accounts[2].address, 11)
    with pytest.raises(TransactionReverted) as e:
        chain.send(accounts[1], token.address, data, gas=gas)
    assert e.value.reason == "reward_token: insufficient balance"
    assert token.balance_of(accounts[1].address) == 10
    assert token.balance_of(accounts[2].address) == 0
    assert len(token.events()) == 1  # only the mint
    # the sender can go on transacting (nonces stay in step)
    token.transfer(accounts[1], accounts[2].address, 4)
    assert token.balance_of(accounts[2].address) == 4


def test_contract_revert_through_typed_client(chain, deployed, accounts):
    coord = deployed.coordinator
    with pytest.raises(TransactionReverted) as e:
        coord.register(accounts[3], 1, as_trainer=True)
    assert e.value.reason == "coordinator: job not running"
    assert e.value.function == "register"
    assert coord.job_count() == 0


def test_call_reverts_with_exact_reason(chain, accounts):
    token = _token(chain, accounts[0])
    data = token.abi.functions["transfer"].encode_call(accounts[2].address, 1)
    with pytest.raises(TransactionReverted) as e:
        chain.call(token.address, data, sender=accounts[1].address)
    assert e.value.reason == "reward_token: insufficient balance"


def test_call_is_read_only(chain, accounts):
    token = _token(chain, accounts[0])
    token.mint(accounts[0], accounts[1].address, 10)
    block = chain.block_number()
    assert token.read("balanceOf", accounts[1].address) == 10
    total = token.abi.functions["totalSupply"]
    assert total.decode_result(chain.call(token.address, total.encode_call())) == 10
    assert chain.block_number() == block
    assert len(chain.receipts(block)) == 1  # only the mint's block


def test_call_simulates_a_state_changing_function_without_persisting(chain, accounts):
    token = _token(chain, accounts[0])
    token.mint(accounts[0], accounts[1].address, 10)
    fn = token.abi.functions["transfer"]
    out = chain.call(token.address, fn.encode_call(accounts[2].address, 3), sender=accounts[1].address)
    assert fn.decode_result(out) is True
    assert token.balance_of(accounts[1].address) == 10
    assert token.balance_of(accounts[2].address) == 0


def test_get_logs_ranges(chain, accounts):
    token = _token(chain, accounts[0])
    other = _token(chain, accounts[0])
    rs = [token.mint(accounts[0], accounts[1].address, v) for v in (1, 2, 3)]
    other.mint(accounts[0], accounts[1].address, 99)
    b = [r.block_number for r in rs]
    assert b == sorted(b) and len(set(b)) == 3
    everything = chain.get_logs(token.address)
    assert everything == [lg for r in rs for lg in r.logs]
    assert chain.get_logs(token.address, b[1]) == list(rs[1].logs + rs[2].logs)
    assert chain.get_logs(token.address, b[0], b[0]) == list(rs[0].logs)
    assert chain.get_logs(token.address, b[0], b[1]) == list(rs[0].logs + rs[1].logs)
    assert chain.get_logs(token.address, b[2] + 1) == []
    assert [e.args["value"] for e in token.events(b[0], b[2])] == [1, 2, 3]
    assert [e.args["value"] for e in other.events()] == [99]


def test_block_numbers_increase_and_timestamps_do_not_go_back(chain, accounts):
    start = chain.block_number()
    token = _token(chain, accounts[0])
    rs = [token.mint(accounts[0], accounts[1].address, 1) for _ in range(4)]
    blocks = [r.block_number for r in rs]
    assert blocks == list(range(blocks[0], blocks[0] + 4))  # one transaction per block
    assert blocks[0] > start
    assert chain.block_number() == blocks[-1]
    stamps = [r.timestamp for r in rs]
    assert stamps == sorted(stamps)


def test_increase_time_moves_timestamps_and_deadlines(chain, deployed, accounts):
    coord = deployed.coordinator
    job_id, r = coord.create_job(
        accounts[0],
        _params(deployed.token.address, [accounts[1].address], commit_window=1_000, min_commits=1),
    )
    deadline = coord.job_state(job_id).deadline
    assert deadline == r.timestamp + 1_000  # block.timestamp seen by the contract == receipt timestamp
    coord.register(accounts[2], job_id, as_trainer=True)
    coord.register(accounts[3], job_id, as_trainer=True)
    coord.commit(accounts[2], job_id, 1, h("u"), 5)
    with pytest.raises(TransactionReverted) as e:
        coord.advance(accounts[4], job_id)
    assert e.value.reason == "coordinator: phase not expired"
    before = chain.timestamp()
    chain.increase_time(2_000)
    assert chain.timestamp() >= before + 2_000
    with pytest.raises(TransactionReverted) as e:
        coord.commit(accounts[3], job_id, 1, h("late"), 5)
    assert e.value.reason == "coordinator: commit window closed"
    r = coord.advance(accounts[4], job_id)
    assert r.timestamp > deadline
    assert [e.name for e in coord.events_in(r)] == ["CommitsClosed"]
    assert coord.job_state(job_id).phase == Phase.AGGREGATING


def test_receipts_lists_transactions_in_order(chain, accounts):
    start = chain.block_number() + 1
    token = _token(chain, accounts[0])
    sent = [
        token.mint(accounts[0], accounts[1].address, 5),
        token.transfer(accounts[1], accounts[2].address, 2),
    ]
    sent.insert(0, chain.receipts(start)[0])  # the deployment
    listed = chain.receipts(start)
    assert [r.tx_hash for r in listed] == [r.tx_hash for r in sent]
    assert listed[0].contract_address == token.address and listed[0].to is None
    for got, want in zip(listed[1:], sent[1:], strict=True):
        assert got == want
    assert chain.receipts(sent[-1].block_number) == [sent[-1]]
    assert chain.receipts(sent[-1].block_number + 1) == []


def test_submitted_transactions_run_in_order_and_reads_see_them(chain, accounts):
    token = _token(chain, accounts[0])
    mint = token.abi.functions["mint"]
    pending = [
        chain.submit(accounts[0], token.address, mint.encode_call(accounts[1].address, v)) for v in (1, 2)
    ]
    between = token.mint(accounts[0], accounts[1].address, 4)  # a send after two submits
    pending.append(chain.submit(accounts[0], token.address, mint.encode_call(accounts[1].address, 8)))
    assert token.balance_of(accounts[1].address) == 15  # read before any result(): all four ran
    receipts = [p.result() for p in pending]
    blocks = [r.block_number for r in (receipts[0], receipts[1], between, receipts[2])]
    assert blocks == list(range(blocks[0], blocks[0] + 4))  # in the order sent
    assert [e.args["value"] for e in token.events(blocks[0])] == [1, 2, 4, 8]
    assert chain.receipts(blocks[0]) == [receipts[0], receipts[1], between, receipts[2]]


def test_a_submitted_revert_is_raised_by_result_with_its_reason(chain, deployed, accounts):
    coord = deployed.coordinator
    pending = coord.transact_later(accounts[3], "register", 1, True)
    token = deployed.token
    after = token.mint(accounts[0], accounts[4].address, 1)  # the chain goes on meanwhile
    with pytest.raises(TransactionReverted) as e:
        pending.result()
    assert (e.value.reason, e.value.function) == ("coordinator: job not running", "register")
    with pytest.raises(TransactionReverted):  # the same answer again
        pending.result()
    # a reverted transaction is not mined and uses no nonce: the sender goes on transacting
    again = token.transfer(accounts[3], accounts[4].address, 1)
    assert again.block_number == after.block_number + 1
    assert coord.job_count() == 0


# -- the two backends side by side --------------------------------------------------------------


def _scenario(chain: Chain, accounts) -> list[tuple[str, Receipt, list]]:
    """deploy, mint, approve, create_job, register x4, commit x8 over 2 rounds, propose."""
    out: list[tuple[str, Receipt, list]] = []
    d = deploy_contracts(chain, accounts[0])
    token, coord = d.token, d.coordinator
    out.append(("deploy token", chain.receipts(0)[0], []))
    out.append(("deploy coordinator", chain.receipts(0)[1], []))
    sponsor, trainers = accounts[0], accounts[1:5]

    def rec(label, r):
        evs = [
            (e.name, {k: v for k, v in e.args.items() if k != "deadline"})
            for e in coord.events_in(r) + token.events_in(r)
        ]
        out.append((label, r, evs))

    for a in [sponsor, *trainers]:
        rec("mint", token.mint(sponsor, a.address, 10**21))
        rec("approve", token.approve(a, coord.address, 2**256 - 1))
    job_id, r = coord.create_job(
        sponsor,
        _params(
            token.address,
            [trainers[0].address],
            quorum=1,
            rounds=2,
            reward_per_round=1_000,
            stake=10,
        ),
    )
    rec("create_job", r)
    for t in trainers:
        rec("register", coord.register(t, job_id, as_trainer=True))
    for rnd in (1, 2):
        for i, t in enumerate(trainers):
            rec(f"commit r{rnd} #{i}", coord.commit(t, job_id, rnd, h(f"{rnd}:{i}"), 10 + i))
        rec(f"propose r{rnd}", coord.propose(trainers[0], job_id, rnd, h(f"agg{rnd}"), []))
    assert coord.job_state(job_id).phase == Phase.DONE
    return out


@pytest.fixture(scope="module")
def side_by_side(anvil):
    """The same scenario on a fresh in-process chain and on a pristine anvil node.

    Not the session node: other tests have moved its nonces, and both backends must
    deploy to the same addresses so that every calldata byte (hence gas) is identical.
    """
    accounts = dev_accounts(5)
    with AnvilNode(accounts=5) as node:
        local = _scenario(InProcessChain(), accounts)
        remote = _scenario(RpcChain(node.url), accounts)
    assert local[0][1].contract_address == remote[0][1].contract_address
    return local, remote


@pytest.mark.anvil
def test_same_transactions_use_identical_gas_on_both_backends(side_by_side):
    local, remote = side_by_side
    assert len(local) == len(remote) == 2 + 10 + 1 + 4 + 8 + 2
    for (label, a, ea), (_, b, eb) in zip(local, remote, strict=True):
        assert a.input == b.input, label
        assert ea == eb, label  # decoded identically (deadlines aside: clocks differ)
    mismatches = [
        (label, a.gas_used, b.gas_used)
        for (label, a, _), (_, b, _) in zip(local, remote, strict=True)
        if a.gas_used != b.gas_used and not label.startswith("deploy")
    ]
    assert not mismatches, f"gas differs (label, in-process, anvil): {mismatches}"
    gas = {label: r.gas_used for label, r, _ in local}
    # steady state: round 2 (settles round 1), not the phase-closing commit
    for label in ("commit r2 #0", "commit r2 #1", "commit r2 #2"):
        assert gas[label] <= 50_000, f"steady-state commit costs {gas[label]} gas"


@pytest.mark.anvil
def test_deployment_gas_is_identical_on_both_backends(side_by_side):
    local, remote = side_by_side
    assert [(label, a.gas_used) for label, a, _ in local[:2]] == [
        (label, b.gas_used) for label, b, _ in remote[:2]
    ]


def test_unreachable_node_raises_chain_unavailable():
    with pytest.raises(ChainUnavailable) as e:
        RpcChain("http://127.0.0.1:1")
    message = str(e.value)
    assert "\n" not in message
    assert "http://127.0.0.1:1" in message
    assert message.startswith("cannot reach the EVM node")


def test_anvil_is_installed():
    assert find_anvil() is not None, "anvil not installed: run `npm ci`"
