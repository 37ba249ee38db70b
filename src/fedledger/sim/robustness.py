"""The robustness grid: attack x rule x malicious fraction, each cell a full simulation.

Every cell runs the real protocol (contracts, validators, flags, slashing) on MNIST
with a Dirichlet split and fixed seeds, and reports what an operator would ask: how
accurate the final model is, whether a backdoor got in, and whom the chain punished
(malicious trainers caught, honest ones wrongly flagged). `bench/robustness.py` runs
the full grid; the test suite runs a small one and asserts the issue's bars on it.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from fedledger.sim.attacks import Attack
from fedledger.spec import JobSpec

RULES = ("fedavg", "median", "trimmed_mean", "krum", "multikrum", "clipped_fedavg", "fltrust")
ATTACK_KINDS = ("label-flip", "sign-flip", "gaussian", "backdoor", "free-ride", "sybil")
#: The attacks the issue's bars name (free riding and Sybil are reported, not barred).
BARRED_ATTACKS = ("label-flip", "sign-flip", "gaussian", "backdoor")
#: Bars: test error <= clean FedAvg error + 0.04 and backdoor success <= 5% at 20% malicious.
ERROR_MARGIN = 0.04
BACKDOOR_BAR = 0.05

#: A grid cell's job: 10 organisations, MNIST, Dirichlet(0.5), a 2-layer MLP so the whole
#: grid fits its time budget on 2 cores; a committee of 3 with quorum 2 (every validator
#: computes the same bytes, so more of them would only repeat the work).
GRID_SPEC = JobSpec(
    name="robustness",
    dataset="mnist",
    partition="dirichlet",
    alpha=0.5,
    model="mlp",
    trainers=10,
    rounds=12,
    local_epochs=2,
    validators=3,
    quorum=2,
    seed=0,
)


@dataclass(frozen=True)
class Cell:
    attack: str  # "none" for the clean run
    rule: str
    fraction: float


@dataclass
class CellResult:
    attack: str
    rule: str
    fraction: float
    accuracy: float
    backdoor_success: float
    malicious: int
    malicious_slashed: int
    honest_flagged: int  # honest trainers flagged at least once
    honest_flags: int  # flags on honest trainers in all
    rounds_finalized: int
    seconds: float


def grid_cells(
    rules: Sequence[str] = RULES,
    attacks: Sequence[str] = ATTACK_KINDS,
    fractions: Sequence[float] = (0.2, 0.4),
) -> list[Cell]:
    """One clean cell per rule, then every attack x rule x nonzero fraction."""
    cells = [Cell("none", r, 0.0) for r in rules]
    cells += [Cell(a, r, f) for f in fractions if f > 0 for a in attacks for r in rules]
    return cells


def run_cell(cell: Cell, base: JobSpec = GRID_SPEC) -> CellResult:
    """One simulation in a throwaway run directory (torch on one thread)."""
    from fedledger.sim.simulate import Simulation
    from fedledger.training.torch_client import configure_torch

    configure_torch(1)
    spec = base.with_overrides(aggregation=cell.rule, name=f"{cell.attack}-{cell.rule}")
    attack = Attack(cell.attack, cell.fraction) if cell.attack != "none" and cell.fraction > 0 else None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedledger-grid-") as tmp:
        result = Simulation(spec, out_dir=Path(tmp), attack=attack).run()
    bad = set(result.malicious)
    honest_flagged = [org for org in result.flags if org not in bad]
    return CellResult(
        attack=cell.attack,
        rule=cell.rule,
        fraction=cell.fraction,
        accuracy=result.final_accuracy,
        backdoor_success=result.backdoor_success,
        malicious=len(bad),
        malicious_slashed=sum(1 for org in bad if result.flags.get(org)),
        honest_flagged=len(honest_flagged),
        honest_flags=sum(result.flags[o] for o in honest_flagged),
        rounds_finalized=sum(1 for m in result.rounds if m.status == "finalized"),
        seconds=time.perf_counter() - t0,
    )


def run_grid(
    cells: Iterable[Cell],
    *,
    base: JobSpec = GRID_SPEC,
    workers: int = 1,
    on_result: Callable[[CellResult], None] | None = None,
) -> list[CellResult]:
    """Runs the cells, `workers` processes at a time; results in cell order."""
    cells = list(cells)
    if workers <= 1:
        out = []
        for c in cells:
            out.append(run_cell(c, base))
            if on_result:
                on_result(out[-1])
        return out
    results: dict[int, CellResult] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_cell, c, base): i for i, c in enumerate(cells)}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if on_result:
                on_result(results[futures[fut]])
    return [results[i] for i in range(len(cells))]


def check_bars(results: Sequence[CellResult], fraction: float = 0.2) -> list[tuple[str, bool, str]]:
    """(bar, passed, detail) for the issue's bars on whatever part of the grid was run."""
    checks: list[tuple[str, bool, str]] = []
    clean = {r.rule: r for r in results if r.attack == "none"}
    for r in clean.values():
        checks.append(
            (
                f"clean run, {r.rule}: no honest trainer slashed",
                r.honest_flagged == 0,
                f"{r.honest_flagged} flagged",
            )
        )
    if "fedavg" not in clean:
        return checks
    limit = (1 - clean["fedavg"].accuracy) + ERROR_MARGIN
    for attack in BARRED_ATTACKS:
        cells = [r for r in results if r.attack == attack and math.isclose(r.fraction, fraction)]
        if not cells:
            continue
        ok = [r for r in cells if 1 - r.accuracy <= limit and r.backdoor_success <= BACKDOOR_BAR]
        best = max(ok or cells, key=lambda r: (r.accuracy, -r.backdoor_success))
        checks.append(
            (
                f"{attack} at {fraction:.0%}: best rule error <= {limit:.3f}, backdoor <= {BACKDOOR_BAR:.0%}",
                bool(ok),
                f"best {best.rule}: error {1 - best.accuracy:.3f}, backdoor {best.backdoor_success:.1%}",
            )
        )
    return checks


