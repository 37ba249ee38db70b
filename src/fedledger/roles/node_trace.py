"""Where a deployed round spends its time: per-node step timestamps and the phase breakdown.

A round's coordination cost is not one number but a chain of hand-offs between processes
(the round opens; each trainer notices, trains, uploads and commits; the last commit closes
the phase; each validator notices, fetches, aggregates and proposes; the quorum-th proposal
finalises and opens the next round). No single process sees the whole chain, so each node
appends what it did, with its wall-clock time, to a trace file (`trace = "path"` in its
config), and `phase_breakdown` joins the traces with the chain's events: the chain says
which commit closed the phase and which proposal finalised the round (one transaction a
block on anvil's automine), the traces say when each party acted. The nodes of a deployment
on one machine share its clock, so their times compare directly.

Tracing is for measurement (bench/deployment.py); a node without `trace` writes nothing.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PHASES", "NodeTrace", "RoundPhases", "node_costs", "phase_breakdown", "read_traces", "summarise"]


class NodeTrace:
    """Appends `{"t", "node", "step", "round"}` lines to a file; does nothing without a path.

    Each line is written and flushed at once, so a node killed mid-round leaves every step it
    reached. The cost is one small write a step, a few a round.
    """

    def __init__(
        self, path: Path | None, node: str, *, counters: Callable[[], Mapping[str, float]] | None = None
    ) -> None:
        """`counters`: figures recorded on every line besides the time (the node's JSON-RPC
        requests and CPU seconds so far), so that a step's cost can be told from its wait."""
        self.node = node
        self.counters = counters
        self._file = path.open("a", encoding="utf-8") if path is not None else None
        self._marked: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def mark(self, step: str, round: int, **extra: Any) -> None:
        if self._file is None:
            return
        line = {"t": time.time(), "node": self.node, "step": step, "round": round, **extra}
        if self.counters is not None:
            line.update(self.counters())
        with self._lock:  # a node's proposal is marked from its helper thread
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()

    def first(self, step: str, round: int) -> None:
        """Marks `step` for `round` only the first time (a state seen on several passes)."""
        if self._file is not None and (step, round) not in self._marked:
            self._marked.add((step, round))
            self.mark(step, round)


def read_traces(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every line of every trace file, in time order."""
    lines = []
    for p in paths:
        if p.exists():
            lines += [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    return sorted(lines, key=lambda x: x["t"])


#: the phases of one round on its critical path, in order; their sum is the round's wall time
PHASES = (
    "open→trainer starts",  # the closing trainer notices the round (0 when it trained ahead)
    "training",  # the closing trainer's local training (what a round without the chain costs too)
    "upload+commit",  # its blob to its store, its commit mined (the phase closes)
    "close→validator sees",  # the finalising validator notices the commit phase closed
    "validate+aggregate",  # its fetch, checks and aggregation
    "propose",  # storing the aggregate and its proposal mined (the round finalises)
)


@dataclass(frozen=True)
class RoundPhases:
    """One round's critical path: the trainer whose commit closed it, the validator that finalised it."""

    round: int
    closer: str
    finaliser: str
    seconds: dict[str, float]  # PHASES -> seconds
    speculated: bool  # the closing trainer trained before the round opened

    @property
    def wall(self) -> float:
        return sum(self.seconds.values())


def phase_breakdown(
    trace: Sequence[Mapping[str, Any]],
    *,
    opened: Mapping[int, str],
    closed: Mapping[int, str],
    finalised: Mapping[int, str],
) -> list[RoundPhases]:
    """Per round, the critical path's phases from the traces and the chain's events.

    `opened`, `closed` and `finalised` name, per round, the node whose transaction opened it
    (the previous round's finaliser), closed its commit phase and finalised it. A round whose
    steps are not all in the traces (a node killed, a round that failed) is left out.
    """
    at: dict[tuple[str, str, int], float] = {}
    for x in trace:
        at.setdefault((x["node"], x["step"], x["round"]), x["t"])
    out = []
    for r in sorted(finalised):
        if r not in closed or r not in opened:
            continue
        o, c, f = opened[r], closed[r], finalised[r]
        try:
            t_open = at[(o, "proposed", r - 1)]
            seen_open = max(at[(c, "open_seen", r)], t_open)
            start = max(at.get((c, "train_start", r)) or at[(c, "spec_start", r)], seen_open)
            trained = max(at.get((c, "trained", r)) or at[(c, "spec_done", r)], start)
            t_commit = at[(c, "committed", r)]
            seen = at[(f, "aggregating_seen", r)]
            computed = at[(f, "computed", r)]
            t_final = at[(f, "proposed", r)]
        except KeyError:
            continue
        speculated = (c, "spec_start", r) in at and (c, "train_start", r) not in at
        # checkpoints are clamped to be monotone: a step done ahead (trained before the round
        # opened) costs the round nothing, and shows as zero
        parts = [
            start - t_open,
            trained - start,
            t_commit - trained,
            seen - t_commit,
            computed - seen,
            t_final - computed,
        ]
        out.append(RoundPhases(r, c, f, dict(zip(PHASES, parts, strict=True)), speculated))
    return out


def summarise(rounds: Sequence[RoundPhases]) -> dict[str, dict[str, float]]:
    """Per phase (and the round), the median, minimum and maximum over `rounds`, in seconds."""
    series = {p: [r.seconds[p] for r in rounds] for p in PHASES}
    series["round"] = [r.wall for r in rounds]
    return {
        name: {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}
        for name, xs in series.items()
        if xs
    }


def node_costs(trace: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per node, what a round costs it besides training: JSON-RPC requests and CPU seconds.

    Counted between the node's first and last proposal (whole rounds, start-up left out), with
    the CPU of its trainings (`train_start`→`trained`, `spec_start`→`spec_done`) taken off. Unlike
    wall times these hardly move with what else the host runs, so before and after compare
    even on a loaded machine.
    """
    out: dict[str, dict[str, float]] = {}
    for node in sorted({x["node"] for x in trace}):
        mine = [x for x in trace if x["node"] == node and "cpu" in x]
        proposals = [x for x in mine if x["step"] == "proposed"]
        if len(proposals) < 2:
            continue
        first, last = proposals[0], proposals[-1]
        inside = [x for x in mine if first["t"] <= x["t"] <= last["t"]]
        began: dict[tuple[str, int], float] = {}
        training = 0.0
        for x in inside:
            if x["step"] in ("train_start", "spec_start"):
                began[(x["step"], x["round"])] = x["cpu"]
            elif x["step"] in ("trained", "spec_done"):
                start = "train_start" if x["step"] == "trained" else "spec_start"
                if (start, x["round"]) in began:
                    training += x["cpu"] - began[(start, x["round"])]
        rounds = len({x["round"] for x in proposals}) - 1
        out[node] = {
            "rounds": rounds,
            "rpc_per_round": (last["rpc"] - first["rpc"]) / rounds,
            "cpu_s_per_round": (last["cpu"] - first["cpu"] - training) / rounds,
            "training_cpu_s_per_round": training / rounds,
        }
    return out
