"""The courier uploads and commits off the training thread, strictly in the order it was handed them."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from fedledger.codec.commitment import merkle_root
from fedledger.errors import TransactionReverted
from fedledger.roles.trainer import TrainerRound
from fedledger.sim.courier import Courier


@dataclass
class FakeTrainer:
    """Records what it was asked to do, and on which thread; `send` of the first is slow."""

    name: str
    log: list[tuple[str, str]]
    threads: set[int] = field(default_factory=set)
    revert: bool = False
    blob_hook: Any = None
    roots: list[bytes | None] = field(default_factory=list)

    def send(self, update: Any, *, seat: int = 0, root: bytes | None = None) -> Any:
        self.threads.add(threading.get_ident())
        self.roots.append(root)
        if self.name == "a":
            time.sleep(0.05)  # a later delivery must still wait its turn
        self.log.append(("send", self.name))
        return type("Sent", (), {"commitment": self.name.encode() * 32, "update": update})()

    def complete(self, sent: Any) -> TrainerRound:
        self.log.append(("complete", self.name))
        if self.revert:
            raise TransactionReverted("coordinator: already committed", function="commit")
        return TrainerRound(1, sent.commitment, 10, 0.5, 1.0, None)


class AlteredCopies:
    """A verified cache whose every stored copy differs from what was uploaded."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        self.log = log

    def confirm(self, commitment: bytes, data: bytes) -> bool:
        self.log.append(("verify", chr(commitment[0])))
        return False


def update(blob: bytes = b"blob") -> Any:
    return type("Update", (), {"round": 1, "blob": blob})()


def test_deliveries_run_in_order_on_one_other_thread() -> None:
    log: list[tuple[str, str]] = []
    trainers = [FakeTrainer(n, log) for n in "abc"]
    courier = Courier(hash_apart=False)
    for t in trainers:
        courier.deliver(t, update(), after_upload=lambda c: log.append(("tamper", chr(c[0]))))
    done = courier.drain()
    assert [r.commitment[:1] for r in done] == [b"a", b"b", b"c"]
    assert log == [x for n in "abc" for x in (("send", n), ("tamper", n), ("complete", n))]
    threads = set().union(*(t.threads for t in trainers))
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert courier.drain() == []


def test_a_failed_first_read_is_left_to_the_committee() -> None:
    log: list[tuple[str, str]] = []
    courier = Courier(hash_apart=False)
    courier.deliver(FakeTrainer("a", log), update(), verify_in=AlteredCopies(log))  # type: ignore[arg-type]
    (result,) = courier.drain()
    assert result.commitment == b"a" * 32
    assert log[-1] == ("verify", "a")


def test_an_error_surfaces_at_drain_after_every_delivery_finished() -> None:
    log: list[tuple[str, str]] = []
    courier = Courier(hash_apart=False)
    courier.deliver(FakeTrainer("a", log, revert=True), update())
    courier.deliver(FakeTrainer("b", log), update())
    with pytest.raises(TransactionReverted, match="already committed"):
        courier.drain()
    assert ("complete", "b") in log  # nothing is still running when the error is raised
    assert courier.drain() == []


def test_roots_are_hashed_in_the_helper_process_and_handed_to_the_upload() -> None:
    log: list[tuple[str, str]] = []
    plain, hooked = FakeTrainer("a", log), FakeTrainer("b", log, blob_hook=lambda blob, r: blob)
    courier = Courier(hash_apart=True)
    blob = bytes(range(256)) * 100  # several 4 KiB leaves
    courier.deliver(plain, update(blob))
    courier.deliver(hooked, update(blob))
    courier.drain()
    assert plain.roots == [merkle_root(blob)]
    assert hooked.roots == [None]  # a fault's hook uploads other bytes: they are hashed as sent


def test_work_after_the_deliveries_runs_behind_them_on_the_courier_thread() -> None:
    """The round's close (sim/round_close.py) follows the round's commits in one thread's order."""
    log: list[tuple[str, str]] = []
    courier = Courier(hash_apart=False)
    trainers = [FakeTrainer(n, log) for n in "ab"]
    for t in trainers:
        courier.deliver(t, update())
    seen: list[bytes | None] = []

    def close(delivered: list[TrainerRound]) -> int:
        log.append(("close", ""))
        seen.extend(r.commitment for r in delivered)
        return threading.get_ident()

    thread = courier.after(close).result(timeout=5)
    assert log[-1] == ("close", "") and log.count(("complete", "b")) == 1
    assert seen == [b"a" * 32, b"b" * 32]
    assert {thread} == set().union(*(t.threads for t in trainers))
    assert courier.drain() == []  # the close took the deliveries with it


def test_a_delivery_error_is_raised_by_the_work_after_it() -> None:
    log: list[tuple[str, str]] = []
    courier = Courier(hash_apart=False)
    courier.deliver(FakeTrainer("a", log, revert=True), update())
    courier.deliver(FakeTrainer("b", log), update())
    closed: list[bool] = []
    future = courier.after(lambda delivered: closed.append(True))
    with pytest.raises(TransactionReverted, match="coordinator: already committed"):
        future.result(timeout=5)
    assert closed == [] and ("complete", "b") in log  # every delivery finished; the close never ran
