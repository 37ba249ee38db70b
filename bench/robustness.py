"""Robustness grid: attack x aggregation rule x malicious fraction, each cell a full protocol run.

Runs `fedledger.sim.robustness` over MNIST (Dirichlet 0.5, 10 trainers, MLP, 12 rounds,
seed 0): one clean run per rule (the baseline is clean FedAvg, measured in the same run)
and six attacks at 20% and 40% malicious. Prints the table, writes
bench/results/robustness.csv, robustness.png (heatmaps) and robustness.json, and
checks the issue's bars: at 20% malicious under label flipping, sign flipping, Gaussian
noise and backdoor scaling, the best rule keeps test error <= clean FedAvg error + 0.04
and backdoor success <= 5%; no honest trainer is slashed in any clean run.
--quick runs a reduced grid (two rules, four attacks at 20%).
"""

from __future__ import annotations

import json
import time

from _common import RESULTS, parse_args, table, verdict, write_result

from fedledger.sim.robustness import (
    ATTACK_KINDS,
    BARRED_ATTACKS,
    GRID_SPEC,
    RULES,
    CellResult,
    check_bars,
    default_workers,
    grid_cells,
    plot_heatmap,
    run_grid,
    write_csv,
)

GRID_ROUNDS = GRID_SPEC.rounds


def markdown(results: list[CellResult]) -> str:
    """Accuracy per (attack, fraction) x rule; backdoor success in brackets on backdoor rows;
    then malicious trainers slashed per cell, and honest trainers flagged wherever any were."""
    rules = [r for r in RULES if any(x.rule == r for x in results)]
    rows = sorted({(x.attack, x.fraction) for x in results}, key=lambda k: (k[1] > 0, k[1], k[0]))
    by = {(x.attack, x.fraction, x.rule): x for x in results}
    head = "| attack | " + " | ".join(rules) + " |\n|---|" + "---|" * len(rules)
    acc, caught = [head], [head]
    for a, f in rows:
        label = "clean" if a == "none" else f"{a} {f:.0%}"
        cells, slashed = [], []
        for rule in rules:
            c = by.get((a, f, rule))
            if c is None:
                cells.append("")
                slashed.append("")
                continue
            text = f"{100 * c.accuracy:.1f}"
            if a == "backdoor":
                text += f" ({100 * c.backdoor_success:.0f}%)"
            if c.rounds_finalized < GRID_ROUNDS:
                text += f" [{c.rounds_finalized}/{GRID_ROUNDS} rounds]"
            cells.append(text)
            honest = f", {c.honest_flagged} honest" if c.honest_flagged else ""
            slashed.append(f"{c.malicious_slashed}/{c.malicious}{honest}")
        acc.append(f"| {label} | " + " | ".join(cells) + " |")
        if a != "none":
            caught.append(f"| {label} | " + " | ".join(slashed) + " |")
    return (
        "Test accuracy % (backdoor success):\n\n"
        + "\n".join(acc)
        + "\n\nMalicious trainers slashed (and honest trainers flagged, if any):\n\n"
        + "\n".join(caught)
        + "\n"
    )


def main() -> None:
    args = parse_args(__doc__, extra=("--summary-only", "print the Markdown tables from saved results"))
    if args.quick:
        cells = grid_cells(("fedavg", "trimmed_mean"), BARRED_ATTACKS, (0.2,))
    else:
        cells = grid_cells(RULES, ATTACK_KINDS, (0.2, 0.4))
    t0 = time.perf_counter()
    done = 0

    def progress(r: CellResult) -> None:
        nonlocal done
        done += 1
        print(
            f"[{done:>3}/{len(cells)}] {r.attack:<10} {r.fraction:>4.0%} {r.rule:<14} "
            f"acc {r.accuracy:.3f}  backdoor {r.backdoor_success:.3f}  "
            f"slashed {r.malicious_slashed}/{r.malicious}  honest flagged {r.honest_flagged}  "
            f"({r.seconds:.0f} s)",
            flush=True,
        )

    if args.summary_only:
        saved = json.loads((RESULTS / f"robustness{'.quick' if args.quick else ''}.json").read_text())
        print(markdown([CellResult(**c) for c in saved["cells"]]))
        return
    workers = default_workers()
    print(f"{len(cells)} runs on {workers} worker processes", flush=True)
    results = run_grid(cells, workers=workers, on_result=progress)
    wall = time.perf_counter() - t0
    suffix = ".quick" if args.quick else ""
    write_csv(results, RESULTS / f"robustness{suffix}.csv")
    plot_heatmap(results, RESULTS / f"robustness{suffix}.png")
    rows = [
        [
            "clean" if r.attack == "none" else r.attack,
            f"{r.fraction:.0%}",
            r.rule,
            f"{r.accuracy:.3f}",
            f"{r.backdoor_success:.1%}",
            f"{r.malicious_slashed}/{r.malicious}",
            r.honest_flagged,
            r.rounds_finalized,
        ]
        for r in results
    ]
    print()
    print(
        table(
            [
                "attack",
                "malicious",
                "rule",
                "test acc",
                "backdoor",
                "malicious slashed",
                "honest flagged",
                "rounds",
            ],
            rows,
        )
    )
    checks = check_bars(results)
    print()
    for name, ok, detail in checks:
        print(f"{verdict(ok)}  {name}  ({detail})")
    md = markdown(results)
    (RESULTS / f"robustness{suffix}.md").write_text(md)
    print()
    print(md)
    print(f"\ngrid wall time {wall:.0f} s ({wall / 60:.1f} min; bar ≤ 20 min for the full grid)")
    write_result(
        "robustness",
        args.quick,
        {
            "cells": [r.__dict__ for r in results],
            "checks": [{"bar": n, "passed": ok, "detail": d} for n, ok, d in checks],
            "wall_s": wall,
            "workers": workers,
            "passed": all(ok for _, ok, _ in checks) and (args.quick or wall <= 20 * 60),
        },
    )


if __name__ == "__main__":
    main()
