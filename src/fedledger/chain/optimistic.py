"""Clients for optimistic verification: optimistic.vy (bonds, proposals, settling) and disputes.vy (proofs).

A job in optimistic mode names the `Optimistic` contract as its whole committee with quorum 1;
the sponsor then `delegate`s it with `Terms`. Method names are the contracts' one to one. The
claim, pieces and inputs are built by `aggregation/chunk_proof.py`; here they are only encoded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from fedledger.chain.base import Chain, PendingReceipt, Receipt
from fedledger.chain.contract import Contract


class Claim(Protocol):
    """disputes.vy's `Claim` (`aggregation.chunk_proof.Claim`), as its ABI tuple."""

    def as_tuple(self) -> tuple[int | bytes, ...]: ...


class Entry(Protocol):
    """disputes.vy's `Entry` (`aggregation.chunk_proof.Entry`), as its ABI tuple."""

    def as_tuple(self) -> tuple[bytes, int, int, int]: ...


#: (chunk, sibling hashes): disputes.vy's `Piece`
Piece = tuple[bytes, Sequence[bytes]]


def claim_id(job_id: int, round: int, attempt: int) -> int:
    """The id optimistic.vy registers a round's claim under in disputes.vy."""
    return (job_id << 48) | (round << 8) | attempt


@dataclass(frozen=True, kw_only=True)
class Terms:
    """optimistic.vy's `Terms`, field for field: what a sponsor fixes when it delegates a job."""

    rule: int
    trim_num: int
    trim_den: int
    clip_q: int
    num_params: int
    challenge_window: int
    proposal_window: int
    aggregate_window: int
    bond: int
    bounty_bps: int
    escalation_quorum: int

    def as_tuple(self) -> tuple[int, ...]:
        return astuple(self)


@dataclass(frozen=True)
class RoundRecord:
    """A round's live proposal as optimistic.vy holds it (proposer zero: none posted)."""

    proposer: str
    final_at: int
    attempt: int
    escalated: bool
    escalator: str

    @property
    def posted(self) -> bool:
        return int(self.proposer, 16) != 0


def _piece(p: Piece) -> tuple[bytes, list[bytes]]:
    return (p[0], list(p[1]))


def _inputs(inputs: Sequence[tuple[Entry, Piece]]) -> list[tuple[tuple[bytes, int, int, int], Any]]:
    """disputes.vy's `Input`s: each update's entry and its piece."""
    return [(e.as_tuple(), _piece(p)) for e, p in inputs]


class Disputes(Contract):
    """One-chunk fraud proofs (disputes.vy), bound to an `Optimistic` or standalone."""

    artifact_name = "disputes"

    def challenge(
        self,
        caller: LocalAccount,
        claim: Claim,
        cid: int,
        *,
        coordinate: int,
        previous: Piece,
        aggregate: Piece,
        low: int,
        high: int,
        inputs: Sequence[tuple[Entry, Piece]],
        gas: int | None = None,
    ) -> Receipt:
        opening = (cid, claim.as_tuple(), coordinate, _piece(previous), _piece(aggregate), low, high)
        return self.transact(caller, "challenge", *opening, _inputs(inputs), gas=gas)

    def open_challenge(
        self,
        caller: LocalAccount,
        claim: Claim,
        cid: int,
        *,
        coordinate: int,
        previous: Piece,
        aggregate: Piece,
        low: int,
        high: int,
    ) -> tuple[Receipt, int, Any]:
        """Opens a split challenge: (receipt, challenge id, the running tally the next step resupplies).

        The tally is the call's return value, read by executing it first as an eth_call from
        the caller; the id is the one the receipt's `ChallengeOpened` names.
        """
        args = (cid, claim.as_tuple(), coordinate, _piece(previous), _piece(aggregate), low, high)
        _, tally = self.simulate(caller, "open_challenge", *args)
        receipt = self.transact(caller, "open_challenge", *args)
        (opened,) = [e for e in self.events_in(receipt) if e.name == "ChallengeOpened"]
        return receipt, int(opened.args["challenge_id"]), tally

    def add_updates(
        self, caller: LocalAccount, challenge_id: int, tally: Any, inputs: Sequence[tuple[Entry, Piece]]
    ) -> tuple[Receipt, Any]:
        """Folds the next updates into a split challenge: (receipt, the new running tally)."""
        rows = _inputs(inputs)
        after = self.simulate(caller, "add_updates", challenge_id, tally, rows)
        return self.transact(caller, "add_updates", challenge_id, tally, rows), after

    def close_challenge(self, caller: LocalAccount, challenge_id: int, tally: Any, claim: Claim) -> Receipt:
        return self.transact(caller, "close_challenge", challenge_id, tally, claim.as_tuple())

    def prove_wrong_offset(
        self,
        caller: LocalAccount,
        claim: Claim,
        cid: int,
        *,
        entries: Sequence[Entry],
        position: int,
        num_chunks: int,
        first: Piece,
    ) -> Receipt:
        rows = [e.as_tuple() for e in entries]
        args = (cid, claim.as_tuple(), rows, position, num_chunks, _piece(first))
        return self.transact(caller, "prove_wrong_offset", *args)

    def claim_hash(self, cid: int) -> bytes:
        return bytes(self.read("claim_hash", cid))

    def struck(self, cid: int) -> bool:
        return bool(self.read("struck", cid))

    def verifier(self) -> str:
        return str(self.read("verifier"))


