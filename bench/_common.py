"""Shared plumbing for the benchmark scripts: arguments, tables, medians and JSON results.

Not a benchmark itself. Every script imports it as `_common` (scripts run as
`python bench/NAME.py`, so `bench/` is on the import path).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def parse_args(doc: str | None, extra: tuple[str, str] | None = None) -> argparse.Namespace:
    """--quick (and one optional extra flag, given as (flag, help))."""
    first = (doc or "").strip().splitlines()[0] if doc else ""
    p = argparse.ArgumentParser(description=first)
    p.add_argument("--quick", action="store_true", help="small version (< 60 s) for smoke tests")
    if extra:
        p.add_argument(extra[0], action="store_true", help=extra[1])
    return p.parse_args()


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(c: Any) -> str:
    if isinstance(c, float):
        return f"{c:,.4g}" if abs(c) < 1000 else f"{c:,.0f}"
    if isinstance(c, int) and not isinstance(c, bool):
        return f"{c:,}"
    return str(c)


def write_result(name: str, quick: bool, payload: dict[str, Any]) -> Path:
    """Writes bench/results/NAME.json (NAME.quick.json for --quick) and returns its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / (f"{name}.quick.json" if quick else f"{name}.json")
    doc = {
        "benchmark": name,
        "quick": quick,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(),
                    "cpus": _cpus()},
        **payload,
    }
    path.write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
    print(f"\nresult written to {path.relative_to(ROOT)}")
    return path


def _cpus() -> int | None:
    import os

    return os.cpu_count()


def _jsonable(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, Path):
        return str(v)
    return str(v)


def staked_job(
    *, committee: int, trainers: int, quorum: int, min_commits: int, rounds: int, **overrides: Any
) -> tuple[Any, int, list[Any], list[Any]]:
    """A fresh in-process chain with one job whose committee and trainers are funded and registered.

    Returns (deployment, job id, validators, trainers). The gas benches measure on it.
    """
    from eth_utils import keccak

    from fedledger.chain.base import dev_accounts
    from fedledger.chain.contracts import JobParams, deploy_contracts
    from fedledger.chain.inprocess import InProcessChain

    stake = 10**18
    accounts = dev_accounts(1 + committee + trainers)
    sponsor, validators, members = accounts[0], accounts[1 : 1 + committee], accounts[1 + committee :]
    d = deploy_contracts(InProcessChain(), sponsor)
    d.token.mint(sponsor, sponsor.address, 10**24)
    d.token.approve(sponsor, d.coordinator.address, 10**24)
    fields: dict[str, Any] = dict(
        token=d.token.address,
        spec_hash=keccak(b"spec"),
        initial_model=keccak(b"m0"),
        rounds=rounds,
        min_commits=min_commits,
        quorum=quorum,
        commit_window=3600,
        aggregate_window=3600,
        max_failures=1,
        stake=stake,
        reward_per_round=10**20,
        slash_bps=1_000,
        max_flags=3,
        committee=[v.address for v in validators],
        allowlist=[],
    )
    fields.update(overrides)
    job, _ = d.coordinator.create_job(sponsor, JobParams(**fields))
    for t in validators + members:
        d.token.mint(sponsor, t.address, stake)
        d.token.approve(t, d.coordinator.address, stake)
        d.coordinator.register(t, job, as_trainer=t in members)
    return d, job, validators, members
