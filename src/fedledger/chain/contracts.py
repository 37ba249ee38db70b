"""Typed clients for the coordinator and the reward token, over any `Chain`.

Method names mirror the contract's functions one to one, and event names are
the contract's, so the contract, this client, the CLI and the docs use one
name per concept.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Self

from eth_account.signers.local import LocalAccount

from fedledger.chain.abi import ContractABI
from fedledger.chain.artifacts import load_artifact
from fedledger.chain.base import Chain, LogEntry, Receipt
from fedledger.errors import ChainError, TransactionReverted


class Phase(IntEnum):
    NONE = 0
    OPEN = 1
    AGGREGATING = 2
    DONE = 3
    ABORTED = 4


class RoundStatus(IntEnum):
    PENDING = 0
    FINALIZED = 1
    FAILED = 2


@dataclass(frozen=True)
class Event:
    """A decoded contract event with its place in the chain."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: str
    log_index: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "args": {k: jsonable(v) for k, v in self.args.items()},
            "address": self.address,
            "block_number": self.block_number,
            "tx_hash": self.tx_hash,
            "log_index": self.log_index,
        }


def jsonable(v: Any) -> Any:
    """Decoded ABI values as JSON: bytes as 0x-hex, tuples as lists."""
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    return v


@dataclass(frozen=True)
class JobParams:
    """Arguments of `create_job` (the contract's JobParams struct)."""

    token: str
    spec_hash: bytes
    initial_model: bytes
    rounds: int
    min_commits: int
    quorum: int
    commit_window: int
    aggregate_window: int
    max_failures: int
    stake: int
    reward_per_round: int
    slash_bps: int
    max_flags: int
    committee: list[str]
    allowlist: list[str]
    scored: bool = False
    validator_fee_bps: int = 0
    score_tolerance: int = 0
    min_reputation: int = 0


@dataclass(frozen=True)
class JobState:
    phase: Phase
    round: int
    deadline: int
    commits: int
    trainers: int
    examples: int
    version: int


@dataclass(frozen=True)
class TrainerState:
    registered: bool
    excluded: bool
    settled: bool
    last_round: int
    examples: int
    slot: int
    accrued: int
    flags: int
    score: int
    rounds: int
    ejected: bool
    folded: bool


@dataclass(frozen=True)
class RoundResult:
    """A round's outcome as the contract keeps it for settlement."""

    status: RoundStatus
    accepted_commits: int
    accepted_weight: int  # examples, or the sum of consensus scores in a scored job
    reward: int  # what the round's trainers share
    scored: bool
    aggregate: bytes


@dataclass(frozen=True)
class Reputation:
    """An account's record over the jobs it has withdrawn from after they ended."""

    score: int  # 0..SCORE_ONE, mean of per-job score EMAs weighted by scored rounds
    rounds: int
    scored_rounds: int
    flags: int
    jobs: int


SCORE_ONE = 10_000  # the contract's full score: the round's best contribution
SCORES_PER_WORD = 16


