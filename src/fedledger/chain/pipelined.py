"""The in-process EVM in a second process, fed by one queue: chain work beside training.

Why: a simulation's chain is py-evm, pure Python, ~2–4 ms a transaction (signing, ~650
opcodes, access lists, receipts). A default job sends ~390 of them, about 5 % of the whole
run, and all of it waited for while one core trained and the other idled. On a thread the
EVM fought training for the GIL; in its own process it runs on the idle core. A trainer
`submit`s its commit and trains on while the commit executes.

What stays exactly as with `InProcessChain` (the child runs one): there is one pipe and one
queue, and the child executes requests in the order they were sent, so the transactions,
their nonces, blocks, timestamps, hashes, gas and logs are the same, and so are the export and
the audit's re-execution of it. A synchronous call (`send`, `call`, `get_logs`, `receipts`,
…) is answered after everything sent before it, so a read always sees every earlier
transaction. A submitted transaction's revert is raised by its `PendingReceipt.result()`,
with the reason `send` would have raised; a reverted transaction is not mined and uses no
nonce, as before. Transactions are signed in the child, with the sender's key sent along.

The child is forked: spawning one would re-import py-evm and titanoboa (~1.6 s, more than the
chain work it saves). It touches nothing of the parent's but its own chain and pipe, ignores
Ctrl-C (the parent decides when to stop, and may still export the chain after an interrupt),
and exits when told to, when the pipe closes, or when its parent is gone. Replies are read by
a thread, so an interrupt in the parent can never leave half a reply in the pipe.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedledger import errors
from fedledger.chain.base import Chain, LogEntry, PendingReceipt, Receipt
from fedledger.chain.inprocess import GENESIS_TIMESTAMP, InProcessChain
from fedledger.errors import ChainError, TransactionReverted

#: what the child answers; anything else is a bug of this module
_OPS = frozenset(
    {
        "deploy", "send", "call", "get_logs", "storage_at", "block_number", "timestamp",
        "increase_time", "receipts", "stats",
    }
)  # fmt: skip
_GONE = "the chain process has exited (killed or out of memory?); the chain's state is lost"
#: seconds between the child's checks that its parent still exists
_PARENT_CHECK_S = 1.0


def _serve(conn: Connection, parent: int, block_time: int, genesis_timestamp: int) -> None:
    """The child: one InProcessChain, requests executed one at a time in arrival order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()  # the parent's objects: never scanned here, so their pages stay shared
    chain = InProcessChain(block_time=block_time, genesis_timestamp=genesis_timestamp)
    accounts: dict[bytes, LocalAccount] = {}
    busy, transactions = 0.0, 0
    while True:
        if not conn.poll(_PARENT_CHECK_S):
            if os.getppid() != parent:
                return
            continue
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return
        if op == "close":
            conn.send(("closed", None))
            return
        t0 = time.perf_counter()
        if op in ("deploy", "send"):  # the sender's key travels with the request; sign here
            key = args[0]
            account = accounts.get(key)
            if account is None:
                account = accounts[key] = Account.from_key(key)
            args = (account, *args[1:])
            transactions += 1
        reply = _execute(chain, op, args)
        busy += time.perf_counter() - t0
        if op == "stats":
            reply = ("ok", {"seconds": busy, "transactions": transactions})
        conn.send(reply)


def _execute(chain: InProcessChain, op: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    """One request's reply: ("ok", value) or the error, by kind, for the parent to raise."""
    if op not in _OPS:
        return ("error", f"unknown request {op!r}")
    if op == "stats":
        return ("ok", None)
    try:
        if op == "send":
            sender, to, data, gas = args
            return ("ok", chain.send(sender, to, data, gas=gas))
        if op == "call":
            to, data, sender, block = args
            return ("ok", chain.call(to, data, sender=sender, block=block))
        return ("ok", getattr(chain, op)(*args))
    except TransactionReverted as exc:
        return ("reverted", (exc.reason, exc.function))
    except ChainError as exc:
        return ("chain_error", (type(exc).__name__, str(exc)))
    except Exception as exc:  # a bug in the EVM or here: reported as the chain failing, not lost
        return ("error", f"{type(exc).__name__}: {exc}")


def _unpack(reply: tuple[str, Any]) -> Any:
    """A reply's value, or its error raised as the type the in-process chain raised."""
    kind, value = reply
    if kind == "ok":
        return value
    if kind == "reverted":
        reason, function = value
        raise TransactionReverted(reason, function=function)
    if kind == "chain_error":
        name, message = value
        cls = getattr(errors, name, ChainError)
        if not (isinstance(cls, type) and issubclass(cls, ChainError)) or cls is TransactionReverted:
            cls = ChainError
        raise cls(message)
    if kind == "gone":
        raise ChainError(_GONE)
    raise ChainError(f"the chain process failed: {value}")


@dataclass
class _Slot:
    """One request awaiting its reply."""

    done: threading.Event = field(default_factory=threading.Event)
    reply: tuple[str, Any] = ("error", "no reply")


def _read_replies(conn: Connection, waiting: deque[_Slot]) -> None:
    """The reader thread: hands each reply to the oldest request still waiting (FIFO)."""
    while True:
        try:
            reply = conn.recv()
        except Exception:  # EOF, a reset pipe, a closed handle: nothing more will come
            reply = ("gone", None)
        if waiting:
            slot = waiting.popleft()
            slot.reply = reply
            slot.done.set()
        if reply[0] in ("closed", "gone"):
            while waiting:  # nothing more will come: fail whoever still waits
                late = waiting.popleft()
                late.reply = ("gone", None)
                late.done.set()
            return


def _shutdown(
    conn: Connection, proc: Any, reader: threading.Thread, lock: threading.Lock, waiting: deque[_Slot]
) -> None:
    """Asks the child to stop, lets the reader take its last reply, and kills a child that hangs."""
    try:
        with lock:
            waiting.append(_Slot())
            conn.send(("close", ()))
    except (OSError, ValueError):
        pass
    reader.join(timeout=5)  # it returns on the "closed" reply, or on EOF if the child is gone
    proc.join(timeout=5)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=5)
    if not reader.is_alive():  # never close the pipe under a thread still reading it
        conn.close()


