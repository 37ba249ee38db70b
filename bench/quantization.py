"""Accuracy cost of fixed-point aggregation, and whether it is deterministic.

Measures the final test accuracy of `plain_fedavg(spec, quantized=True)` —
the integer FedAvg the validators compute (quantise at 2**scale_bits, integer
deltas, exact weighted mean) — against the baseline `plain_fedavg(spec,
quantized=False)` (float64 averaging), same data, partition, model and seeds.
scale_bits 20 is the default; 16 and 12 show where precision starts to cost
accuracy. Determinism: the scale_bits 20 run is repeated and the two final
integer models are compared through their commitment (Merkle root of the
canonical blob, as on chain); the float baseline's final weights are hashed too.
The final model is observed by wrapping `set_weights`/`apply_delta` inside
`fedledger.sim.plain` from this script (no source change).

Workload: JobSpec defaults (mnist, cnn, 10 trainers, Dirichlet 0.5, 20 rounds);
`--quick`: digits, mlp, 4 trainers, 3 rounds.

Bar (DESIGN.md "Performance bars"): fixed-point quantisation costs <= 0.2
accuracy points (|acc_float - acc_fixed| <= 0.002 at the default scale_bits).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import numpy as np
from _common import parse_args, table, verdict, write_result

import fedledger.sim.plain as plain
from fedledger.codec.blob import encode_tensors
from fedledger.codec.commitment import commitment_hex, merkle_root
from fedledger.spec import JobSpec
from fedledger.training.torch_client import configure_torch

BAR_POINTS = 0.2
_seen: dict[str, Any] = {}
_orig_set_weights, _orig_apply_delta = plain.set_weights, plain.apply_delta


def _set_weights(model: Any, weights: Any) -> None:
    _seen["weights"] = [np.array(w, dtype=np.float32, copy=True) for w in weights]
    _orig_set_weights(model, weights)


def _apply_delta(global_q: Any, delta: Any) -> Any:
    out = _orig_apply_delta(global_q, delta)
    _seen["model_q"] = out
    return out


plain.set_weights, plain.apply_delta = _set_weights, _apply_delta


def run(spec: JobSpec, quantized: bool) -> dict[str, Any]:
    _seen.clear()
    t0 = time.perf_counter()
    res = plain.plain_fedavg(spec, quantized=quantized)
    wall = time.perf_counter() - t0
    h = hashlib.sha256(b"".join(w.tobytes() for w in _seen["weights"])).hexdigest()
    commitment = None
    if quantized:
        commitment = commitment_hex(merkle_root(encode_tensors(_seen["model_q"])))
    return {"quantized": quantized, "scale_bits": spec.scale_bits if quantized else None,
            "final_accuracy": res.final_accuracy, "accuracies": res.accuracies,
            "last5_mean_accuracy": float(np.mean(res.accuracies[-5:])),
            "final_weights_sha256": h, "final_model_commitment": commitment, "wall_s": wall}


def main() -> None:
    args = parse_args(__doc__)
    configure_torch(1)
    logging.getLogger("fedledger").setLevel(logging.WARNING)
    base = JobSpec(dataset="digits", model="mlp", trainers=4, rounds=3) if args.quick else JobSpec()
    print(f"workload: {base.dataset}, {base.model}, {base.trainers} trainers, {base.rounds} rounds,"
          f" seed {base.seed}\n")
    plan = [("float (baseline)", base, False), ("fixed 2^20", base, True),
            ("fixed 2^20 (repeat)", base, True),
            ("fixed 2^16", base.with_overrides(scale_bits=16), True),
            ("fixed 2^12", base.with_overrides(scale_bits=12), True)]
    runs: dict[str, dict[str, Any]] = {}
    for label, spec, q in plan:
        runs[label] = run(spec, q)
        print(f"  {label:20s} acc {runs[label]['final_accuracy']:.4f}  ({runs[label]['wall_s']:.1f} s)")
    ref = runs["float (baseline)"]["final_accuracy"]
    rows = []
    for label, r in runs.items():
        cost = (ref - r["final_accuracy"]) * 100
        is_bar = label == "fixed 2^20"
        rows.append([label, f"{r['final_accuracy']:.4f}", f"{r['last5_mean_accuracy']:.4f}",
                     "" if label.startswith("float") else f"{cost:+.2f}",
                     f"<= {BAR_POINTS}" if is_bar else "",
                     verdict(abs(cost) <= BAR_POINTS) if is_bar else ""])
    print()
    print(table(["run", "final acc", "mean acc last 5", "cost (points)", "bar", "verdict"], rows))
    cost20 = (ref - runs["fixed 2^20"]["final_accuracy"]) * 100
    ok = abs(cost20) <= BAR_POINTS
    a, b = runs["fixed 2^20"], runs["fixed 2^20 (repeat)"]
    deterministic = (a["final_model_commitment"] == b["final_model_commitment"]
                     and a["accuracies"] == b["accuracies"])
    print(f"\ndeterminism (two fixed 2^20 runs, 1 torch thread): final model commitment "
          f"{a['final_model_commitment'][:18]}... vs {b['final_model_commitment'][:18]}..."
          f" -> {'bit-identical' if deterministic else 'DIFFERENT'}")
    n_test = "1000 test images (0.1 point each)" if not args.quick else "360 test images"
    print(f"resolution: {n_test}; a trajectory perturbed by rounding can move the final"
          " accuracy by a few images either way")
    print(f"\nOVERALL: quantisation cost {cost20:+.2f} points at 2^20 (bar <= {BAR_POINTS})"
          f" -> {verdict(ok)}; deterministic -> {verdict(deterministic)}")
    write_result("quantization", args.quick, {
        "bar": {"max_cost_points": BAR_POINTS}, "spec": base.model_dump(mode="json"),
        "cost_points_at_20": cost20, "deterministic": deterministic, "runs": runs,
        "passed": ok and deterministic,
    })


if __name__ == "__main__":
    main()
