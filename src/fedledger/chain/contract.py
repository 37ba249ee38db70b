"""A deployed contract (encode, send, call, decode) and the two small ones built on it.

The reward token and the data registry are thin: a few transactions and views each.
The coordinator, which carries the protocol, has its own module (`coordinator.py`).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Self

from eth_account.signers.local import LocalAccount

from fedledger.chain.abi import ContractABI
from fedledger.chain.artifacts import load_artifact
from fedledger.chain.base import Chain, LogEntry, PendingReceipt, Receipt
from fedledger.chain.types import Event
from fedledger.errors import ChainError, TransactionReverted

#: decoded logs a contract keeps (`Contract.decode`): a few rounds' worth of a large job's events
_DECODED = 4096


class Contract:
    """A deployed contract: encode, send, call, decode — nothing else."""

    artifact_name: str = ""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = address
        self.abi = ContractABI(load_artifact(self.artifact_name).abi)
        self._decoded: dict[LogEntry, Event] = {}  # shared with every `at` view: keyed by the log itself
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

    def transact_later(
        self, sender: LocalAccount, fn: str, *args: Any, gas: int | None = None
    ) -> PendingReceipt:
        """`transact` without waiting (`Chain.submit`); a revert names `fn` when `result()` raises it."""
        pending = self.chain.submit(sender, self.address, self.abi.functions[fn].encode_call(*args), gas=gas)

        def wait() -> Receipt:
            try:
                return pending.result()
            except TransactionReverted as exc:
                raise TransactionReverted(exc.reason, function=fn) from None

        return PendingReceipt(wait)

    def simulate(self, sender: LocalAccount, fn: str, *args: Any) -> Any:
        """What a transaction would return if sent now by `sender` (an eth_call from it)."""
        f = self.abi.functions[fn]
        try:
            return f.decode_result(self.chain.call(self.address, f.encode_call(*args), sender=sender.address))
        except TransactionReverted as exc:
            raise TransactionReverted(exc.reason, function=fn) from None

    def read(self, fn: str, *args: Any) -> Any:
        f = self.abi.functions[fn]
        try:
            return f.decode_result(self.chain.call(self.address, f.encode_call(*args), block=self.block))
        except TransactionReverted as exc:
            raise TransactionReverted(exc.reason, function=fn) from None

    def decode(self, log: LogEntry) -> Event | None:
        """The event `log` records, if this contract emitted it.

        A log is met more than once (in its receipt, then in every reader's poll), and ABI
        decoding is pure Python: the last `_DECODED` decodings are kept, keyed by the whole log,
        so a log whose place or bytes differ is decoded afresh."""
        hit = self._decoded.get(log)
        if hit is not None:
            return hit
        if log.address != self.address or not log.topics:
            return None
        ev = self.abi.events.get(log.topics[0])
        if ev is None:
            return None
        event = Event(
            name=ev.name,
            args=ev.decode(list(log.topics), log.data),
            address=log.address,
            block_number=log.block_number,
            tx_hash=log.tx_hash,
            log_index=log.log_index,
        )
        if len(self._decoded) >= _DECODED:
            with contextlib.suppress(RuntimeError, StopIteration, KeyError):  # another thread's at once
                del self._decoded[next(iter(self._decoded))]  # the oldest
        self._decoded[log] = event
        return event

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


class Sampler(Contract):
    """Draws sampling jobs' trainers and committees, one seat at a time (sampler.vy)."""

    artifact_name = "sampler"

    def enrol(self, trainer: LocalAccount, job_id: int) -> Receipt:
        return self.transact(trainer, "enrol", job_id)

    def start(self, sponsor: LocalAccount, job_id: int) -> Receipt:
        """Draws the open round of a job whose round opened before anyone enrolled."""
        return self.transact(sponsor, "start", job_id)

    def draw_state(self, job_id: int) -> tuple[int, int, int, int, int]:
        """(round, seed, enrolled, clients, validators) of the job's latest draw."""
        r, seed, n, clients, validators = self.read("draw_state", job_id)
        return int(r), int(seed), int(n), int(clients), int(validators)

    def enrolled(self, job_id: int) -> int:
        return int(self.read("enrolled", job_id))

    def trainer_at(self, job_id: int, index: int) -> str:
        return str(self.read("trainer_at", job_id, index))

    def seat(self, job_id: int, round: int, *, committee: bool, seat: int) -> str:
        return str(self.read("seat", job_id, round, committee, seat))

    def seat_index(self, seed: int, *, committee: bool, n: int, seat: int) -> int:
        return int(self.read("seat_index", seed, committee, n, seat))


class DataRegistry(Contract):
    """Each trainer's salted commitment to its local dataset, once per job, and under
    record-level DP the ε its records have spent (data_registry.vy)."""

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

    def spend_privacy(self, trainer: LocalAccount, job_id: int, round: int, micro_epsilon: int) -> Receipt:
        return self.transact(trainer, "spend_privacy", job_id, round, micro_epsilon)

    def privacy_spent(self, job_id: int, trainer: str) -> tuple[int, int]:
        """(round, cumulative micro-ε) the trainer last recorded for the job; (0, 0) if none."""
        p = self.read("privacy_spent", job_id, trainer)
        return int(p["round"]), int(p["micro_epsilon"])
