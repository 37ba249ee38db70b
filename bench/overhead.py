"""Coordination overhead: the full protocol against a plain in-process FedAvg loop.

Measures the wall time of one job run through `Simulation` (in-process chain,
local blob store, every trainer also a validator recomputing each round, run
directory written to a temp dir), timed from construction to the end of
`run()`, against `plain_fedavg(spec)` — same dataset, partition, model,
clients and seeds, no chain, no store, no validators — timed around the call
(both include dataset loading). The two sides alternate (AB, BA, ...); the
median wall time of each side and the median of the per-pair ratios are
reported, with the simulation's own breakdown (training, chain, the rest:
validators' fetch/check/aggregate, store I/O, evaluation, outputs).

Workload: JobSpec defaults (mnist, cnn, 10 trainers, Dirichlet 0.5, 20 rounds);
`--quick`: digits, mlp, 4 trainers, 3 rounds.

Bars (DESIGN.md "Performance bars", issue "coordination overhead"): the median of the
per-pair ratios <= 1.05, and every pair <= 1.10. The secure-aggregation run of the same
workload (`privacy=secagg`) is timed in each pair too and printed against the plain loop.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from _common import median, parse_args, table, verdict, write_result

import fedledger.roles.trainer as trainer_mod
import fedledger.roles.validator as validator_mod
import fedledger.store.base as store_base
from fedledger.codec.commitment import merkle_root as _merkle_root
from fedledger.sim.plain import plain_fedavg
from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec
from fedledger.training.torch_client import configure_torch

BAR = 1.05
PAIR_BAR = 1.10
_merkle = {"s": 0.0, "calls": 0}


def _timed_merkle_root(data: bytes) -> bytes:
    t0 = time.perf_counter()
    try:
        return _merkle_root(data)
    finally:
        _merkle["s"] += time.perf_counter() - t0
        _merkle["calls"] += 1


# diagnosis only: count the time the simulation spends computing Merkle roots
# (trainers committing, the store checking every blob it serves)
for _mod in (store_base, trainer_mod, validator_mod):
    _mod.merkle_root = _timed_merkle_root  # type: ignore[attr-defined]


def run_sim(spec: JobSpec) -> dict[str, float]:
    _merkle.update(s=0.0, calls=0)
    with tempfile.TemporaryDirectory(prefix="fedledger-bench-") as tmp:
        t0 = time.perf_counter()
        res = Simulation(spec, out_dir=Path(tmp) / "run").run()
        wall = time.perf_counter() - t0
    train = sum(m.train_seconds for m in res.rounds)
    return {"wall_s": wall, "run_wall_s": res.wall_seconds, "chain_s": res.chain_seconds,
            "train_s": train, "other_s": wall - train - res.chain_seconds,
            "merkle_s": _merkle["s"], "merkle_calls": _merkle["calls"],
            "final_accuracy": res.final_accuracy, "rounds_finalized":
            sum(m.status == "finalized" for m in res.rounds)}


def run_plain(spec: JobSpec) -> dict[str, float]:
    t0 = time.perf_counter()
    res = plain_fedavg(spec)
    return {"wall_s": time.perf_counter() - t0, "final_accuracy": res.final_accuracy}


def main() -> None:
    args = parse_args(__doc__)
    configure_torch(1)
    logging.getLogger("fedledger").setLevel(logging.WARNING)
    if args.quick:
        spec = JobSpec(dataset="digits", model="mlp", trainers=4, rounds=3)
        pairs = 2
    else:
        spec = JobSpec()
        pairs = 3
    secure = spec.with_overrides(privacy="secagg")
    print(f"workload: {spec.dataset}, {spec.model}, {spec.trainers} trainers, {spec.partition} "
          f"alpha {spec.alpha}, {spec.rounds} rounds, {spec.local_epochs} local epochs; "
          f"{pairs} alternating pairs\n")
    # untimed warm-up of both sides (imports, contract artifacts, dataset cache, plotting)
    warm = spec.with_overrides(trainers=2, rounds=1, local_epochs=1)
    run_sim(warm)
    run_plain(warm)
    sims: list[dict[str, float]] = []
    plains: list[dict[str, float]] = []
    secures: list[dict[str, float]] = []
    ratios: list[float] = []
    for p in range(pairs):
        order = ["simulation", "plain"] if p % 2 == 0 else ["plain", "simulation"]
        for side in order:
            done = sims if side == "simulation" else plains
            done.append(run_sim(spec) if side == "simulation" else run_plain(spec))
            print(f"pair {p + 1} {side:10s} {done[-1]['wall_s']:8.2f} s", flush=True)
        ratios.append(sims[-1]["wall_s"] / plains[-1]["wall_s"])
        secures.append(run_sim(secure))
        print(f"pair {p + 1} {'secagg':10s} {secures[-1]['wall_s']:8.2f} s", flush=True)
    sim_wall = median([s["wall_s"] for s in sims])
    plain_wall = median([s["wall_s"] for s in plains])
    ratio = median(ratios)
    ok = ratio <= BAR and max(ratios) <= PAIR_BAR
    secure_wall = median([s["wall_s"] for s in secures])
    parts = {k: median([s[k] for s in sims]) for k in ("train_s", "chain_s", "other_s", "merkle_s")}
    print()
    print(table(
        ["figure", "simulation", "plain FedAvg (baseline)", "ratio", "bar", "verdict"],
        [["wall time (s, median)", sim_wall, plain_wall, f"{ratio:.3f}",
          f"<= {BAR:.2f} (each pair <= {PAIR_BAR:.2f})", verdict(ok)],
         ["secure aggregation run (s, median)", secure_wall, plain_wall, f"{secure_wall / plain_wall:.3f}",
          "", ""],
         ["final accuracy", sims[-1]["final_accuracy"], plains[-1]["final_accuracy"], "", "", ""]]))
    print(f"\nsimulation breakdown (median s): training {parts['train_s']:.2f}, "
          f"chain {parts['chain_s']:.2f} ({parts['chain_s'] / sim_wall:.1%} of wall), "
          f"rest (validators, store, evaluation, outputs) {parts['other_s']:.2f}, of which "
          f"Merkle roots {parts['merkle_s']:.2f} ({sims[-1]['merkle_calls']} roots)")
    print(f"per-pair ratios: {', '.join(f'{r:.3f}' for r in ratios)} "
          f"(range {min(ratios):.3f}–{max(ratios):.3f})")
    secure_s = ", ".join(f"{s['wall_s']:.1f}" for s in secures)
    print(f"secure aggregation runs: {secure_s} s")
    print("note: the simulation aggregates in fixed point, the plain loop in float; "
          "their accuracies differ by the quantisation cost (see quantization.py)")
    if args.quick:
        print("quick: a 3-round toy job is dominated by fixed setup cost; judge the bar on the"
              " full run")
    print(f"\nOVERALL: coordination overhead {ratio - 1:+.1%} (bar <= {BAR - 1:.0%}, every pair <= "
          f"{PAIR_BAR - 1:.0%}) -> {verdict(ok)}")
    write_result("overhead", args.quick, {
        "bar": {"max_ratio": BAR, "max_pair_ratio": PAIR_BAR}, "spec": spec.model_dump(mode="json"),
        "pairs": pairs, "secure_wall_s": secure_wall, "secure_runs": secures,
        "ratio": ratio, "pair_ratios": ratios, "simulation_wall_s": sim_wall,
        "plain_wall_s": plain_wall, "simulation_breakdown_s": parts,
        "simulation_runs": sims, "plain_runs": plains, "passed": ok,
    })


if __name__ == "__main__":
    main()