def write_csv(results: Sequence[CellResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(asdict(results[0])))
        w.writeheader()
        for r in results:
            w.writerow(asdict(r))


def plot_heatmap(results: Sequence[CellResult], path: Path) -> None:
    """Accuracy and backdoor success per (attack, fraction) x rule, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rules = [r for r in RULES if any(x.rule == r for x in results)]
    rows = sorted({(x.attack, x.fraction) for x in results}, key=lambda k: (k[1] > 0, k[0], k[1]))
    by = {(x.attack, x.fraction, x.rule): x for x in results}
    labels = ["clean" if a == "none" else f"{a} {f:.0%}" for a, f in rows]
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.3 * len(rules) * 2, 1.5 + 0.45 * len(rows)))
    panels: list[tuple[str, Callable[[CellResult], float], str, tuple[float, float]]] = [
        ("test accuracy", lambda c: c.accuracy, "RdYlGn", (0, 1)),
        ("backdoor success", lambda c: c.backdoor_success, "Reds", (0, 1)),
    ]
    for ax, (title, value, cmap, (lo, hi)) in zip(axes, panels, strict=True):
        grid = np.full((len(rows), len(rules)), np.nan)
        for i, (a, f) in enumerate(rows):
            for j, rule in enumerate(rules):
                cell = by.get((a, f, rule))
                if cell is not None:
                    grid[i, j] = value(cell)
        ax.imshow(grid, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        for i in range(len(rows)):
            for j in range(len(rules)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{100 * grid[i, j]:.0f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(rules)), rules, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), labels)
        ax.set_title(f"{title} (%)")
    fig.suptitle("fedledger robustness grid: MNIST, Dirichlet(0.5), 10 trainers")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))
