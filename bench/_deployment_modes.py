"""bench/deployment.py's optimistic mode: the job's spec, and round times with and without training ahead.

Not a benchmark itself; kept apart so that deployment.py stays one screenful of plumbing shorter.
"""

from __future__ import annotations

from typing import Any

from _common import table


def optimistic_spec(spec: dict[str, Any], window: int) -> dict[str, Any]:
    """The workload's job in optimistic mode with a challenge window of `window` seconds.

    Quorum 2: an escalation's vote among the 4 organisations without its two parties. Every
    round waits for all 4 commits, as quorum mode's rounds do in effect (every node trains).
    """
    return {
        **spec,
        "verification": "optimistic",
        "quorum": 2,
        "min_commits": 4,
        "challenge_window_s": window,
        "proposal_window_s": 20,
        "aggregate_window_s": 60 + window,
    }


def compare_speculation(results: dict[str, dict[str, Any]], chosen: dict[str, Any]) -> None:
    """Round wall time with and without training ahead, per workload: median and range over the runs."""

    def spread(r: dict[str, Any], key: str) -> str:
        lo, hi = r.get(key + "_range", [r[key], r[key]])
        return f"{r[key]:.2f} [{lo:.2f}–{hi:.2f}]"

    rows = []
    for name, spec in chosen.items():
        on, off = results[f"{name} speculate on"], results[f"{name} speculate off"]
        window = spec.get("challenge_window_s", "-")
        rows.append(
            [
                name,
                window,
                spread(on, "slowest_train_mean_s"),
                spread(on, "round_wall_mean_s"),
                spread(off, "round_wall_mean_s"),
                round(off["round_wall_mean_s"] - on["round_wall_mean_s"], 2),
                f"{on['commits_trained_ahead'][0]}/{on['commits_trained_ahead'][1]}",
                f"{off['commits_trained_ahead'][0]}/{off['commits_trained_ahead'][1]}",
            ]
        )
    print("\nround wall time (mean of rounds 2.. per run; median [min–max] over the runs), seconds")
    print(
        table(
            [
                "workload",
                "window s",
                "slowest training s",
                "round s, speculate on",
                "round s, speculate off",
                "saved s/round",
                "ahead (on)",
                "ahead (off)",
            ],
            rows,
        )
    )
