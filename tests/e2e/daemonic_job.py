"""What a daemonic child runs in test_sim_pipeline.py.

A module of its own, importing nothing from the tests: a spawned child imports the function by
its module name, and under pytest-xdist `import conftest` there may find another directory's
conftest (the first on sys.path), which killed the child and left the parent waiting.
"""

from __future__ import annotations

import tempfile
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec


def run_job(spec: JobSpec, out: Queue[Any]) -> None:
    """Runs `spec` and puts (chain class, committee checks in turn, final commitment) on `out`."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sim = Simulation(spec, out_dir=Path(tmp) / "run")
            result = sim.run()
            in_turn = sim.committee.check_store is None
            out.put((type(sim.chain.inner).__name__, in_turn, result.final_commitment))
    except BaseException as exc:  # reported to the parent, which would otherwise only see a dead child
        out.put(("error", f"{type(exc).__name__}: {exc}", b""))