def pack_scores(scores: Sequence[int]) -> list[int]:
    """Scores in commit order, 16 bits each and 16 to a word, as `propose` takes them."""
    words = [0] * (-(-len(scores) // SCORES_PER_WORD))
    for slot, score in enumerate(scores):
        if not 0 <= score <= SCORE_ONE:
            raise ValueError(f"score {score} for slot {slot} is outside 0..{SCORE_ONE}")
        words[slot // SCORES_PER_WORD] |= score << (16 * (slot % SCORES_PER_WORD))
    return words


def unpack_scores(words: Sequence[int], count: int) -> list[int]:
    """The first `count` scores of packed words (inverse of `pack_scores`)."""
    return [(words[s // SCORES_PER_WORD] >> (16 * (s % SCORES_PER_WORD))) & 0xFFFF for s in range(count)]


class Contract:
    """A deployed contract: encode, send, call, decode — nothing else."""

    artifact_name: str = ""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = address
        self.abi = ContractABI(load_artifact(self.artifact_name).abi)
        #: the block reads see; None is the latest (see `at`)
        self.block: int | None = None

    def at(self, block: int | None) -> Self:
        """The same contract whose reads see the state after `block` (None: the latest)."""
        view = copy.copy(self)
        view.block = block
        return view

    @classmethod
    def deploy(cls, chain: Chain, deployer: LocalAccount, *ctor_args: Any) -> Contract:
        artifact = load_artifact(cls.artifact_name)
        abi = ContractABI(artifact.abi)
        receipt = chain.deploy(deployer, artifact.bytecode, abi.encode_constructor(*ctor_args))
        if receipt.contract_address is None:
            raise ChainError(f"deploying {cls.artifact_name} returned no contract address")
        return cls(chain, receipt.contract_address)

    def transact(self, sender: LocalAccount, fn: str, *args: Any, gas: int | None = None) -> Receipt:
        data = self.abi.functions[fn].encode_call(*args)
        try:
            return self.chain.send(sender, self.address, data, gas=gas)
        except TransactionReverted as exc:
            raise TransactionReverted(exc.reason, function=fn) from None

    def read(self, fn: str, *args: Any) -> Any:
        f = self.abi.functions[fn]
        try:
            return f.decode_result(self.chain.call(self.address, f.encode_call(*args), block=self.block))
        except TransactionReverted as exc:
            raise TransactionReverted(exc.reason, function=fn) from None

    def decode(self, log: LogEntry) -> Event | None:
        if log.address != self.address or not log.topics:
            return None
        ev = self.abi.events.get(log.topics[0])
        if ev is None:
            return None
        return Event(
            name=ev.name,
            args=ev.decode(list(log.topics), log.data),
            address=log.address,
            block_number=log.block_number,
            tx_hash=log.tx_hash,
            log_index=log.log_index,
        )

    def events_in(self, receipt: Receipt) -> list[Event]:
        return [e for e in (self.decode(lg) for lg in receipt.logs) if e is not None]

    def events(self, from_block: int = 0, to_block: int | None = None) -> list[Event]:
        logs = self.chain.get_logs(self.address, from_block, to_block)
        return [e for e in (self.decode(lg) for lg in logs) if e is not None]


class RewardToken(Contract):
    artifact_name = "reward_token"

    def mint(self, minter: LocalAccount, to: str, amount: int) -> Receipt:
        return self.transact(minter, "mint", to, amount)

    def approve(self, owner: LocalAccount, spender: str, amount: int) -> Receipt:
        return self.transact(owner, "approve", spender, amount)

    def transfer(self, owner: LocalAccount, to: str, amount: int) -> Receipt:
        return self.transact(owner, "transfer", to, amount)

    def balance_of(self, account: str) -> int:
        return int(self.read("balanceOf", account))

    def total_supply(self) -> int:
        return int(self.read("totalSupply"))


def flag_mask(excluded: Sequence[str], flagged: Sequence[str]) -> int:
    """Bit i set iff excluded[i] is flagged: how `propose` carries flags on chain."""
    position = {a.lower(): i for i, a in enumerate(excluded)}
    mask = 0
    for a in flagged:
        if a.lower() not in position:
            raise ValueError(f"flagged trainer {a} is not in the excluded list")
        mask |= 1 << position[a.lower()]
    return mask


class Coordinator(Contract):
    artifact_name = "coordinator"

    @classmethod
    def connect(cls, rpc_url: str, address: str) -> Coordinator:
        """The coordinator at `address` on the node at `rpc_url`; ChainError if no contract is there."""
        from eth_abi.exceptions import DecodingError
        from eth_utils.address import is_address

        from fedledger.chain.rpc import RpcChain

        if not is_address(address):
            raise ChainError(f"{address!r} is not a contract address (0x followed by 40 hex digits)")
        chain = RpcChain(rpc_url)
        if not chain.code_at(address):
            raise ChainError(
                f"no contract at {address} on the node at {rpc_url} (chain id {chain.chain_id}): "
                "wrong address or wrong chain?"
            )
        coordinator = cls(chain, address)
        try:
            coordinator.job_count()
        except (TransactionReverted, DecodingError):
            raise ChainError(
                f"the contract at {address} on chain id {chain.chain_id} is not a fedledger coordinator "
                "(is it the token's address?)"
            ) from None
        return coordinator

    def check_job(self, job_id: int) -> None:
        """ChainError unless job `job_id` exists here."""
        count = self.job_count()
        if not 1 <= job_id <= count:
            raise ChainError(f"job {job_id} does not exist on {self.address} ({count} jobs)")

    # -- transactions ----------------------------------------------------------------------

    def create_job(self, sponsor: LocalAccount, params: JobParams) -> tuple[int, Receipt]:
        receipt = self.transact(sponsor, "create_job", params.__dict__)
        created = [e for e in self.events_in(receipt) if e.name == "JobCreated"]
        return int(created[0].args["job_id"]), receipt

    def register(self, account: LocalAccount, job_id: int, *, as_trainer: bool) -> Receipt:
        return self.transact(account, "register", job_id, as_trainer)

    def register_with_key(self, account: LocalAccount, job_id: int, public_key: bytes) -> Receipt:
        """Joins a secure-aggregation job as a trainer and publishes its X25519 key."""
        return self.transact(account, "register_with_key", job_id, public_key)

    def reveal(self, trainer: LocalAccount, job_id: int, round: int, commitment: bytes) -> Receipt:
        """Posts the commitment of this committer's revealed shares for the aggregating round."""
        return self.transact(trainer, "reveal", job_id, round, commitment)

    def commit(
        self, trainer: LocalAccount, job_id: int, round: int, commitment: bytes, num_examples: int
    ) -> Receipt:
        return self.transact(trainer, "commit", job_id, round, commitment, num_examples)

    def propose(
        self,
        validator: LocalAccount,
        job_id: int,
        round: int,
        aggregate: bytes,
        excluded: list[str],
        flagged: Sequence[str] = (),
        scores: Sequence[int] = (),
        micro_epsilon: int = 0,
    ) -> Receipt:
        """`flagged` must be a subset of `excluded`; it becomes the bitmask over sorted `excluded`.
        `scores` are one per committer in commit order (scored jobs only), packed here.
        `micro_epsilon`: a DP job's cumulative ε after this round, in 10⁻⁶ (0 without DP)."""
        ordered = sorted(excluded, key=lambda a: int(a, 16))
        mask = flag_mask(ordered, flagged)
        words = pack_scores(scores)
        return self.transact(
            validator, "propose", job_id, round, aggregate, ordered, mask, words, micro_epsilon
        )

    def report_dissent(self, caller: LocalAccount, job_id: int, round: int, validator: str) -> Receipt:
        return self.transact(caller, "report_dissent", job_id, round, validator)

    def advance(self, caller: LocalAccount, job_id: int, *, gas: int | None = None) -> Receipt:
        """`gas` skips estimation: a node that mines only on demand estimates against its last
        block, whose timestamp may not yet be past the deadline that the new block will be."""
        return self.transact(caller, "advance", job_id, gas=gas)

    def withdraw(self, account: LocalAccount, job_id: int) -> Receipt:
        return self.transact(account, "withdraw", job_id)

    def reclaim(self, sponsor: LocalAccount, job_id: int) -> Receipt:
        return self.transact(sponsor, "reclaim", job_id)

    # -- views -----------------------------------------------------------------------------

    def job_count(self) -> int:
        return int(self.read("job_count"))

    def job_state(self, job_id: int) -> JobState:
        s = self.read("job_state", job_id)
        return JobState(phase=Phase(s["phase"]), **{k: int(v) for k, v in s.items() if k != "phase"})

    def epsilon_spent(self, job_id: int) -> int:
        """Micro-ε (10⁻⁶) the job has spent so far, as its last quorum recorded it."""
        return int(self.read("epsilon_spent", job_id))

    def public_key(self, job_id: int, account: str) -> bytes:
        """The account's X25519 key in the job's key directory (32 zero bytes if none)."""
        return bytes(self.read("public_key", job_id, account))

    def job_config(self, job_id: int) -> dict[str, Any]:
        return dict(self.read("job_config", job_id))

    def global_model(self, job_id: int) -> bytes:
        return bytes(self.read("global_model", job_id))

    def trainer_state(self, job_id: int, account: str) -> TrainerState:
        return TrainerState(**self.read("trainer_state", job_id, account))

    def round_result(self, job_id: int, round: int) -> RoundResult:
        word, aggregate = self.read("round_result", job_id, round)
        return RoundResult(
            status=RoundStatus(word["status"]),
            accepted_commits=int(word["accepted_commits"]),
            accepted_weight=int(word["accepted_weight"]),
            reward=int(word["reward"]),
            scored=bool(word["scored"]),
            aggregate=bytes(aggregate),
        )

    def claimable(self, job_id: int, account: str) -> int:
        return int(self.read("claimable", job_id, account))

    def fees_of(self, job_id: int, account: str) -> int:
        return int(self.read("fees_of", job_id, account))

    def consensus_score(self, job_id: int, round: int, slot: int) -> int:
        return int(self.read("consensus_score", job_id, round, slot))

    def reputation(self, account: str) -> Reputation:
        return Reputation(**{k: int(v) for k, v in self.read("reputation", account).items()})

    def stake_of(self, job_id: int, account: str) -> int:
        return int(self.read("stake_of", job_id, account))

    def pool(self, job_id: int) -> int:
        return int(self.read("pool", job_id))

    def is_validator(self, job_id: int, account: str) -> bool:
        return bool(self.read("is_validator", job_id, account))

    def data_registry(self) -> DataRegistry:
        """The registry this coordinator's trainers commit their data to (bound at deployment)."""
        return DataRegistry(self.chain, str(self.read("data_registry")))


class DataRegistry(Contract):
    """Each trainer's salted commitment to its local dataset, once per job (data_registry.vy)."""

    artifact_name = "data_registry"

    def commit_data(
        self, trainer: LocalAccount, job_id: int, *, root: bytes, rows: int, schema_hash: bytes
    ) -> Receipt:
        return self.transact(trainer, "commit_data", job_id, root, rows, schema_hash)

    def coordinator(self) -> str:
        return str(self.read("coordinator"))

    def data_commitment(self, job_id: int, trainer: str) -> tuple[bytes, int, bytes] | None:
        """(root, rows, schema hash) the trainer committed for the job, or None if it has not."""
        c = self.read("data_commitment", job_id, trainer)
        if int(c["rows"]) == 0:
            return None
        return bytes(c["root"]), int(c["rows"]), bytes(c["schema_hash"])


@dataclass(frozen=True)
class Deployment:
    token: RewardToken
    coordinator: Coordinator
    data_registry: DataRegistry

    @property
    def contracts(self) -> list[Contract]:
        """Every contract of the deployment, as a chain export lists them."""
        return [self.coordinator, self.data_registry, self.token]


def deploy_contracts(chain: Chain, deployer: LocalAccount) -> Deployment:
    """Deploys a fresh reward token (deployer is minter), data registry and coordinator.

    The registry goes first: the coordinator's constructor binds it.
    """
    token = RewardToken.deploy(chain, deployer, "fedledger reward", "FED")
    registry = DataRegistry.deploy(chain, deployer)
    assert isinstance(registry, DataRegistry)
    coordinator = Coordinator.deploy(chain, deployer, registry.address)
    assert isinstance(token, RewardToken) and isinstance(coordinator, Coordinator)
    return Deployment(token=token, coordinator=coordinator, data_registry=registry)
