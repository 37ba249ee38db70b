"""Runs every benchmark in turn and prints a Markdown summary table for the README.

Runs gas.py, chain_tps.py, overhead.py, quantization.py, flag_gas.py, settlement_gas.py,
robustness.py, scoring.py, conservation.py, secagg.py, dp_noise.py, dp_accuracy.py,
data_loading.py, deployment.py, audit_time.py and scale.py sequentially (each in
its own process, so one's imports and caches do not favour another), in full
form or, with `--quick`, in their quick forms (< 3 minutes in all). Each script
compares its figure with a baseline measured in the same run and with its bar
from DESIGN.md "Performance bars"; this script only gathers their JSON results
(bench/results/NAME.json, or NAME.quick.json) into one table.
Exits non-zero only if a benchmark crashed, never because a bar was missed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from _common import RESULTS, ROOT, parse_args, verdict

BENCHES = (
    "gas", "chain_tps", "overhead", "quantization", "flag_gas", "settlement_gas", "robustness", "scoring",
    "conservation", "secagg", "dp_noise", "dp_accuracy", "data_loading", "deployment", "audit_time",
    "scale",
)


def rows_for(name: str, r: dict[str, Any]) -> list[list[str]]:
    if name == "gas":
        st = r["steady_state"]
        plain_c, closing = st["commit|10M|in-process"], st["commit (closes phase)|10M|in-process"]
        return [
            [
                "Gas per trainer commit (steady state, 10k and 10M params)",
                f"{plain_c['max_gas']:,} gas ({closing['max_gas']:,} for the phase-closing "
                f"commit); same for 10k and 10M: {'yes' if r['constant_in_model_size'] else 'no'}",
                "naive struct commit ~102,000 gas (DESIGN.md)",
                "≤ 50,000 gas, constant in model size",
                verdict(r["passed"]),
            ]
        ]
    if name == "chain_tps":
        m, bar = r["median"], r["bar"]["min_tps"]
        ip, an = m["in-process"], m["anvil (RpcChain)"]
        return [
            [
                f"Embedded chain, protocol mix ({r['trainers']} trainers × {r['rounds']} rounds)",
                f"{ip['mix_tps']:.0f} tx/s",
                f"anvil via RpcChain {an['mix_tps']:.0f} tx/s",
                f"≥ {bar:.0f} tx/s",
                verdict(ip["mix_tps"] >= bar),
            ],
            [
                "Embedded chain, ERC-20 transfers",
                f"{ip['transfer_tps']:.0f} tx/s",
                f"anvil via RpcChain {an['transfer_tps']:.0f} tx/s",
                f"≥ {bar:.0f} tx/s",
                verdict(ip["transfer_tps"] >= bar),
            ],
        ]
    if name == "overhead":
        s = r["spec"]
        return [
            [
                f"Coordination overhead ({s['dataset']}, {s['trainers']} trainers, {s['rounds']} rounds)",
                f"{r['simulation_wall_s']:.1f} s (×{r['ratio']:.2f}, {r['ratio'] - 1:+.0%})",
                f"plain FedAvg {r['plain_wall_s']:.1f} s",
                "≤ ×1.05 (each pair ≤ ×1.10)",
                verdict(r["passed"]),
            ]
        ]
    if name == "quantization":
        runs = r["runs"]
        return [
            [
                "Fixed-point accuracy cost (2^20)",
                f"{runs['fixed 2^20']['final_accuracy']:.4f} (cost {r['cost_points_at_20']:+.2f} pt)",
                f"float FedAvg {runs['float (baseline)']['final_accuracy']:.4f}",
                "≤ 0.2 points",
                verdict(abs(r["cost_points_at_20"]) <= r["bar"]["max_cost_points"]),
            ],
            [
                "Fixed-point runs bit-identical",
                "yes" if r["deterministic"] else "no",
                "a second identical run",
                "identical commitment",
                verdict(r["deterministic"]),
            ],
        ]
    if name == "flag_gas":
        fin = r["finalisation"]
        return [
            [
                f"Finalisation carrying {f} flags (of {int(f) + 10} commits)",
                f"{v['flagged']:,} gas ({v['per_flag']:,.0f} per flag)",
                f"same list excluded, unflagged: {v['excluded_only']:,}; none excluded: {v['none']:,}",
                "printed (issue 3)",
                "—",
            ]
            for f, v in fin.items()
        ]
    if name == "settlement_gas":
        return [
            [
                f"Scored settlement, {n} trainers",
                f"finalise {v['scored']['finalise']:,} gas; propose {v['scored']['propose']:,}",
                f"unscored: finalise {v['unscored']['finalise']:,}, propose {v['unscored']['propose']:,}",
                "printed (issue 4)",
                "—",
            ]
            for n, v in r["sizes"].items()
        ] + [
            [
                "Commit in a scored job (settles the last round)",
                f"{max(v['scored']['commit_closing'] for v in r['sizes'].values()):,} gas (closing)",
                f"unscored: {max(v['unscored']['commit'] for v in r['sizes'].values()):,}",
                "≤ 50,000",
                verdict(all(v["scored"]["commit_closing"] <= 50_000 for v in r["sizes"].values())),
            ]
        ]
    if name == "robustness":
        grid = f"{r['wall_s'] / 60:.1f} min on {r['workers']} workers"
        rows = [[f"Robustness grid: {len(r['cells'])} runs", grid, "", "≤ 20 min (full grid)",
                 verdict(r["quick"] or r["wall_s"] <= 1200)]]
        clean = [c for c in r["checks"] if c["bar"].startswith("clean run")]
        rows.append([f"Clean runs ({len(clean)} rules): honest trainers slashed",
                     ", ".join(c["detail"] for c in clean[:1]) + " in each", "", "0",
                     verdict(all(c["passed"] for c in clean))])
        for c in r["checks"]:
            if c not in clean:
                rows.append([c["bar"], c["detail"], "clean FedAvg, same run", "issue 3",
                             verdict(c["passed"])])
        return rows
    if name == "scoring":
        sizes = r["sizes"]
        shares = " / ".join(f"{v['share']:.1%}" for v in sizes.values())
        ten = sizes["10"]
        base = (f"exact Shapley on evaluated accuracy: {ten['accuracy_exact_s']:.0f} s a round"
                if "accuracy_exact_s" in ten else "")
        return [[f"Scoring share of round time ({' / '.join(sizes)} trainers)", shares, base, "≤ 10%",
                 verdict(r["passed"])]]
    if name == "conservation":
        t = r["totals"]
        return [["Token conservation (stateful property test)",
                 f"{t.get('steps', 0):,} steps, {t.get('transactions', 0):,} transactions",
                 "Python model of every balance", f"≥ {r['target_steps']:,} steps, no violation",
                 verdict(r["passed"])]]
    if name == "secagg":
        w, us, fl, bars = r["workload"], r["ours"], r["flower"], r["bars"]
        ratio = r["ratios_flower_over_ours"]
        dl = next(k for k in us if k.endswith("dropouts") and k != "no dropouts")
        size = f"{w['trainers']} trainers × {w['parameters']:,} params"
        ok = r["passed_bars"]
        return [
            [f"Secure aggregation: client masking ({size})", f"{us['client_s']['median']:.2f} s",
             f"Flower SecAgg+ {fl['client_s']['median']:.2f} s (×{ratio['client_s']:.1f})",
             f"≤ {bars['client_s']:.0f} s", verdict(ok["client_s"])],
            ["Secure aggregation: server unmasking, no dropouts", f"{us['no dropouts']['server_s']:.2f} s",
             f"Flower SecAgg+ {fl['no dropouts']['server_s']:.2f} s (×{ratio['server_s']:.1f})",
             f"≤ {bars['server_s']:.0f} s", verdict(ok["server_s"])],
            [f"Secure aggregation: server unmasking, {dl}", f"{us[dl]['server_s']:.2f} s",
             f"Flower SecAgg+ {fl[dl]['server_s']:.2f} s (×{ratio['server_dropout_s']:.1f})",
             f"≤ {bars['server_dropout_s']:.0f} s", verdict(ok["server_dropout_s"])],
            ["Secure aggregation: upload (masked update + share bundle)", f"×{us['upload']['ratio']:.3f}",
             "plaintext quantised update", f"≤ ×{bars['upload_ratio']}",
             verdict(ok["upload_ratio"] and r["exact"])],
        ]
    if name == "dp_noise":
        res, n = r["results"], r["coordinates"]
        central = next(v for k, v in res.items() if k.startswith("central_noise, σ = 2^"))
        numpy_s = res["numpy float Gaussian (baseline)"]["median_s"]
        return [[f"Discrete Gaussian central noise ({n:,} coordinates)",
                 f"{central['median_s']:.3f} s (×{r['ratio_over_numpy']:.1f}), bit-identical: "
                 f"{'yes' if central['bit_identical'] else 'no'}",
                 f"numpy float Gaussian {numpy_s:.3f} s", f"≤ {r['bar_s']:.0f} s", verdict(r["passed"])]]
    if name == "dp_accuracy":
        base, *private = r["runs"]
        return [
            [f"Accuracy under DP, ε = {r['epsilon']:g}, δ = {r['delta']:g}: {p['label']} "
             f"({r['spec']['dataset']}, {r['spec']['trainers']} trainers, {r['spec']['rounds']} rounds)",
             f"{p['final_accuracy']:.4f} ({(p['final_accuracy'] - base['final_accuracy']) * 100:+.1f} pt); "
             f"ε on chain {p['epsilon_spent']:.4f}",
             f"no DP {base['final_accuracy']:.4f}", "printed (issue 5)", "—"]
            for p in private
        ]
    if name == "data_loading":
        rows = []
        for fmt, f in r["results"].items():
            ours, base, mem = f["times_s"]["load_local"], f["times_s"][f["baseline"]], f["memory"]
            ok = f["ratio"] <= r["bars"]["time_ratio"] and mem["ratio"] <= r["bars"]["memory_ratio"]
            rows.append([
                f"Loading an organisation's {fmt} table ({r['rows']:,} rows × 20 features, checked, encoded)",
                f"{ours['median']:.2f} s (×{f['ratio']:.2f}); peak memory ×{mem['ratio']:.2f} of the table",
                f"{f['baseline']} {base['median']:.2f} s",
                f"≤ ×{r['bars']['time_ratio']} time, ≤ ×{r['bars']['memory_ratio']} memory",
                verdict(ok),
            ])
        return rows
    if name == "deployment":
        return [
            [f"Deployment: 4 node processes on anvil, own blob servers, {w['rounds_finalised']} rounds, "
             f"{label} (coordination overhead per round)",
             f"round {w['round_wall_mean_s']:.2f} s, ratio ×{w['overhead_ratio']:.3f} "
             f"({w['coordination_s_per_round']:.2f} s/round); accuracy {w['final_accuracy']:.4f}; "
             f"live audit {'passed' if w['audit_ok'] else 'FAILED'}",
             f"slowest trainer's training {w['slowest_train_mean_s']:.2f} s/round",
             f"≤ ×{r['bar']:.2f}" if label == "fashion-mnist" else "printed",
             verdict(r["passed"]) if label == "fashion-mnist" else "—"]
            for label, w in r["workloads"].items()
        ]
    if name == "audit_time":
        sim, aud, ratio = r["simulate_s"], r["audit_s"], r["ratio"]
        return [[f"Audit time of a run directory ({r['workload']}, {r['repeats']} repeats)",
                 f"{aud['median']:.1f} s (×{ratio['median']:.3f} of simulate, range "
                 f"×{ratio['min']:.3f}–×{ratio['max']:.3f}); accuracy recomputation "
                 f"{r['audit_split_s']['accuracy_s']:.1f} s",
                 f"fedledger simulate {sim['median']:.1f} s", f"≤ ×{r['bar']['max_ratio']}",
                 verdict(r["passed"])]]
    if name == "scale":
        fed, flo = r["fedledger"], r["flower"]
        wall = sorted(x["wall_s"] for x in fed)[len(fed) // 2]
        return [[f"Scale: {r['organisations']:,} organisations, {r['sample']} a round, {r['rounds']} rounds "
                 "(Ray, lending_club logreg)",
                 f"{wall:.1f} s (×{r['ratio']:.3f}; chain {100 * r['chain_share']:.0f} %; "
                 f"peak {r['peak_gib']:.2f} GiB)",
                 f"Flower 1.42 run_simulation {sorted(x['wall_s'] for x in flo)[len(flo) // 2]:.1f} s",
                 "≤ ×1.2, ≤ 8 GiB", verdict(r["ratio"] <= 1.2 and r["peak_gib"] <= 8)]]
    raise ValueError(name)


def main() -> None:
    args = parse_args(__doc__, extra=("--summary-only", "rebuild the table from saved results"))
    times: dict[str, float] = {}
    crashed = []
    for name in () if args.summary_only else BENCHES:
        cmd = [sys.executable, str(ROOT / "bench" / f"{name}.py")] + (["--quick"] if args.quick else [])
        print(f"\n===== {name} {'(quick)' if args.quick else ''} =====", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=ROOT)
        times[name] = time.perf_counter() - t0
        if rc != 0:
            crashed.append(name)
            print(f"!!! {name} exited with {rc}")

    table = ["| benchmark | measured | baseline (same run) | bar | result |", "|---|---|---|---|---|"]
    for name in BENCHES:
        if name in crashed:
            table.append(f"| {name} | crashed | | | FAIL |")
            continue
        path = RESULTS / (f"{name}.quick.json" if args.quick else f"{name}.json")
        for row in rows_for(name, json.loads(path.read_text())):
            table.append("| " + " | ".join(row) + " |")
    print(f"\n===== summary {'(quick forms: not the bars)' if args.quick else ''} =====\n")
    print("\n".join(table))
    if args.summary_only:
        return
    print(
        "\nrun times: "
        + ", ".join(f"{n} {t:.0f} s" for n, t in times.items())
        + f"; total {sum(times.values()):.0f} s"
    )
    summary = RESULTS / ("summary.quick.md" if args.quick else "summary.md")
    summary.write_text(
        "\n".join(table) + "\n\nrun times: " + ", ".join(f"{n} {t:.0f} s" for n, t in times.items()) + "\n"
    )
    sys.exit(1 if crashed else 0)


if __name__ == "__main__":
    main()
