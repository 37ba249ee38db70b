"""Audit time: auditing a run directory against the simulation that left it.

Measures, in one process, the wall time of `fedledger simulate --out DIR --quiet`
(called as `fedledger.cli.main.main([...])`, the job's defaults) and then of
`fedledger.audit.run.audit_run_dir(DIR)` on the directory it left: the chain
re-executed from chain.json, every event checked against the store
(`audit_events`), and the derived files checked (`check_outputs`: final model,
model card, participants, calldata, and every round's recorded accuracy
recomputed on the held-out split). The audit report must be ok. Each repeat is
one simulate + audit pair on a fresh directory; the median and range of each
side and of the per-pair ratio audit / simulate are reported, with the audit's
split (chain re-execution, event checks, output checks, and within these the
accuracy recomputation: dataset load, model build and one evaluation per round).
The per-process dataset caches are cleared before each side, so each pays its
own dataset load as a separate `fedledger audit` process would; imports,
contract artifacts and the like are warmed by an untimed tiny pair first.

Workload: the CLI defaults (mnist, cnn, 10 organisations, Dirichlet 0.5, 20
rounds), 3 repeats; `--quick`: digits, 3 trainers, 2 rounds, 1 repeat (a smoke
test: a toy job is dominated by fixed cost, so its ratio is not the bar).

Bar: auditing a run costs <= 0.3 of simulating it (median ratio audit /
simulate <= 0.3); the verdict follows the median.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import median, parse_args, table, verdict, write_result

import fedledger.audit.outputs as outputs_mod
import fedledger.audit.run as audit_mod
import fedledger.training.datasets as datasets_mod
from fedledger.cli.main import main as cli_main

BAR = 0.3
_split: dict[str, float] = {}


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, adding its wall time to _split[name] (diagnosis only; behaviour unchanged)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _split[name] = _split.get(name, 0.0) + time.perf_counter() - t0

    return wrapper


def _timed_evaluator(spec: Any, store: Any) -> Callable[[bytes], tuple[float, float]]:
    """outputs._evaluator with its setup (dataset, model) and every evaluation counted."""
    evaluate = _timed("accuracy_s", _orig_evaluator)(spec, store)
    return _timed("accuracy_s", evaluate)


# the names audit_run_dir calls, wrapped where it looks them up (no source change)
audit_mod.reexecute = _timed("reexecute_s", audit_mod.reexecute)  # type: ignore[assignment]
audit_mod.audit_events = _timed("audit_events_s", audit_mod.audit_events)  # type: ignore[assignment]
audit_mod.check_outputs = _timed("check_outputs_s", audit_mod.check_outputs)  # type: ignore[assignment]
_orig_evaluator = outputs_mod._evaluator
outputs_mod._evaluator = _timed_evaluator  # type: ignore[assignment]


def _clear_dataset_caches() -> None:
    for name in dir(datasets_mod):
        if name.startswith("_load_") and hasattr(fn := getattr(datasets_mod, name), "cache_clear"):
            fn.cache_clear()


def pair(flags: list[str]) -> dict[str, Any]:
    """One simulate + audit pair on a fresh run directory; their wall times and the audit's split."""
    with tempfile.TemporaryDirectory(prefix="fedledger-bench-") as tmp:
        run = Path(tmp) / "run"
        _clear_dataset_caches()
        said = io.StringIO()  # the CLI's closing summary, shown only if it fails
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(said):
            rc = cli_main(["simulate", "--out", str(run), "--quiet", *flags])
        sim = time.perf_counter() - t0
        assert rc == 0, f"fedledger simulate exited with {rc}: {said.getvalue()[-2000:]}"
        _clear_dataset_caches()
        _split.clear()
        t0 = time.perf_counter()
        report = audit_mod.audit_run_dir(run)
        aud = time.perf_counter() - t0
        assert report.ok, [f.__dict__ for f in report.findings if f.severity == "error"]
        split = {k: _split.get(k, 0.0) for k in
                 ("reexecute_s", "audit_events_s", "check_outputs_s", "accuracy_s")}
        split["rest_s"] = aud - split["reexecute_s"] - split["audit_events_s"] - split["check_outputs_s"]
        return {"simulate_s": sim, "audit_s": aud, "ratio": aud / sim, "audit_split_s": split,
                "checks_passed": sum(report.checks.values()),
                "warnings": sum(f.severity == "warning" for f in report.findings)}


