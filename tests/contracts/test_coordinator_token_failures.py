"""A token that returns false instead of reverting: every '... transfer failed' path."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from coordinator_harness import World, h
from vyper import compile_code

from fedledger.chain.abi import ContractABI
from fedledger.chain.contracts import Phase
from fedledger.errors import TransactionReverted

SOURCE = Path(__file__).with_name("false_token.vy")


@functools.cache
def _compiled() -> dict:
    return compile_code(SOURCE.read_text(), output_formats=["abi", "bytecode"])


class FalseToken:
    def __init__(self, chain, deployer):
        out = _compiled()
        self.abi = ContractABI(out["abi"])
        self.chain = chain
        self.address = chain.deploy(
            deployer, bytes.fromhex(out["bytecode"].removeprefix("0x"))
        ).contract_address

    def set_fail(self, sender, fail: bool) -> None:
        self.chain.send(sender, self.address, self.abi.functions["set_fail"].encode_call(fail))


@pytest.fixture
def false_token(world: World) -> FalseToken:
    return FalseToken(world.chain, world.sponsor)


def test_pool_transfer_failed(world, false_token):
    false_token.set_fail(world.sponsor, True)
    with pytest.raises(TransactionReverted) as e:
        world.create(token=false_token.address)
    assert e.value.reason == "coordinator: pool transfer failed"
    assert world.coord.job_count() == 0


def test_stake_transfer_failed(world, false_token):
    job_id = world.create(token=false_token.address)
    false_token.set_fail(world.sponsor, True)
    with pytest.raises(TransactionReverted) as e:
        world.coord.register(world.trainers[0], job_id, as_trainer=True)
    assert e.value.reason == "coordinator: stake transfer failed"
    assert world.coord.trainer_state(job_id, world.trainers[0].address).registered is False


def test_withdraw_transfer_failed(world, false_token):
    job_id = world.job(n_trainers=2, rounds=1, max_failures=0, token=false_token.address)
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)
    assert world.coord.job_state(job_id).phase == Phase.ABORTED
    false_token.set_fail(world.sponsor, True)
    with pytest.raises(TransactionReverted) as e:
        world.coord.withdraw(world.trainers[0], job_id)
    assert e.value.reason == "coordinator: transfer failed"
    assert world.coord.stake_of(job_id, world.trainers[0].address) == 1_000  # nothing lost
    false_token.set_fail(world.sponsor, False)
    world.coord.withdraw(world.trainers[0], job_id)
    assert world.coord.stake_of(job_id, world.trainers[0].address) == 0


def test_reclaim_transfer_failed(world, false_token):
    job_id = world.job(n_trainers=2, rounds=1, max_failures=0, token=false_token.address)
    world.expire(job_id)
    world.coord.advance(world.outsider, job_id)
    false_token.set_fail(world.sponsor, True)
    with pytest.raises(TransactionReverted) as e:
        world.coord.reclaim(world.sponsor, job_id)
    assert e.value.reason == "coordinator: transfer failed"
    assert world.coord.pool(job_id) == 10_000


def test_reward_withdraw_transfer_failed_keeps_accrual(world, false_token):
    job_id = world.job(n_trainers=2, rounds=2, token=false_token.address)
    world.commit(job_id, world.trainers[0], 1)
    world.commit(job_id, world.trainers[1], 1)
    world.finalize(job_id, h("A"))
    false_token.set_fail(world.sponsor, True)
    with pytest.raises(TransactionReverted) as e:
        world.coord.withdraw(world.trainers[0], job_id)
    assert e.value.reason == "coordinator: transfer failed"
    assert world.coord.claimable(job_id, world.trainers[0].address) == 5_000
