"""Where a run's wall time goes: exclusive time per stage, for the overhead benchmark.

Not a benchmark itself. `StageClock.wrap` replaces a function or method with one that
charges its time to a stage, minus the time of any wrapped call nested inside it (a
validator's proposal is charged to "chain", not to "validators"), so the stages add up to
no more than the wall time and the rest is the loop's own. Only the main thread's calls are
charged: that is the critical path. Work a helper thread does beside it (the simulation's
courier, sim/courier.py) is charged to `background`, per stage, inclusive. Diagnosis only: a
few microseconds a call, a few thousand calls a run.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any


class StageClock:
    """Exclusive seconds per stage label, across every wrapped call."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.background: dict[str, float] = defaultdict(float)
        self._main = threading.main_thread()
        self._stack: list[list[Any]] = []  # [label, time the label last resumed]

    def reset(self) -> dict[str, float]:
        """The main thread's seconds so far, and a fresh count (of both)."""
        out = dict(self.seconds)
        self.seconds = defaultdict(float)
        self.background = defaultdict(float)
        return out

    def reset_background(self) -> dict[str, float]:
        """Helper threads' inclusive seconds per stage so far (call before `reset`)."""
        return dict(self.background)

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        fn: Callable[..., Any] = getattr(owner, attr)
        clock = self

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not clock._main:
                t0 = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    clock.background[label] += time.perf_counter() - t0
            now = time.perf_counter()
            if clock._stack:  # pause the caller's stage
                clock.seconds[clock._stack[-1][0]] += now - clock._stack[-1][1]
            clock._stack.append([label, now])
            try:
                return fn(*args, **kwargs)
            finally:
                end = time.perf_counter()
                done, started = clock._stack.pop()
                clock.seconds[done] += end - started
                if clock._stack:  # resume it
                    clock._stack[-1][1] = end

        setattr(owner, attr, timed)
