"""Trainers' uploads and commits off the training thread: one courier, in the trainers' order.

In a deployment every organisation uploads and commits on its own machine while the others
are still training, and each committee member fetches and verifies an update as soon as it is
committed. A simulation trains the organisations one after another in one process; done
inline, each organisation's encoding (the quantised delta, the blob), its upload (a Merkle root over the
blob, the write), its commit and
the committee's first verified read of the blob would sit between one
organisation's training and the next. The courier is one thread that does them instead, while
the training thread goes on to the next organisation: PyTorch releases the GIL inside its
kernels, pysha3 while it hashes a chunk and the file system while it writes, so on the core
training leaves idle the courier's work costs the training thread little. Except hashing:
pysha3 releases and retakes the GIL for every 4 KiB leaf, a hundred times an update, and each
time training may have to wait for it back (measured: 5 ms of hashing beside training slowed
each training by ~10 ms). So the Merkle root of each upload is computed in a forked helper
process, which only ever hashes, and the courier files the bytes under it.

One thread, first in first out, so the chain sees exactly the transactions, in the order, that
committing one by one sends, and every commit's outcome (a revert, an ejection) is met before
the committee reads the round. The verified read fills the simulation's shared cache
(store/cached.py) as the committee's first reader would, comparing the stored copy with the
bytes whose root the upload computed instead of hashing them again: a blob corrupted after
upload differs, is not cached, and is met again, re-hashed and rejected, by the committee.
"""

from __future__ import annotations

import logging
import multiprocessing
import weakref
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

from fedledger.codec.commitment import merkle_root
from fedledger.roles.trainer import PreparedUpdate, TrainedUpdate, Trainer, TrainerRound
from fedledger.store.cached import VerifiedCache

__all__ = ["Courier"]

log = logging.getLogger("fedledger.sim")

T = TypeVar("T")


class Courier:
    """Uploads, commits and pre-verifies prepared updates on one background thread, in order."""

    def __init__(self, *, hash_apart: bool = True) -> None:
        """`hash_apart`: Merkle roots in a forked helper process (not where processes may not start)."""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fedledger-courier")
        self._pending: list[Future[TrainerRound]] = []
        weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        self._hasher: ProcessPoolExecutor | None = None
        if hash_apart:
            # forked here, on the main thread, before training starts; it only ever hashes
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            self._hasher = ProcessPoolExecutor(1, mp_context=context)
            self._hasher.submit(merkle_root, b"").result()
            weakref.finalize(self, self._hasher.shutdown, wait=False, cancel_futures=True)

    def deliver(
        self,
        trainer: Trainer,
        update: TrainedUpdate | PreparedUpdate,
        *,
        seat: int = 0,
        after_upload: Callable[[bytes], None] | None = None,
        verify_in: VerifiedCache | None = None,
    ) -> None:
        """Queues `update`'s encoding (trained weights), upload and commit behind every earlier one.

        `after_upload(commitment)` runs between the upload and the commit's outcome (a testing
        fault that tampers with the stored copy); `verify_in` is the cache the committee reads
        through, which the stored copy fills if it is the bytes uploaded (`VerifiedCache.confirm`).
        """
        self._pending.append(self._pool.submit(self._run, trainer, update, seat, after_upload, verify_in))

    def drain(self) -> list[TrainerRound]:
        """Every queued delivery's outcome, in order; the first error any of them met is raised."""
        pending, self._pending = self._pending, []
        return self._collect(pending)

    def after(self, work: Callable[[list[TrainerRound]], T]) -> Future[T]:
        """Runs `work(outcomes of every queued delivery)` on the courier thread, behind them.

        The round's close (sim/round_close.py) goes here, so its transactions follow the round's
        commits in the order one thread would send them; a delivery's error is raised in it.
        """
        pending, self._pending = self._pending, []
        return self._pool.submit(lambda: work(self._collect(pending)))

    @staticmethod
    def _collect(pending: list[Future[TrainerRound]]) -> list[TrainerRound]:
        done: list[TrainerRound] = []
        error: BaseException | None = None
        for future in pending:  # wait for all, so nothing is still running when the error surfaces
            try:
                done.append(future.result())
            except BaseException as exc:  # re-raised below, once the rest have finished
                error = error or exc
        if error is not None:
            raise error
        return done

    def _run(
        self,
        trainer: Trainer,
        update: TrainedUpdate | PreparedUpdate,
        seat: int,
        after_upload: Callable[[bytes], None] | None,
        verify_in: VerifiedCache | None,
    ) -> TrainerRound:
        prepared = trainer.encode(update) if isinstance(update, TrainedUpdate) else update
        if isinstance(prepared, TrainerRound):  # nothing to commit (weights that cannot be quantised)
            return prepared
        root = None
        if self._hasher is not None and trainer.blob_hook is None:  # hooked bytes are hashed as sent
            root = self._hasher.submit(merkle_root, prepared.blob).result()
        sent = trainer.send(prepared, seat=seat, root=root)
        if after_upload is not None:
            after_upload(sent.commitment)
        result = trainer.complete(sent)
        intact = (
            verify_in is None  # nobody to verify for
            or result.commitment is None  # nothing committed
            or trainer.blob_hook is not None  # a fault's hook uploaded other bytes: the committee hashes them
            or verify_in.confirm(result.commitment, prepared.blob)
        )
        if not intact:  # the committee meets the stored copy again, re-hashes it and rejects the update
            log.debug("round %d: %s's stored blob differs from its upload", prepared.round, trainer.name)
        return result
