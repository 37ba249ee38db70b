"""Peak memory of a simulation: this process plus every process it started (a local Ray's).

A local Ray runs its GCS, raylet and workers as descendants of the driver, so the sum of
resident set sizes over the driver's process tree is what the simulation holds. It is
sampled on a background thread (every 0.2 s by default) from /proc, since the sum's peak
is not something the kernel records; the driver's own peak comes from `getrusage`,
which is exact. The sum over-counts pages several processes share (the object store's
shared memory, torch's libraries mapped by every worker), so it is an upper bound. Where
/proc is missing (not Linux) only the driver's own peak is known.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from pathlib import Path
from types import TracebackType

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc/*/stat."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])  # after "pid (comm) state"
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss(root: int | None = None) -> int:
    """Bytes resident in `root` (default: this process) and all its descendants."""
    root = os.getpid() if root is None else root
    tree = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total


def driver_peak() -> int:
    """This process's peak resident bytes so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


class PeakMemory:
    """`with PeakMemory() as m: …` then `m.peak` (bytes, process tree) and `m.driver` (bytes)."""

    def __init__(self, *, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self.driver = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)
        self._proc = Path("/proc/self/statm").exists()

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, tree_rss())
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> PeakMemory:
        if self._proc:
            self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._proc:
            self._thread.join()
            self.peak = max(self.peak, tree_rss())
        self.driver = driver_peak()
        self.peak = max(self.peak, self.driver)

    def line(self) -> str:
        """'peak memory 1.23 GiB (driver 0.45 GiB; with the processes it started, sampled)'."""
        return (
            f"peak memory {self.peak / 2**30:.2f} GiB, driver and the processes it started "
            f"(RSS summed, sampled every {self.interval_s:g} s; driver alone {self.driver / 2**30:.2f} GiB)"
        )