class PipelinedChain(Chain):
    """`InProcessChain` in a child process; `submit` returns before the transaction executes."""

    def __init__(
        self,
        *,
        block_time: int = 1,
        genesis_timestamp: int = GENESIS_TIMESTAMP,
        start_method: str | None = None,
    ) -> None:
        # the same description and chain id as InProcessChain: the export names the EVM, not
        # the process it ran in, so a pipelined run's export is byte for byte a synchronous one's
        self.description = "in-process EVM (py-evm via titanoboa)"
        self.chain_id = 31337
        self.block_time = block_time
        methods = multiprocessing.get_all_start_methods()
        ctx: Any = multiprocessing.get_context(start_method or ("fork" if "fork" in methods else "spawn"))
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=_serve,
            args=(theirs, os.getpid(), block_time, genesis_timestamp),
            name="fedledger-chain",
            daemon=True,
        )
        proc.start()
        theirs.close()
        self.pid = proc.pid
        self._conn = ours
        self._lock = threading.Lock()
        self._waiting: deque[_Slot] = deque()
        reader = threading.Thread(
            target=_read_replies, args=(ours, self._waiting), name="fedledger-chain-replies", daemon=True
        )
        reader.start()
        self._close = weakref.finalize(self, _shutdown, ours, proc, reader, self._lock, self._waiting)

    # -- the queue ---------------------------------------------------------------------------

    def _send(self, op: str, *args: Any) -> _Slot:
        slot = _Slot()
        with self._lock:
            if not self._close.alive:
                raise ChainError("the pipelined chain is closed")
            self._waiting.append(slot)  # before sending: the reader pops it for this reply
            try:
                self._conn.send((op, args))
            except (OSError, ValueError):
                self._waiting.remove(slot)
                raise ChainError(_GONE) from None
        return slot

    def _request(self, op: str, *args: Any) -> Any:
        slot = self._send(op, *args)
        slot.done.wait()
        return _unpack(slot.reply)

    def close(self) -> None:
        """Stops the child; the chain's state goes with it (export it first)."""
        self._close()

    def work(self) -> dict[str, float]:
        """Seconds the child spent executing requests and how many transactions it ran.

        The chain's whole cost, against the caller's own waiting (see sim/timing.py): what
        the pipeline took off the critical path is the difference.
        """
        stats: dict[str, float] = self._request("stats")
        return stats

    # -- Chain -------------------------------------------------------------------------------

    def deploy(self, sender: LocalAccount, bytecode: bytes, ctor_args: bytes = b"") -> Receipt:
        receipt: Receipt = self._request("deploy", bytes(sender.key), bytecode, ctor_args)
        return receipt

    def send(self, sender: LocalAccount, to: str, data: bytes, *, gas: int | None = None) -> Receipt:
        return self.submit(sender, to, data, gas=gas).result()

    def submit(self, sender: LocalAccount, to: str, data: bytes, *, gas: int | None = None) -> PendingReceipt:
        slot = self._send("send", bytes(sender.key), to, data, gas)

        def wait() -> Receipt:
            slot.done.wait()
            receipt: Receipt = _unpack(slot.reply)
            return receipt

        return PendingReceipt(wait)

    def call(self, to: str, data: bytes, *, sender: str | None = None, block: int | None = None) -> bytes:
        return bytes(self._request("call", to, data, sender, block))

    def get_logs(self, address: str, from_block: int = 0, to_block: int | None = None) -> list[LogEntry]:
        logs: list[LogEntry] = self._request("get_logs", address, from_block, to_block)
        return logs

    def storage_at(self, address: str, slot: int) -> int:
        return int(self._request("storage_at", address, slot))

    def block_number(self) -> int:
        return int(self._request("block_number"))

    def timestamp(self) -> int:
        return int(self._request("timestamp"))

    def increase_time(self, seconds: int) -> None:
        self._request("increase_time", seconds)

    def receipts(self, from_block: int = 0) -> list[Receipt]:
        receipts: list[Receipt] = self._request("receipts", from_block)
        return receipts