def _stats(xs: list[float]) -> dict[str, float]:
    return {"median": median(xs), "min": min(xs), "max": max(xs)}


def main() -> None:
    args = parse_args(__doc__)
    logging.getLogger("fedledger").setLevel(logging.WARNING)
    if args.quick:
        flags, repeats = ["--rounds", "2", "--trainers", "3", "--dataset", "digits"], 1
        workload = "digits, cnn, 3 trainers, 2 rounds"
    else:
        flags, repeats = [], 3
        workload = "CLI defaults: mnist, cnn, 10 trainers, Dirichlet 0.5, 20 rounds"
    print(f"workload: {workload}; {repeats} simulate + audit pair(s), each on a fresh run directory\n")
    # untimed warm-up: imports, contract artifacts, the dataset file in the OS cache
    warm_dataset = "digits" if args.quick else "mnist"
    pair(["--dataset", warm_dataset, "--trainers", "2", "--rounds", "1", "--local-epochs", "1"])
    runs: list[dict[str, Any]] = []
    for i in range(repeats):
        runs.append(pair(flags))
        r = runs[-1]
        print(f"pair {i + 1}: simulate {r['simulate_s']:7.2f} s, audit {r['audit_s']:6.2f} s, "
              f"ratio {r['ratio']:.3f}", flush=True)
    sim, aud, ratio = (_stats([r[k] for r in runs]) for k in ("simulate_s", "audit_s", "ratio"))
    ok = ratio["median"] <= BAR
    split = {k: median([r["audit_split_s"][k] for r in runs]) for k in runs[0]["audit_split_s"]}
    print()
    print(table(
        ["figure", "median", "min", "max", "bar", "verdict"],
        [["simulate wall (s)", sim["median"], sim["min"], sim["max"], "", ""],
         ["audit wall (s)", aud["median"], aud["min"], aud["max"], "", ""],
         ["ratio audit / simulate", f"{ratio['median']:.3f}", f"{ratio['min']:.3f}",
          f"{ratio['max']:.3f}", f"<= {BAR}", verdict(ok)]]))
    a = aud["median"]
    print(f"\naudit split (median s): chain re-execution {split['reexecute_s']:.2f} "
          f"({split['reexecute_s'] / a:.0%}), audit_events {split['audit_events_s']:.2f} "
          f"({split['audit_events_s'] / a:.0%}), check_outputs {split['check_outputs_s']:.2f} "
          f"({split['check_outputs_s'] / a:.0%}; of which accuracy recomputation "
          f"{split['accuracy_s']:.2f}), rest {split['rest_s']:.2f}")
    print(f"audit report ok in every pair; {runs[-1]['checks_passed']:,} checks passed, "
          f"{runs[-1]['warnings']} warning(s) in the last")
    if args.quick:
        print("quick: a 2-round toy job is dominated by fixed cost; judge the bar on the full run")
    print(f"\nOVERALL: audit / simulate {ratio['median']:.3f} by the median (bar <= {BAR}) -> {verdict(ok)}")
    write_result("audit_time", args.quick, {
        "bar": {"max_ratio": BAR}, "workload": workload, "simulate_flags": flags, "repeats": repeats,
        "simulate_s": sim, "audit_s": aud, "ratio": ratio, "audit_split_s": split,
        "runs": runs, "passed": ok,
    })


if __name__ == "__main__":
    main()
