"""Token conservation under random protocol traffic: >= 10,000 checked steps (issue 4's CI profile).

Runs tests/contracts/test_coordinator_properties.py — the stateful property test of the
coordinator against a Python model of its money — with enough Hypothesis examples for at
least 10,000 steps, each followed by every invariant: total supply = sum of balances; the
coordinator holds exactly pools + stakes + claimable rewards + bounded rounding dust; no
payout without a finalised accepted commit and no double payout; pools and stakes follow
every slash (flags and dissent reports) and ejection. Prints the steps and transactions
checked and the coverage of the interesting paths. --quick runs about 1,000 steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, parse_args, table, verdict, write_result

TARGET = 10_000


def main() -> None:
    args = parse_args(__doc__)
    examples = 20 if args.quick else 140  # about 80 steps each
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.jsonl"
        env = dict(
            os.environ, FEDLEDGER_PROPERTY_EXAMPLES=str(examples), FEDLEDGER_PROPERTY_REPORT=str(report)
        )
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/contracts/test_coordinator_properties.py",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        runs = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    print(proc.stdout[-1500:])
    totals = {k: sum(r[k] for r in runs) for k in (runs[0] if runs else {})}
    target = 1_000 if args.quick else TARGET
    passed = proc.returncode == 0 and totals.get("steps", 0) >= target
    print(
        table(
            ["what", "count"],
            [[k.replace("_", " "), v] for k, v in totals.items()] + [["examples", len(runs)]],
        )
    )
    print(
        f"\ninvariants held for {totals.get('steps', 0):,} steps in {wall:.0f} s "
        f"(target ≥ {target:,}; property test {'passed' if proc.returncode == 0 else 'FAILED'}) "
        f"-> {verdict(passed)}"
    )
    write_result(
        "conservation",
        args.quick,
        {"totals": totals, "examples": len(runs), "wall_s": wall, "target_steps": target, "passed": passed},
    )


if __name__ == "__main__":
    main()
