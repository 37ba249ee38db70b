"""Dashboard: first paint and event ingestion for a 100-round, 100-organisation job export.

Workload: a run directory whose chain.json holds the events such a job emits, in the
contracts' own event shapes (JobCreated; 100 Registered; per round RoundOpened, 100
UpdateCommitted, CommitsClosed, 3 AggregateProposed, RoundFinalized; then 100 each of
ReputationUpdated and Withdrawn: 10,901 events), with a spec.json and a 100-row metrics.json.
It is generated, not simulated: a 100 x 100 simulation takes hours and the dashboard reads
only the export; `kind: "rpc"` makes the dashboard read it as is, as it does a real export.

Each repeat, in one process:
- `json` alone: `json.loads` of chain.json (the floor any reader pays);
- ingestion: `RunDirSource(dir)`: read and parse the export with the audit's reader, decode
  every event (`from_export`), fold every one into the ledger; events/s over that whole path;
- first paint: the app served by uvicorn, Chromium loads /job/1; the time from navigation
  start until the page's script has drawn the rounds table and both curves from the state
  embedded in the page (`window.fedledgerPainted`), and Chromium's first-contentful-paint.
Median and range over the repeats (3, or 1 with --quick). Bars: first paint <= 1 s,
ingestion >= 5,000 events/s.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import median, parse_args, table, verdict, write_result

from fedledger.dashboard.sources import RunDirSource
from fedledger.spec import JobSpec

ROUNDS, ORGS, VALIDATORS = 100, 100, 3
PAINT_BAR, INGEST_BAR = 1.0, 5000.0
COORD, REGISTRY, TOKEN = "0x" + "c0" * 20, "0x" + "d0" * 20, "0x" + "e0" * 20


def _h(i: int, salt: int) -> str:
    return "0x" + f"{salt:08x}{i:056x}"


def make_run(out: Path) -> int:
    """Writes the 100 x 100 run directory; returns how many events it holds."""
    orgs = [f"0x{i + 1:040x}" for i in range(ORGS)]
    events: list[dict[str, Any]] = []
    block = 0

    def emit(name: str, address: str = COORD, **args: Any) -> None:
        events.append(
            {"name": name, "args": {"job_id": 1, **args}, "address": address, "block_number": block,
             "tx_hash": _h(len(events), 7), "log_index": 0}
        )

    wei = 10**18
    block += 1
    emit("JobCreated", sponsor=orgs[0], token=TOKEN, spec_hash=_h(0, 1), initial_model=_h(0, 2),
         rounds=ROUNDS, quorum=2, reward_pool=ROUNDS * 100 * wei)
    for a in orgs:
        block += 1
        emit("Registered", account=a, trainer=True, validator=a in orgs[:VALIDATORS], stake=wei)
    for r in range(1, ROUNDS + 1):
        block += 1
        emit("RoundOpened", round=r, version=r - 1, global_model=_h(r - 1, 2), deadline=1_800_000_000 + r)
        for i, a in enumerate(orgs):
            block += 1
            emit("UpdateCommitted", trainer=a, round=r, commitment=_h(r * 1000 + i, 3), num_examples=300 + i)
        emit("CommitsClosed", round=r, commits=ORGS, examples=ORGS * 350, deadline=1_800_000_100 + r)
        for v in orgs[:VALIDATORS]:
            block += 1
            emit("AggregateProposed", validator=v, round=r, aggregate=_h(r, 2), proposal=_h(r, 4),
                 excluded=[], flags=0, scores=[], votes=1)
        emit("RoundFinalized", round=r, version=r, aggregate=_h(r, 2), proposal=_h(r, 4),
             accepted_commits=ORGS, accepted_weight=ORGS * 350, reward=100 * wei)
    block += 1
    emit("JobCompleted", version=ROUNDS, final_model=_h(ROUNDS, 2))
    for a in orgs:
        block += 1
        emit("ReputationUpdated", account=a, score=5000, rounds=ROUNDS, scored_rounds=0, flags=0, jobs=1)
        emit("Withdrawn", account=a, reward=ROUNDS * wei, fees=0, stake=wei)
    out.mkdir(parents=True)
    export = {
        "format": "fedledger-chain-export/1",
        "chain": {"kind": "rpc", "description": "generated job", "chain_id": 31337, "block_time": 1},
        "contracts": {"Coordinator": COORD, "DataRegistry": REGISTRY, "RewardToken": TOKEN},
        "contract_sources_sha256": "",
        "job_id": 1,
        "participants": {a: f"org-{i + 1:03d}" for i, a in enumerate(orgs)},
        "transactions": [],
        "events": events,
    }
    (out / "chain.json").write_text(json.dumps(export))
    spec = JobSpec.from_dict(dict(dataset="digits", model="mlp", trainers=ORGS, rounds=ROUNDS, name="bench"))
    (out / "spec.json").write_text(json.dumps(spec.model_dump(mode="json")))
    metrics = [
        {"round": r, "version": r, "test_accuracy": 1 - 0.5 / r, "test_loss": 2.0 / r, "train_loss": 1.9 / r}
        for r in range(1, ROUNDS + 1)
    ]
    (out / "metrics.json").write_text(json.dumps(metrics))
    return len(events)


def first_paint(source: RunDirSource) -> tuple[float, float] | None:
    """(painted, first-contentful-paint) in seconds from navigation start; None without Chromium."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
    from conftest import Served  # the browser tests' own server harness
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    app = Served(source, poll_seconds=1.0)
    try:
        driver.get(app.url + "/")  # warm the connection and the static files' first load
        driver.get(app.url + "/job/1")
        painted = driver.execute_script("return window.fedledgerPainted") / 1000
        fcp = driver.execute_script(
            "const e = performance.getEntriesByName('first-contentful-paint')[0];"
            "return e ? e.startTime : null"
        )
        rows = len(driver.find_elements("css selector", "#rounds tbody tr"))
        assert rows == ROUNDS, f"the page shows {rows} rounds, not {ROUNDS}"
        return painted, (fcp or 0) / 1000
    finally:
        driver.quit()
        app.stop()


