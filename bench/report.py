"""Report time: `fedledger report` for a 100-round, 100-organisation job, beside parsing its export.

Workload (synthetic, built here, not simulated: simulating 100 organisations for 100 rounds
takes hours on two cores): a run directory whose chain.json holds the events such a job logs
— 100 registrations, and per round a RoundOpened, 100 UpdateCommitted, CommitsClosed, 67
AggregateProposed (a two-thirds quorum), PrivacySpent and RoundFinalized, two free riders
excluded and flagged in every round — then JobCompleted and 100 Withdrawn: ~17,000 job
events in ~17,000 transactions, each with its block and time, as an RPC export (kind 'rpc',
read as exported: re-executing a synthetic export is impossible, as it was never signed).
The store is empty, so the audit's blob checks fail fast with one finding per missing blob,
and metrics.json gives each round's accuracy. The report runs the audit in full otherwise.

Timed, each the median of 3 runs (1 with `--quick`: 10 rounds × 20 organisations) with its
range: the whole report (open, audit, build, render) as JSON, HTML and PDF, and the
baseline: `json.loads` of chain.json alone.
The PDF is timed like the others: its long listings (event log, findings) are printed as lines.
Bar (issue 14): the report for that job is produced in <= 10 s, in every format.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import median, parse_args, table, verdict, write_result

from fedledger.chain.export import EXPORT_FORMAT
from fedledger.report.build import build_report
from fedledger.report.inputs import from_run_dir
from fedledger.report.render import RenderOptions, render
from fedledger.spec import JobSpec

BAR_S = 10.0
COORD, TOKEN, REGISTRY = "0x" + "c0" * 20, "0x" + "70" * 20, "0x" + "da" * 20


def _addr(i: int) -> str:
    return "0x" + f"{i + 1:040x}"


def _h(rng: random.Random) -> str:
    return "0x" + rng.randbytes(32).hex()


def build_run(out: Path, rounds: int, orgs: int) -> int:
    """Writes spec.json, chain.json, metrics.json and an empty store/; returns the event count."""
    rng = random.Random(0)
    spec = JobSpec.from_dict(
        {
            "name": "bench-report",
            "dataset": "digits",
            "model": "mlp",
            "trainers": orgs,
            "rounds": rounds,
            "dp_epsilon": 64.0,
            "dp_noise_multiplier": 1.5,
        }
    )
    (out / "store").mkdir(parents=True)
    (out / "spec.json").write_text(json.dumps(spec.model_dump(mode="json")))
    events: list[dict[str, Any]] = []
    txs: list[dict[str, Any]] = []
    block, t0 = 0, 1_700_000_000

    def emit(name: str, args: dict[str, Any], sender: str) -> None:
        nonlocal block
        block += 1
        tx = _h(rng)
        txs.append(
            {
                "tx_hash": tx,
                "block_number": block,
                "timestamp": t0 + 2 * block,
                "from": sender,
                "to": COORD,
                "input": "0x",
                "gas_used": 50_000,
            }
        )
        events.append(
            {
                "name": name,
                "args": {"job_id": 1, **args},
                "address": COORD,
                "block_number": block,
                "tx_hash": tx,
                "log_index": 0,
            }
        )

    sponsor, accounts = _addr(999), [_addr(i) for i in range(orgs)]
    model = _h(rng)
    emit(
        "JobCreated",
        {
            "sponsor": sponsor,
            "token": TOKEN,
            "spec_hash": "0x" + spec.spec_hash().hex(),
            "initial_model": model,
            "rounds": rounds,
            "quorum": 67,
            "reward_pool": spec.reward_per_round * rounds,
        },
        sponsor,
    )
    for a in accounts:
        emit("Registered", {"account": a, "trainer": True, "validator": True, "stake": spec.stake}, a)
    riders = accounts[-2:]
    metrics = []
    for r in range(1, rounds + 1):
        emit("RoundOpened", {"round": r, "version": r - 1, "global_model": model, "deadline": 0}, sponsor)
        for a in accounts:
            emit("UpdateCommitted", {"trainer": a, "round": r, "commitment": _h(rng), "num_examples": 500}, a)
        emit("CommitsClosed", {"round": r, "commits": orgs, "examples": 500 * orgs, "deadline": 0}, sponsor)
        aggregate, proposal = _h(rng), _h(rng)
        for a in accounts[:67]:
            emit(
                "AggregateProposed",
                {
                    "validator": a,
                    "round": r,
                    "aggregate": aggregate,
                    "proposal": proposal,
                    "excluded": riders,
                    "flags": 3,
                    "scores": [],
                    "votes": 1,
                },
                a,
            )
        for a in riders:
            emit("UpdateExcluded", {"trainer": a, "round": r}, sponsor)
            emit("TrainerSlashed", {"trainer": a, "round": r, "amount": 10**16, "flags": r}, sponsor)
        emit("PrivacySpent", {"round": r, "micro_epsilon": int(64e6 * (r / rounds) ** 0.5)}, sponsor)
        emit(
            "RoundFinalized",
            {
                "round": r,
                "version": r,
                "aggregate": aggregate,
                "proposal": proposal,
                "accepted_commits": orgs - 2,
                "accepted_weight": 500 * (orgs - 2),
                "reward": spec.reward_per_round,
            },
            sponsor,
        )
        model = aggregate
        metrics.append(
            {
                "round": r,
                "version": r,
                "status": "finalized",
                "commits": orgs,
                "accepted": orgs - 2,
                "rejected": 2,
                "flagged": 2,
                "test_accuracy": 0.5 + 0.4 * r / rounds,
                "test_loss": 2.0 - r / rounds,
                "model_commitment": aggregate,
            }
        )
    emit("JobCompleted", {"version": rounds, "final_model": model}, sponsor)
    for a in accounts:
        emit("Withdrawn", {"account": a, "reward": 10**20, "fees": 0, "stake": spec.stake}, a)
    export = {
        "format": EXPORT_FORMAT,
        "chain": {"kind": "rpc", "description": "synthetic RPC export", "chain_id": 1, "block_time": 1},
        "contracts": {"Coordinator": COORD, "RewardToken": TOKEN, "DataRegistry": REGISTRY},
        "job_id": 1,
        "participants": {a: f"org-{i + 1:03d}" for i, a in enumerate(accounts)} | {sponsor: "sponsor"},
        "transactions": txs,
        "events": events,
    }
    (out / "chain.json").write_text(json.dumps(export))
    (out / "metrics.json").write_text(json.dumps(metrics))
    return len(events)


def timed(fn: Any, repeats: int) -> tuple[float, float, float, Any]:
    times, last = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - t)
    return median(times), min(times), max(times), last


def main() -> None:
    args = parse_args(__doc__)
    quick = bool(args.quick)
    rounds, orgs = (10, 20) if quick else (100, 100)
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        n_events = build_run(run, rounds, orgs)
        size = (run / "chain.json").stat().st_size
        base = timed(lambda: json.loads((run / "chain.json").read_text()), repeats)
        results: dict[str, Any] = {}
        for fmt in ("json", "html", "pdf"):

            def once(fmt: str = fmt) -> int:
                return len(render(build_report(from_run_dir(run)), RenderOptions(format=fmt)))  # type: ignore[arg-type]

            med, lo, hi, nbytes = timed(once, repeats)
            results[fmt] = {
                "median_s": med,
                "min_s": lo,
                "max_s": hi,
                "bytes": nbytes,
                "ok": med <= BAR_S,
                "runs": repeats,
            }
    rows = [["json.loads(chain.json) (baseline)", f"{base[0]:.3f}", f"{base[1]:.3f}–{base[2]:.3f}", "", ""]]
    rows += [
        [
            f"report --format {k}",
            f"{v['median_s']:.2f}",
            f"{v['min_s']:.2f}–{v['max_s']:.2f}",
            f"{v['median_s'] / base[0]:.0f}×",
            verdict(v["ok"]),
        ]
        for k, v in results.items()
    ]
    print(
        f"{rounds} rounds × {orgs} organisations: {n_events:,} events, chain.json {size / 1e6:.1f} MB, "
        f"{repeats} repeats"
    )
    print(table(["what", "median s", "range s", "× baseline", f"≤ {BAR_S:g} s"], rows))
    write_result(
        "report",
        quick,
        {
            "workload": {
                "rounds": rounds,
                "organisations": orgs,
                "events": n_events,
                "chain_json_bytes": size,
                "kind": "synthetic RPC export, empty store",
                "repeats": repeats,
            },
            "baseline_json_loads_s": {"median": base[0], "min": base[1], "max": base[2]},
            "report": results,
            "bar_s": BAR_S,
            "ok": all(v["ok"] for v in results.values()),
        },
    )


if __name__ == "__main__":
    main()
