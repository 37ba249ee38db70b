"""reward_token.vy: ERC-20 behaviour, every revert string, Transfer and Approval events."""

from __future__ import annotations

import pytest
from coordinator_harness import MAX_UINT256, ZERO_ADDRESS

from fedledger.chain.contracts import RewardToken
from fedledger.errors import TransactionReverted


@pytest.fixture
def token(chain, accounts) -> RewardToken:
    t = RewardToken.deploy(chain, accounts[0], "fedledger reward", "FED")
    assert isinstance(t, RewardToken)
    return t


def _ev(token, receipt):
    return [(e.name, e.args) for e in token.events_in(receipt)]


def test_metadata_and_minter(token, accounts):
    assert token.read("name") == "fedledger reward"
    assert token.read("symbol") == "FED"
    assert token.read("decimals") == 18
    assert token.read("minter") == accounts[0].address
    assert token.total_supply() == 0


def test_mint_emits_transfer_from_zero(token, accounts):
    r = token.mint(accounts[0], accounts[1].address, 500)
    assert _ev(token, r) == [
        ("Transfer", {"sender": ZERO_ADDRESS, "receiver": accounts[1].address, "value": 500})
    ]
    assert token.balance_of(accounts[1].address) == 500
    assert token.total_supply() == 500


def test_only_minter_mints(token, accounts):
    with pytest.raises(TransactionReverted) as e:
        token.mint(accounts[1], accounts[1].address, 1)
    assert e.value.reason == "reward_token: caller is not the minter"
    assert token.total_supply() == 0


def test_mint_to_zero_address(token, accounts):
    with pytest.raises(TransactionReverted) as e:
        token.mint(accounts[0], ZERO_ADDRESS, 1)
    assert e.value.reason == "reward_token: mint to zero address"


def test_transfer(token, accounts):
    token.mint(accounts[0], accounts[1].address, 100)
    r = token.transfer(accounts[1], accounts[2].address, 40)
    assert _ev(token, r) == [
        ("Transfer", {"sender": accounts[1].address, "receiver": accounts[2].address, "value": 40})
    ]
    assert token.balance_of(accounts[1].address) == 60
    assert token.balance_of(accounts[2].address) == 40
    assert token.total_supply() == 100


def test_transfer_insufficient_balance(token, accounts):
    token.mint(accounts[0], accounts[1].address, 100)
    with pytest.raises(TransactionReverted) as e:
        token.transfer(accounts[1], accounts[2].address, 101)
    assert e.value.reason == "reward_token: insufficient balance"
    assert token.balance_of(accounts[1].address) == 100


def test_transfer_to_zero_address(token, accounts):
    token.mint(accounts[0], accounts[1].address, 100)
    with pytest.raises(TransactionReverted) as e:
        token.transfer(accounts[1], ZERO_ADDRESS, 1)
    assert e.value.reason == "reward_token: transfer to zero address"


def test_approve_emits_approval_and_sets_allowance(token, accounts):
    r = token.approve(accounts[1], accounts[2].address, 77)
    assert _ev(token, r) == [
        ("Approval", {"owner": accounts[1].address, "spender": accounts[2].address, "value": 77})
    ]
    assert token.read("allowance", accounts[1].address, accounts[2].address) == 77
    token.approve(accounts[1], accounts[2].address, 5)  # overwrite, not add
    assert token.read("allowance", accounts[1].address, accounts[2].address) == 5


def test_transfer_from_spends_allowance(token, accounts):
    owner, spender, to = accounts[1], accounts[2], accounts[3]
    token.mint(accounts[0], owner.address, 100)
    token.approve(owner, spender.address, 30)
    r = token.transact(spender, "transferFrom", owner.address, to.address, 20)
    assert _ev(token, r) == [("Transfer", {"sender": owner.address, "receiver": to.address, "value": 20})]
    assert token.read("allowance", owner.address, spender.address) == 10
    assert token.balance_of(to.address) == 20
    with pytest.raises(TransactionReverted) as e:
        token.transact(spender, "transferFrom", owner.address, to.address, 11)
    assert e.value.reason == "reward_token: insufficient allowance"
    assert token.read("allowance", owner.address, spender.address) == 10


def test_infinite_allowance_is_not_spent(token, accounts):
    owner, spender = accounts[1], accounts[2]
    token.mint(accounts[0], owner.address, 100)
    token.approve(owner, spender.address, MAX_UINT256)
    token.transact(spender, "transferFrom", owner.address, spender.address, 60)
    assert token.read("allowance", owner.address, spender.address) == MAX_UINT256


def test_transfer_from_insufficient_balance_with_allowance(token, accounts):
    owner, spender = accounts[1], accounts[2]
    token.mint(accounts[0], owner.address, 10)
    token.approve(owner, spender.address, 50)
    with pytest.raises(TransactionReverted) as e:
        token.transact(spender, "transferFrom", owner.address, spender.address, 11)
    assert e.value.reason == "reward_token: insufficient balance"
    assert token.read("allowance", owner.address, spender.address) == 50  # reverted: not spent


def test_transfer_and_transfer_from_return_true(token, accounts):
    token.mint(accounts[0], accounts[1].address, 10)
    token.approve(accounts[1], accounts[2].address, 10)
    assert token.abi.functions["transfer"].outputs[0]["type"] == "bool"
    # the return value is what the coordinator checks ("... transfer failed" otherwise)
    r = token.transfer(accounts[1], accounts[3].address, 1)
    assert r.gas_used > 21_000
    r = token.transact(accounts[2], "transferFrom", accounts[1].address, accounts[3].address, 1)
    assert [e.name for e in token.events_in(r)] == ["Transfer"]
    assert token.balance_of(accounts[3].address) == 2


def test_a_log_met_again_is_the_same_event_and_a_changed_log_is_decoded_afresh(token, accounts):
    """`Contract.decode` keeps its decodings, keyed by the whole log (its place and its bytes)."""
    from dataclasses import replace

    r = token.mint(accounts[0], accounts[1].address, 500)
    (log,) = r.logs
    first = token.decode(log)
    assert first is not None and token.decode(log) is first
    assert [e for e in token.events() if e.tx_hash == log.tx_hash] == [first]  # the poll's copy
    other = replace(log, data=(501).to_bytes(32, "big"))  # a log whose bytes differ
    again = token.decode(other)
    assert again is not None and again.args["value"] == 501 and first.args["value"] == 500
    assert token.decode(replace(log, address=accounts[2].address)) is None  # not this contract's
