"""optimistic.vy's caps and its defence in depth, each reached for real.

- 128 proposers fill a job's list; a 129th is refused, but a listed proposer may re-bond.
- A round's attempt counter is 8 bits: 255 real strikes (false offsets refuted from chunk 0,
  the cheapest proof) bring a round to its last attempt.
- "not the live claim" guards against a disputes contract striking a claim optimistic.vy
  has moved past; the real disputes.vy cannot (every claim moved past is struck or retired
  there), so a double (disputes_double.vy) bound to a second optimistic.vy plays it.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

from coordinator_harness import World
from eth_account import Account
from eth_utils import keccak
from optimistic_harness import BOND, OptimisticJob, reverts
from vyper import compile_code

from fedledger.aggregation.chunk_proof import first_piece
from fedledger.chain.abi import ContractABI
from fedledger.chain.contracts import Phase
from fedledger.chain.optimistic import Optimistic, claim_id
from fedledger.codec.commitment import num_chunks

DOUBLE = Path(__file__).with_name("disputes_double.vy")


@functools.cache
def _compiled() -> dict[str, Any]:
    out: dict[str, Any] = compile_code(DOUBLE.read_text(), output_formats=["abi", "bytecode"])
    return out


def test_a_job_takes_128_proposers_and_a_listed_one_may_rebond(world: World) -> None:
    j = OptimisticJob(world, params=dict(commit_window=10_000))  # ~400 blocks of bonding
    fresh = [Account.from_key(keccak(text=f"proposer {i}")) for i in range(129)]
    j.bond(*fresh[:128])
    assert len(j.o.proposers(j.job_id)) == 128
    with reverts("optimistic: too many proposers"):
        j.bond(fresh[128])
    j.commit_all()
    drawn = next(a for a in fresh if a.address == j.o.drawn(j.job_id, 1, 0))
    lie = j.round.flipped(1, 1)
    j.o.propose(drawn, j.job_id, 1, lie.claim)
    j.challenge(world.outsider, lie, 1)
    assert j.o.bond_of(j.job_id, drawn.address) == 0
    j.o.bond(drawn, j.job_id)  # already listed: the cap does not apply
    assert j.o.bond_of(j.job_id, drawn.address) == BOND
    assert len(j.o.proposers(j.job_id)) == 128


def test_a_round_takes_255_claims_and_no_256th_that_could_not_be_struck(world: World) -> None:
    """Regression: a claim at attempt 255 used to be posted, then refused every proof ("too
    many attempts" in `strike`), so a false claim stood and settled; and settling it carried
    the attempt into the record's escalated bit. Now the 256th claim is refused instead."""
    j = OptimisticJob(world, aggregate_window=5_000)
    v, r = world.validators[0], j.round
    j.bond(v)  # the only proposer: drawn at every attempt
    j.commit_all()
    lie = replace(r.claim, previous_offset=r.claim.previous_offset + 8)
    refute = (lie.num_updates, num_chunks(len(r.previous)), first_piece(r.previous))
    for attempt in range(255):
        if attempt:
            j.o.bond(v, j.job_id)
        j.o.propose(v, j.job_id, 1, lie)
        j.disputes.transact(world.outsider, "prove_wrong_offset", j.cid(attempt), lie.as_tuple(), [], *refute)
    assert j.o.round_record(j.job_id, 1).attempt == 255
    assert world.coord.job_state(j.job_id).phase == Phase.AGGREGATING
    j.o.bond(v, j.job_id)
    for claim in (lie, r.claim):  # not even the honest claim: no proof could reach it
        with reverts("optimistic: too many attempts"):
            j.o.propose(v, j.job_id, 1, claim)
    world.expire(j.job_id)
    world.coord.advance(world.outsider, j.job_id)  # the round fails; no claim stood unchallengeable
    assert world.coord.job_state(j.job_id).round == 2
    assert world.coord.global_model(j.job_id) == r.claim.previous_root
    record = j.o.round_record(j.job_id, 1)
    assert (record.attempt, record.escalated, record.posted) == (255, False, False)


def test_a_strike_for_a_claim_that_is_not_live_is_refused(world: World) -> None:
    out = _compiled()
    abi = ContractABI(out["abi"])
    bytecode = bytes.fromhex(out["bytecode"].removeprefix("0x"))
    double = world.chain.deploy(world.sponsor, bytecode).contract_address
    assert double is not None
    o = Optimistic.deploy(world.chain, world.sponsor, world.coord.address, double)
    assert isinstance(o, Optimistic)

    def strike_as(cid: int) -> None:
        call = abi.functions["strike_as"].encode_call(cid, world.outsider.address)
        world.chain.send(world.outsider, double, call)

    j = OptimisticJob(world, instance=o)
    j.bond(*world.validators)
    j.commit_all()
    proposer = j.drawn()
    j.o.propose(proposer, j.job_id, 1, j.round.claim)
    for stale in (claim_id(j.job_id, 1, 1), claim_id(j.job_id, 1, 7)):
        with reverts("optimistic: not the live claim"):
            strike_as(stale)
    assert j.o.bond_of(j.job_id, proposer.address) == BOND
    strike_as(claim_id(j.job_id, 1, 0))  # the live one
    assert j.o.bond_of(j.job_id, proposer.address) == 0
    with reverts("optimistic: not the live claim"):  # struck: the round moved to attempt 1
        strike_as(claim_id(j.job_id, 1, 0))