def main() -> None:
    args = parse_args(__doc__)
    repeats = 1 if args.quick else 3
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    try:
        n = make_run(work / "run")
        size = (work / "run" / "chain.json").stat().st_size
        runs: list[dict[str, Any]] = []
        for _ in range(repeats):
            t = time.perf_counter()
            json.loads((work / "run" / "chain.json").read_text())
            parse = time.perf_counter() - t
            t = time.perf_counter()
            source = RunDirSource(work / "run")
            ingest = time.perf_counter() - t
            assert source.ledger.events == n and len(source.ledger.rounds) == ROUNDS
            paint = first_paint(source)
            runs.append({"json_parse_s": parse, "ingest_s": ingest, "events_per_s": n / ingest,
                         "painted_s": paint[0] if paint else None, "fcp_s": paint[1] if paint else None})
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def stat(key: str) -> dict[str, float] | None:
        xs = [r[key] for r in runs if r[key] is not None]
        return {"median": median(xs), "min": min(xs), "max": max(xs)} if xs else None

    s = {k: stat(k) for k in ("json_parse_s", "ingest_s", "events_per_s", "painted_s", "fcp_s")}
    paint_ok = s["painted_s"] is not None and s["painted_s"]["median"] <= PAINT_BAR
    ingest_ok = s["events_per_s"]["median"] >= INGEST_BAR  # type: ignore[index]

    def fmt(key: str, unit: float = 1.0, spec: str = ".3f") -> str:
        v = s[key]
        return "not measured (no chromium)" if v is None else (
            f"{v['median'] * unit:{spec}} (range {v['min'] * unit:{spec}}–{v['max'] * unit:{spec}})")

    print(f"workload: {ROUNDS} rounds x {ORGS} organisations, {n:,} events, chain.json {size / 1e6:.1f} MB, "
          f"{repeats} repeats")
    print(table(
        ["measure", "median (range)", "beside: json.loads of the export alone, s", "bar", "verdict"],
        [
            ["first paint (data drawn), s", fmt("painted_s"), fmt("json_parse_s"), f"<= {PAINT_BAR}",
             verdict(paint_ok)],
            ["first contentful paint, s", fmt("fcp_s"), fmt("json_parse_s"), "—", "—"],
            ["ingestion (read, parse, decode, fold), events/s", fmt("events_per_s", spec=",.0f"),
             fmt("json_parse_s"), f">= {INGEST_BAR:,.0f}", verdict(ingest_ok)],
        ],
    ))
    write_result("dashboard", args.quick, {
        "workload": {"rounds": ROUNDS, "organisations": ORGS, "events": n, "export_bytes": size,
                     "repeats": repeats},
        "runs": runs, "summary": s,
        "bars": {"first_paint_s": PAINT_BAR, "events_per_s": INGEST_BAR},
        "verdicts": {"first_paint": verdict(paint_ok), "ingestion": verdict(ingest_ok)},
    })


if __name__ == "__main__":
    main()
