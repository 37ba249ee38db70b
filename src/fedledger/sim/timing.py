"""A Chain wrapper that counts the time and gas a simulation spends on chain.

`seconds` is the time the simulation waited for the chain: its critical path. With the
pipelined chain (chain/pipelined.py) a submitted commit executes while the next trainer
trains, so that is less than the chain's own work, which `work()` reports. Waits on another
thread (the courier's, sim/courier.py) are off that path: they count in `background_seconds`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from eth_account.signers.local import LocalAccount

from fedledger.chain.base import Chain, LogEntry, PendingReceipt, Receipt


class TimedChain(Chain):
    """Delegates to a chain and accumulates wall time spent in it and gas used."""

    def __init__(self, inner: Chain) -> None:
        self.inner = inner
        self.description = inner.description
        self.chain_id = inner.chain_id
        self.seconds = 0.0
        self.background_seconds = 0.0
        self._owner = threading.get_ident()
        self._lock = threading.Lock()
        self.gas = 0
        self.transactions = 0

    def _timed(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            waited = time.perf_counter() - t0
            with self._lock:
                if threading.get_ident() == self._owner:
                    self.seconds += waited
                else:
                    self.background_seconds += waited

    def _count(self, r: Receipt) -> Receipt:
        with self._lock:
            self.gas += r.gas_used
            self.transactions += 1
        return r

    def deploy(self, sender: LocalAccount, bytecode: bytes, ctor_args: bytes = b"") -> Receipt:
        return self._count(self._timed(self.inner.deploy, sender, bytecode, ctor_args))

    def send(self, sender: LocalAccount, to: str, data: bytes, *, gas: int | None = None) -> Receipt:
        return self._count(self._timed(self.inner.send, sender, to, data, gas=gas))

    def submit(self, sender: LocalAccount, to: str, data: bytes, *, gas: int | None = None) -> PendingReceipt:
        pending: PendingReceipt = self._timed(self.inner.submit, sender, to, data, gas=gas)
        return PendingReceipt(lambda: self._count(self._timed(pending.result)))

    def work(self) -> dict[str, float]:
        """The chain's own execution seconds and transaction count where it runs apart; NaN
        seconds where it runs in place (then all of it is on the critical path, in `seconds`)."""
        work = getattr(self.inner, "work", None)
        if work is None:
            return {"seconds": float("nan"), "transactions": float(self.transactions)}
        stats: dict[str, float] = work()
        return stats

    def call(self, to: str, data: bytes, *, sender: str | None = None, block: int | None = None) -> bytes:
        return bytes(self._timed(self.inner.call, to, data, sender=sender, block=block))

    def get_logs(self, address: str, from_block: int = 0, to_block: int | None = None) -> list[LogEntry]:
        return list(self._timed(self.inner.get_logs, address, from_block, to_block))

    def storage_at(self, address: str, slot: int) -> int:
        return int(self._timed(self.inner.storage_at, address, slot))

    def block_number(self) -> int:
        return int(self._timed(self.inner.block_number))

    def timestamp(self) -> int:
        return int(self._timed(self.inner.timestamp))

    def increase_time(self, seconds: int) -> None:
        self._timed(self.inner.increase_time, seconds)

    def receipts(self, from_block: int = 0) -> list[Receipt]:
        return list(self._timed(self.inner.receipts, from_block))

    def info(self) -> dict[str, Any]:
        return self.inner.info()