class Optimistic(Contract):
    """Bonded proposers, challenge windows and escalation for delegated jobs (optimistic.vy)."""

    artifact_name = "optimistic"

    @classmethod
    def deploy_with_disputes(
        cls, chain: Chain, deployer: LocalAccount, coordinator: str
    ) -> tuple[Optimistic, Disputes]:
        """Deploys disputes.vy, then this contract, whose constructor binds it."""
        disputes = Disputes.deploy(chain, deployer)
        optimistic = cls.deploy(chain, deployer, coordinator, disputes.address)
        assert isinstance(disputes, Disputes) and isinstance(optimistic, Optimistic)
        bound = disputes.verifier()
        if bound.lower() != optimistic.address.lower():
            raise RuntimeError(f"disputes contract bound to {bound}, not to {optimistic.address}")
        return optimistic, disputes

    def disputes(self) -> Disputes:
        return Disputes(self.chain, str(self.read("disputes")))

    def delegate(
        self, sponsor: LocalAccount, job_id: int, terms: Terms, *, named: Sequence[str] = ()
    ) -> Receipt:
        """`named`: the only accounts that may bond (the committee); empty leaves bonding open."""
        return self.transact(sponsor, "delegate", job_id, terms.as_tuple(), list(named))

    def bond(self, proposer: LocalAccount, job_id: int) -> Receipt:
        return self.transact(proposer, "bond", job_id)

    def propose(
        self,
        proposer: LocalAccount,
        job_id: int,
        round: int,
        claim: Claim,
        *,
        excluded: Sequence[str] = (),
        flags: int = 0,
        gas: int | None = None,
    ) -> Receipt:
        """`gas`: send without estimating, for a post that is allowed only once the drawn proposer's
        turn is over (an estimate runs on the latest block, which an idle chain leaves old)."""
        args = (job_id, round, claim.as_tuple(), list(excluded), flags)
        return self.transact(proposer, "propose", *args, gas=gas)

    def settle(
        self,
        caller: LocalAccount,
        job_id: int,
        round: int,
        aggregate: bytes,
        *,
        excluded: Sequence[str] = (),
        flags: int = 0,
        gas: int | None = None,
    ) -> Receipt:
        """Finalises a claim that stood its window, from its result as posted.

        `gas`: send without estimating. Settling is allowed only after the window, and an estimate
        runs on the latest block: on a chain that mines only for transactions (anvil's automine)
        that block can predate the window's end, and the estimate reverts a settle that would pass.
        """
        pending = self.settle_later(caller, job_id, round, aggregate, excluded=excluded, flags=flags, gas=gas)
        return pending.result()

    def settle_later(
        self,
        caller: LocalAccount,
        job_id: int,
        round: int,
        aggregate: bytes,
        *,
        excluded: Sequence[str] = (),
        flags: int = 0,
        gas: int | None = None,
    ) -> PendingReceipt:
        """`settle` without waiting for the receipt (a simulation evaluates the model meanwhile)."""
        args = (job_id, round, aggregate, list(excluded), flags)
        return self.transact_later(caller, "settle", *args, gas=gas)

    def escalate(self, caller: LocalAccount, job_id: int, round: int) -> Receipt:
        return self.transact(caller, "escalate", job_id, round)

    def vote(
        self,
        voter: LocalAccount,
        job_id: int,
        round: int,
        aggregate: bytes,
        *,
        excluded: Sequence[str] = (),
        flags: int = 0,
    ) -> Receipt:
        return self.transact(voter, "vote", job_id, round, aggregate, list(excluded), flags)

    def expire(self, caller: LocalAccount, job_id: int, round: int) -> Receipt:
        return self.transact(caller, "expire", job_id, round)

    def release(self, caller: LocalAccount, job_id: int) -> Receipt:
        return self.transact(caller, "release", job_id)

    def unbond(self, proposer: LocalAccount, job_id: int) -> Receipt:
        return self.transact(proposer, "unbond", job_id)

    def collect(self, account: LocalAccount, token: str) -> Receipt:
        return self.transact(account, "collect", token)

    def terms(self, job_id: int) -> Terms:
        raw = self.read("terms", job_id)
        fields = list(Terms.__dataclass_fields__)
        # a struct decodes as a tuple in process and as a name -> value mapping over JSON-RPC
        values = [raw[f] for f in fields] if isinstance(raw, Mapping) else list(raw)
        return Terms(**{f: int(v) for f, v in zip(fields, values, strict=True)})

    def proposers(self, job_id: int) -> list[str]:
        return [str(a) for a in self.read("proposers", job_id)]

    def drawn(self, job_id: int, round: int, attempt: int) -> str:
        return str(self.read("drawn", job_id, round, attempt))

    def round_record(self, job_id: int, round: int) -> RoundRecord:
        proposer, final_at, attempt, escalated, escalator = self.read("round_record", job_id, round)
        return RoundRecord(str(proposer), int(final_at), int(attempt), bool(escalated), str(escalator))

    def claim_hash(self, cid: int) -> bytes:
        """A live claim's hash (what disputes.vy checks a proof against); zero for any other."""
        return bytes(self.read("claim_hash", cid))

    def bond_of(self, job_id: int, account: str) -> int:
        return int(self.read("bond_of", job_id, account))

    def owed(self, token: str, account: str) -> int:
        return int(self.read("owed", token, account))
