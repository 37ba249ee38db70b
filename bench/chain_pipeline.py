"""The pipelined chain against the in-process one, on the same simulation, in alternating runs.

What the pipelined chain (chain/pipelined.py) is for: the simulation waits less for the chain.
Each run of the default job (`--quick`: digits, mlp, 4 trainers, 3 rounds) is timed with the
in-process EVM in the simulation's own process (the baseline) and with the same EVM in a second
process, alternating, and prints per run: wall time, seconds waited for the chain, of which
waiting for commits' receipts, and (pipelined) the seconds the chain worked in its own process.
Both sides must end on the same final commitment; the script fails otherwise.

No bar of its own: the overhead bar is bench/overhead.py's. On a shared host the waits include
waiting for a core; judge it on an idle one.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import median, parse_args, table, write_result

from fedledger.chain.base import PendingReceipt
from fedledger.chain.coordinator import Coordinator
from fedledger.chain.inprocess import InProcessChain
from fedledger.roles.trainer import SentUpdate, Trainer, TrainerRound
from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec
from fedledger.training.torch_client import configure_torch

_waits = {"commits_s": 0.0}
_complete = Trainer.complete
_commit_later = Coordinator.commit_later


def _timed_complete(self: Trainer, sent: SentUpdate) -> TrainerRound:
    t0 = time.perf_counter()
    try:
        return _complete(self, sent)
    finally:
        _waits["commits_s"] += time.perf_counter() - t0


def _timed_commit_later(self: Coordinator, *args: Any) -> PendingReceipt:
    t0 = time.perf_counter()  # in-process, the commit executes here; pipelined, it is sent here
    try:
        return _commit_later(self, *args)
    finally:
        _waits["commits_s"] += time.perf_counter() - t0


# diagnosis only: the commits' cost on the critical path, sending and taking the receipt
Trainer.complete = _timed_complete  # type: ignore[method-assign]
Coordinator.commit_later = _timed_commit_later  # type: ignore[method-assign]


def run(spec: JobSpec, *, pipelined: bool) -> dict[str, float | str]:
    _waits["commits_s"] = 0.0
    with tempfile.TemporaryDirectory(prefix="fedledger-bench-") as tmp:
        t0 = time.perf_counter()
        sim = Simulation(spec, out_dir=Path(tmp) / "run", chain=None if pipelined else InProcessChain())
        result = sim.run()
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "waited_s": result.chain_seconds, "commit_waits_s": _waits["commits_s"],
            "chain_work_s": sim.chain.work()["seconds"], "final": result.final_commitment.hex(),
            "load": os.getloadavg()[0]}


def main() -> None:
    args = parse_args(__doc__)
    configure_torch(1)
    logging.getLogger("fedledger").setLevel(logging.WARNING)
    spec = JobSpec(dataset="digits", model="mlp", trainers=4, rounds=3) if args.quick else JobSpec()
    pairs = 2 if args.quick else 3
    run(spec.with_overrides(trainers=2, rounds=1, local_epochs=1), pipelined=True)  # warm-up
    rows, runs = [], {"in-process": [], "pipelined": []}
    for p in range(pairs):
        for pipelined in ((False, True) if p % 2 == 0 else (True, False)):
            name = "pipelined" if pipelined else "in-process"
            r = run(spec, pipelined=pipelined)
            runs[name].append(r)
            rows.append([p + 1, name, r["wall_s"], r["waited_s"], r["commit_waits_s"], r["chain_work_s"],
                         f"{r['load']:.2f}"])
            print(f"pair {p + 1} {name:10s} {r['wall_s']:7.2f} s", flush=True)
    print()
    print(table(["pair", "chain", "wall s", "waited for chain s", "of which commits s",
                 "chain worked s (own process)", "load (1 min)"], rows))
    summary = {name: {k: median([float(r[k]) for r in rs]) for k in ("wall_s", "waited_s", "commit_waits_s")}
               for name, rs in runs.items()}
    print(f"\nmedians: in-process waited {summary['in-process']['waited_s']:.2f} s "
          f"({summary['in-process']['commit_waits_s']:.2f} for commits), pipelined waited "
          f"{summary['pipelined']['waited_s']:.2f} s "
          f"({summary['pipelined']['commit_waits_s']:.2f} for commits)")
    finals = {str(r["final"]) for rs in runs.values() for r in rs}
    if len(finals) != 1:
        raise SystemExit(f"the two chains ended on different final models: {sorted(finals)}")
    print(f"every run ended on 0x{finals.pop()[:16]}…")
    write_result("chain_pipeline", args.quick, {"spec": spec.model_dump(mode="json"), "pairs": pairs,
                                                 "runs": runs, "medians": summary})


if __name__ == "__main__":
    main()
