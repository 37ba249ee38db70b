"""The Chain interface: what fedledger needs from an EVM, and nothing more.

Backends move raw bytes (calldata, return data, logs); `abi.py` and the typed
clients turn them into values. Three backends implement it: `InProcessChain`
(py-evm through titanoboa, for tests and audits), `PipelinedChain` (the same EVM in
a second process, the simulations' default) and `RpcChain` (any JSON-RPC node
through web3.py, transactions signed locally). One conformance suite
(tests/integration/test_chain_conformance.py) runs against all three.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedledger.errors import ChainError, TransactionReverted

DEV_MNEMONIC = "test test test test test test test test test test test junk"


@dataclass(frozen=True)
class LogEntry:
    """One event log, located in the chain."""

    address: str
    topics: tuple[bytes, ...]
    data: bytes
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Receipt:
    """A mined transaction: who sent what, where it landed, what it cost and logged."""

    tx_hash: str
    block_number: int
    timestamp: int
    sender: str
    to: str | None
    input: bytes
    gas_used: int
    logs: tuple[LogEntry, ...] = field(default_factory=tuple)
    contract_address: str | None = None
    raw: bytes = b""  # the signed transaction, where the chain keeps it (the in-process one does)
    block_hash: str = ""


class PendingReceipt:
    """A sent transaction whose receipt may not exist yet.

    `result()` waits for the receipt and raises the transaction's `TransactionReverted`
    there, and only there: a caller that sends now and looks later (a trainer's commit
    executing while the next trainer trains) meets a revert at the point where it looks,
    with the same reason a synchronous `send` would have raised. Later calls return (or
    raise) the same thing again.
    """

    def __init__(self, wait: Callable[[], Receipt]) -> None:
        self._wait: Callable[[], Receipt] | None = wait
        self._receipt: Receipt | None = None
        self._error: TransactionReverted | None = None

    @classmethod
    def of(cls, send: Callable[[], Receipt]) -> PendingReceipt:
        """Runs `send` now (a backend that executes in place) and keeps its receipt or revert."""
        try:
            receipt = send()
        except TransactionReverted as exc:
            error = exc

            def raise_it() -> Receipt:
                raise error

            return cls(raise_it)
        return cls(lambda: receipt)

    def result(self) -> Receipt:
        if self._wait is not None:
            wait, self._wait = self._wait, None
            try:
                self._receipt = wait()
            except TransactionReverted as exc:
                self._error = exc
        if self._error is not None:
            raise self._error
        assert self._receipt is not None
        return self._receipt


def dev_accounts(count: int, mnemonic: str = DEV_MNEMONIC) -> list[LocalAccount]:
    """The standard development accounts (anvil's and hardhat's), derived from the mnemonic.

    Both backends use the same keys, so addresses in a simulation match those on
    a fresh anvil node. The mnemonic's seed (2,048 rounds of PBKDF2) is computed once,
    not once per account as `Account.from_mnemonic` would: 1,000 accounts took ~9 s, now ~1 s.
    """
    from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

    seed = seed_from_mnemonic(mnemonic, "")
    return [Account.from_key(key_from_seed(seed, f"m/44'/60'/0'/0/{i}")) for i in range(count)]


class Chain(ABC):
    """An EVM chain that fedledger can deploy to, transact with and read events from."""

    #: a short description for logs and exports, e.g. "in-process py-evm" or the RPC URL
    description: str
    chain_id: int

    @abstractmethod
    def deploy(self, sender: LocalAccount, bytecode: bytes, ctor_args: bytes = b"") -> Receipt:
        """Creates a contract; the receipt's `contract_address` is set."""

    @abstractmethod
    def send(self, sender: LocalAccount, to: str, data: bytes, *, gas: int | None = None) -> Receipt:
        """Executes a transaction and waits for its receipt.

        Raises `TransactionReverted` with the contract's revert string if it fails;
        a reverted transaction changes no state.
        """

    def submit(self, sender: LocalAccount, to: str, data: bytes, *, gas: int | None = None) -> PendingReceipt:
        """Sends a transaction without waiting for its receipt, where the backend can.

        Transactions execute in the order they were sent or submitted, and every read
        (`call`, `get_logs`, ...) sees all of them, so submitting instead of sending changes
        when the caller waits, never what the chain does. A backend that executes in place
        (this default) runs it now; its revert still surfaces from `result()`.
        """
        return PendingReceipt.of(lambda: self.send(sender, to, data, gas=gas))

    @abstractmethod
    def call(self, to: str, data: bytes, *, sender: str | None = None, block: int | None = None) -> bytes:
        """Executes a read-only call against the latest state, or the state after `block`.

        Reading at an older block is how a node waits for confirmations on a chain that
        can reorganise: it acts only on state that is `confirmations` blocks deep.
        """

    @abstractmethod
    def get_logs(self, address: str, from_block: int = 0, to_block: int | None = None) -> list[LogEntry]:
        """Logs emitted by `address` in the inclusive block range, in chain order."""

    @abstractmethod
    def block_number(self) -> int:
        """The latest block's number."""

    @abstractmethod
    def timestamp(self) -> int:
        """The latest block's timestamp (seconds)."""

    def now(self) -> int:
        """The timestamp the next block will have at least: what "has this deadline passed?" asks.

        A node that mines only when a transaction arrives (anvil's automine) leaves its latest
        block's timestamp stale, so backends whose clock is the wall clock override this.
        """
        return self.timestamp()

    def storage_at(self, address: str, slot: int) -> int:
        """The word in storage `slot` of the contract at `address` (eth_getStorageAt).

        How Python reads state a contract keeps but does not expose, where a getter did not
        fit the contract's code size (the coordinator's sampler: `Coordinator.sampler`).
        """
        raise ChainError(f"{self.description} cannot read contract storage")

    @abstractmethod
    def increase_time(self, seconds: int) -> None:
        """Moves the chain clock forward (development chains only)."""

    @abstractmethod
    def receipts(self, from_block: int = 0) -> list[Receipt]:
        """Every transaction mined since `from_block`, in order (for run exports)."""

    def info(self) -> dict[str, Any]:
        return {"description": self.description, "chain_id": self.chain_id}
