"""Scale: a thousand organisations on one machine, fedledger on Ray against Flower's own simulation.

Workload (issue 15): modeldata's Lending Club loans (bundled `lending_club`, 69 inputs,
bad vs good), split iid among 1,000 registered organisations (~8 loans each), logistic
regression, 100 organisations training a round, 10 rounds, the spec's local epochs,
batch, learning rate and momentum.

fedledger: `Simulation` with `--backend ray` (each fit a Ray task on views of one shared
array; a local Ray on every core, 1 CPU per organisation) on the in-process chain: every
organisation registers and stakes on chain, the round's trainers quantise, upload and
commit, a committee of 10 validates and proposes, everyone withdraws at the end, and the
run directory is written. The coordinator's sampler draws the 100 of each round on chain
(`clients_per_round`; an organisation outside the draw cannot commit) and min_commits is
100, so a round waits for every drawn organisation, as Flower's does.

Flower: flwr 1.42 `run_simulation` with its Ray backend, 1,000 supernodes, FedAvg with
fraction_train 0.1 and no federated evaluation, the same initial weights, the same
partitions and the same fit (fedledger's `PartitionClient.fit`), and the same per-round
central evaluation on the test split (`evaluate_fn`).

Each measurement runs in its own process (fresh Ray), fedledger and Flower alternating;
wall time counts from before Ray starts to after it stops. Peak memory is the process
tree's summed RSS (sim/memory.py). Bars: fedledger ≤ 8 GiB; fedledger, chain included,
≤ 1.2 × Flower's time, by the median of the runs.

    python bench/scale.py [--quick] [--runs N] [--organisations N] [--sample K] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, median, table, verdict, write_result

BAR_RATIO = 1.2
BAR_MEMORY_GIB = 8.0


def job_spec(organisations: int, sample: int, rounds: int) -> Any:
    from fedledger.spec import JobSpec

    return JobSpec.from_dict({
        "name": "scale", "dataset": "lending_club", "model": "logreg", "partition": "iid",
        "trainers": organisations, "rounds": rounds, "validators": min(10, organisations),
        "min_commits": sample, "clients_per_round": sample if sample < organisations else 0,
    })  # fmt: skip


def run_fedledger(organisations: int, sample: int, rounds: int) -> dict[str, Any]:
    from fedledger.sim.memory import PeakMemory
    from fedledger.sim.ray_backend import RayBackend, RayConfig
    from fedledger.sim.simulate import Simulation
    from fedledger.training.torch_client import configure_torch

    configure_torch(1)
    spec = job_spec(organisations, sample, rounds)
    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as memory:
        t0 = time.perf_counter()
        backend = RayBackend(RayConfig())
        ray_s = time.perf_counter() - t0
        sim = Simulation(spec, out_dir=Path(tmp) / "run", backend=backend)
        setup_s = time.perf_counter() - t0 - ray_s
        setup_chain_s = sim.chain.seconds
        result = sim.run()
        backend.close()
        wall = time.perf_counter() - t0
    return {
        "wall_s": wall, "ray_start_s": ray_s, "setup_s": setup_s, "chain_s": result.chain_seconds,
        "setup_chain_s": setup_chain_s, "transactions": sim.chain.transactions,
        "commits_per_round": [m.commits for m in result.rounds], "accuracy": result.final_accuracy,
        "tasks": backend.launched, "peak_bytes": memory.peak, "driver_peak_bytes": memory.driver,
    }  # fmt: skip


def run_flower(organisations: int, sample: int, rounds: int) -> dict[str, Any]:
    import logging

    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp
    from flwr.serverapp.strategy import FedAvg
    from flwr.simulation import run_simulation

    from fedledger.sim.memory import PeakMemory
    from fedledger.training.consortium import build_consortium
    from fedledger.training.torch_client import configure_torch, evaluate, get_weights, set_weights

    configure_torch(1)
    spec = job_spec(organisations, sample, rounds)
    consortium = build_consortium(spec, lazy=True)
    ds, model = consortium.dataset, consortium.initial_model
    initial = get_weights(model)
    accuracy: list[float] = []
    cache: dict[str, Any] = {}

    client_app = ClientApp()

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        if "clients" not in cache:  # once per Ray actor, as fedledger's tasks map the array once
            cache["clients"] = build_consortium(job_spec(organisations, sample, rounds), lazy=True).clients
        client = cache["clients"][int(context.node_config["partition-id"])]
        arrays = msg.content["arrays"].to_numpy_ndarrays()
        config = {"round": int(msg.content["config"]["server-round"])}
        new, n, metrics = client.fit(arrays, config)
        content = RecordDict({"arrays": ArrayRecord(new),
                              "metrics": MetricRecord({"num-examples": n, "loss": float(metrics["loss"])})})
        return Message(content=content, reply_to=msg)  # fmt: skip

    server_app = ServerApp()

    def central(server_round: int, arrays: ArrayRecord) -> MetricRecord:
        set_weights(model, arrays.to_numpy_ndarrays())
        loss, acc = evaluate(model, ds.x_test, ds.y_test)
        accuracy.append(acc)
        return MetricRecord({"accuracy": acc, "loss": loss})

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(fraction_train=sample / organisations, fraction_evaluate=0.0,
                          min_train_nodes=sample, min_available_nodes=organisations)  # fmt: skip
        strategy.start(grid=grid, initial_arrays=ArrayRecord(initial), num_rounds=rounds, evaluate_fn=central)

    logging.getLogger("flwr").setLevel(logging.WARNING)
    with PeakMemory() as memory:
        t0 = time.perf_counter()
        init = {"num_cpus": os.cpu_count() or 1, "logging_level": "error", "log_to_driver": False}
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=organisations,
                       backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0},
                                       "init_args": init})  # fmt: skip
        wall = time.perf_counter() - t0
    return {"wall_s": wall, "accuracy": accuracy[-1] if accuracy else float("nan"),
            "peak_bytes": memory.peak, "driver_peak_bytes": memory.driver}  # fmt: skip


def one(kind: str, organisations: int, sample: int, rounds: int) -> dict[str, Any]:
    """One measurement in a fresh process (its own Ray), so neither side inherits the other's."""
    cmd = [sys.executable, __file__, "--one", kind, "--organisations", str(organisations),
           "--sample", str(sample), "--rounds", str(rounds)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=3600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        raise SystemExit(f"{kind} run failed ({proc.returncode}):\n{tail}")
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="50 organisations, 5 a round, 2 rounds, 1 pair")
    p.add_argument("--runs", type=int, default=None, help="alternating pairs (default 3; 1 with --quick)")
    p.add_argument("--organisations", type=int, default=None)
    p.add_argument("--sample", type=int, default=None, help="organisations training a round")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--one", choices=["fedledger", "flower"], default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    n = args.organisations or (50 if args.quick else 1000)
    k = args.sample or max(1, n // 10)
    rounds = args.rounds or (2 if args.quick else 10)
    if args.one:
        run = run_fedledger if args.one == "fedledger" else run_flower
        print(json.dumps(run(n, k, rounds)))
        return
    runs = args.runs or (1 if args.quick else 3)
    print(f"Scale: {n:,} registered organisations, {k} training a round, {rounds} rounds, lending_club, "
          f"logreg; {runs} alternating pair(s), each side in a fresh process with its own Ray")  # fmt: skip
    fed: list[dict[str, Any]] = []
    flo: list[dict[str, Any]] = []
    for i in range(runs):
        order = (("fedledger", fed), ("flower", flo))
        for kind, acc in order if i % 2 == 0 else order[::-1]:
            acc.append(one(kind, n, k, rounds))
            print(f"  pair {i + 1}: {kind:<9} {acc[-1]['wall_s']:7.1f} s", flush=True)
    gib = 2**30
    ratios = [f["wall_s"] / w["wall_s"] for f, w in zip(fed, flo, strict=True)]
    rows = [
        ["fedledger (Ray, chain included)", median([r["wall_s"] for r in fed]),
         f"{min(r['wall_s'] for r in fed):.1f}–{max(r['wall_s'] for r in fed):.1f}",
         median([r["chain_s"] for r in fed]), median([r["peak_bytes"] / gib for r in fed]),
         median([r["accuracy"] for r in fed])],
        ["Flower 1.42 run_simulation (Ray)", median([r["wall_s"] for r in flo]),
         f"{min(r['wall_s'] for r in flo):.1f}–{max(r['wall_s'] for r in flo):.1f}", "—",
         median([r["peak_bytes"] / gib for r in flo]), median([r["accuracy"] for r in flo])],
    ]  # fmt: skip
    print(table(["system", "wall s (median)", "range", "chain s", "peak GiB", "final acc"], rows))
    f0 = fed[len(fed) // 2]
    commits = sorted(set(f0["commits_per_round"]))
    ray_s, setup_s = median([r["ray_start_s"] for r in fed]), median([r["setup_s"] for r in fed])
    setup_chain = median([r["setup_chain_s"] for r in fed])
    print(f"fedledger parts (medians): Ray start {ray_s:.1f} s, set-up {setup_s:.1f} s "
          f"(chain {setup_chain:.1f} s); {f0['transactions']:,} transactions, commits a round {commits}, "
          f"{f0['tasks']:,} Ray tasks")  # fmt: skip
    chain_share = median([r["chain_s"] / r["wall_s"] for r in fed])
    ratio = median(ratios)
    memory = max(r["peak_bytes"] for r in fed) / gib
    print(f"Scale: chain share of fedledger's wall time {100 * chain_share:.1f} %")
    ok = memory <= BAR_MEMORY_GIB
    print(f"Scale: peak memory {memory:.2f} GiB, largest run (bar ≤ {BAR_MEMORY_GIB:g}) {verdict(ok)}")
    print(f"Scale: fedledger / Flower ×{ratio:.3f} (pairs {', '.join(f'×{r:.3f}' for r in ratios)}; "
          f"bar ≤ ×{BAR_RATIO}) {verdict(ratio <= BAR_RATIO)}")  # fmt: skip
    write_result("scale", args.quick, {"organisations": n, "sample": k, "rounds": rounds, "fedledger": fed,
                                       "flower": flo, "ratios": ratios, "ratio": ratio,
                                       "chain_share": chain_share, "peak_gib": memory})  # fmt: skip


if __name__ == "__main__":
    main()
