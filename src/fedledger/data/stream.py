"""Streaming helpers for `read_batches`: CSV byte ranges, and reading ahead on a thread."""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa


def line_ranges(path: Path, size: int) -> list[tuple[int, int]]:
    """Byte ranges of about `size` covering the file after its header line, each ending at a line end.

    A line ends at "\n", "\r\n" or a bare "\r" (old Mac files), as Arrow's CSV reader reads
    them: cutting at "\n" only would see a "\r"-only file as one header line and no rows.
    """
    total = path.stat().st_size
    with path.open("rb") as f:
        start = _line_end(f)  # after the header
        ranges = []
        while start < total:
            f.seek(min(start + size, total))
            end = _line_end(f) if f.tell() < total else total  # the end of the line the cut fell in
            ranges.append((start, end))
            start = end
    return ranges


def estimate_lines(path: Path, sample: int = 1 << 20) -> int:
    """About how many lines the file holds, from the line length of its first `sample` bytes.

    An output sized by this is reserved once instead of doubling as rows arrive; it errs high
    (by 5%), and reserved pages that are never written are never resident.
    """
    total = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(sample)
    lines = head.count(b"\n") or head.count(b"\r")
    if not lines or len(head) >= total:
        return max(lines, 1)
    return int(total / (len(head) / lines) * 1.05) + 1


#: bytes read at a time while looking for the end of a line
_SCAN = 1 << 16


def _line_end(f: BinaryIO) -> int:
    """Moves `f` past the end of the line its position is in; returns that position (EOF if none)."""
    while True:
        at = f.tell()
        block = f.read(_SCAN)
        if not block:
            return at
        ends = [i for i in (block.find(b"\n"), block.find(b"\r")) if i >= 0]
        if not ends:
            continue
        i = min(ends)
        after = at + i + 1
        if block[i : i + 1] == b"\r":  # "\r\n" is one line end; the "\n" may be in the next block
            nxt = block[i + 1 : i + 2] if i + 1 < len(block) else _peek(f, after)
            if nxt == b"\n":
                after += 1
        f.seek(after)
        return after


def _peek(f: BinaryIO, at: int) -> bytes:
    f.seek(at)
    return f.read(1)


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
