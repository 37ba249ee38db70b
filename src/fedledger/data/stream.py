"""Streaming helpers for `read_batches`: CSV byte ranges, and reading ahead on a thread."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa


def line_ranges(path: Path, size: int) -> list[tuple[int, int]]:
    """Byte ranges of about `size` covering the file after its header line, each ending at a newline."""
    total = path.stat().st_size
    with path.open("rb") as f:
        f.readline()  # the header
        start = f.tell()
        ranges = []
        while start < total:
            f.seek(min(start + size, total))
            if f.tell() < total:
                f.readline()  # to the end of the line the cut fell in
            end = f.tell()
            ranges.append((start, end))
            start = end
    return ranges


class FileRange(io.RawIOBase):
    """Bytes start..end of a file, read with ordinary reads (a memory map would count the whole
    file as resident)."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self._file = path.open("rb", buffering=0)
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._left)
        if n <= 0:
            return 0
        got = self._file.readinto(memoryview(buffer)[:n]) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


def prefetched(tables: Iterator[pa.Table], depth: int = 1) -> Iterator[pa.Table]:
    """`tables`, each read by a background thread while the caller works on the one before.

    Arrow parses and decodes without the GIL, so reading the next batch overlaps with
    checking and encoding this one. At most `depth` batches wait; a caller that stops early
    (a failed check) stops the reader at its next batch.
    """
    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for table in tables:
                if not put(table):
                    return
            put(done)
        except BaseException as exc:  # handed to the caller, raised in its thread
            put(exc)

    reader = threading.Thread(target=read, name="fedledger-read", daemon=True)
    reader.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
