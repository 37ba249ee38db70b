"""The evidence a run leaves: spec, chain export, metrics, plot, final model and model card.

Layout of a run directory:

    spec.json                 the canonical job spec (its keccak is on chain)
    store/                    every committed update and every global model, by commitment
    chain.json                every transaction and event, with block numbers (see `export_chain`)
    metrics.json, metrics.csv per-round metrics
    accuracy.png              test accuracy and loss per round
    final_model.safetensors   the final model as float32 (dequantised from the committed one)
    model_card.json, MODEL_CARD.md
    run.log                   validators' rejections and other warnings
    private/<org>.opening.json own-data jobs: each organisation's data opening (its salt).
                              PRIVATE: in a deployment each node keeps its own; hand an
                              auditor one opening with its file (`fedledger data prove`),
                              never the folder. The audit does not read it.
"""

from __future__ import annotations

import csv
import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedledger.chain.export import export_chain
from fedledger.codec.commitment import commitment_hex
from fedledger.roles.model import final_model_tensors
from fedledger.roles.model_card import card_markdown
from fedledger.sim.results import RoundMetrics, SimulationResult

if TYPE_CHECKING:
    from fedledger.sim.setup import SimulationSetup


def write_metrics(out: Path, rows: list[RoundMetrics]) -> None:
    from dataclasses import asdict

    data = [asdict(m) for m in rows]
    (out / "metrics.json").write_text(json.dumps(data, indent=2) + "\n")
    if data:
        with (out / "metrics.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(data[0]))
            w.writeheader()
            w.writerows(data)


def plot_metrics(path: Path, rows: list[RoundMetrics], title: str) -> None:
    """Test accuracy and loss per round, failed rounds marked.

    Drawn on a `Figure` of its own, not through pyplot's shared state, so it may be drawn on a
    thread while the job settles (`start_plot`)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    rounds = [m.round for m in rows]
    fig = Figure(figsize=(7, 4), dpi=120)
    ax1 = fig.subplots()
    ax1.plot(rounds, [100 * m.test_accuracy for m in rows], "o-", color="tab:blue", label="test accuracy")
    ax1.set_xlabel("round")
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_ylabel("test accuracy (%)", color="tab:blue")
    ax1.grid(alpha=0.3)
    ax2 = ax1.twinx()
    ax2.plot(rounds, [m.test_loss for m in rows], "s--", color="tab:orange", label="test loss")
    ax2.set_ylabel("test loss", color="tab:orange")
    failed = [m.round for m in rows if m.status != "finalized"]
    for r in failed:
        ax1.axvline(r, color="tab:red", alpha=0.3)
    ax1.set_title(title + (f"  ({len(failed)} failed rounds in red)" if failed else ""))
    fig.tight_layout()
    fig.savefig(path)


def start_plot(sim: SimulationSetup, rows: list[RoundMetrics]) -> Future[None]:
    """`accuracy.png`, drawn on its own thread once the last round is over, while the job settles
    and its chain record is exported (both mostly wait for the chain); `write_run` waits for it."""
    spec = sim.spec
    title = f"{spec.name}: {spec.trainers} organisations, {spec.dataset}, {spec.partition}"
    pool = ThreadPoolExecutor(1, thread_name_prefix="fedledger-plot")
    try:
        return pool.submit(plot_metrics, sim.out_dir / "accuracy.png", list(rows), title)
    finally:
        pool.shutdown(wait=False)


def contribution_totals(result: SimulationResult) -> dict[str, float]:
    """Each organisation's summed contribution score over the scored rounds (0 if never scored)."""
    totals: dict[str, float] = {name: 0.0 for name in result.payouts}
    for s in result.scores:
        for org, v in zip(s.trainers, s.values, strict=True):
            totals[org] = totals.get(org, 0.0) + v
    return totals


def write_scores(out: Path, result: SimulationResult) -> None:
    """scores.csv (round, organisation, score), earnings.csv, and contributions.png (both side by side)."""
    with (out / "scores.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "method", "utility", "organisation", "score", "evaluations", "seconds"])
        for s in result.scores:
            for org, v in zip(s.trainers, s.values, strict=True):
                w.writerow([s.round, s.method, s.utility, org, f"{v:.6g}", s.evaluations, f"{s.seconds:.4f}"])
    totals = contribution_totals(result)
    with (out / "earnings.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["organisation", "contribution", "reputation", "reward", "validator_fees", "stake_back"])
        for org in sorted(totals, key=lambda o: -totals[o]):
            e = result.earnings.get(org)
            w.writerow(
                [org, f"{totals[org]:.6g}"]
                + ([e.reputation, e.reward, e.fees, e.stake] if e is not None else ["", "", "", ""])
            )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    orgs = sorted(totals)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4), dpi=120)
    colors = ["tab:red" if o in result.malicious or totals[o] <= 0 else "tab:blue" for o in orgs]
    ax1.bar(orgs, [totals[o] for o in orgs], color=colors)
    ax1.axhline(0, color="black", lw=0.8)
    ax1.set_title(f"contribution ({result.scores[0].method}, {result.scores[0].utility} utility), summed")
    earned = [result.earnings.get(o) for o in orgs]
    ax2.bar(orgs, [e.reward / 1e18 if e else 0 for e in earned], color="tab:green", label="reward")
    ax2.bar(
        orgs,
        [e.fees / 1e18 if e else 0 for e in earned],
        bottom=[e.reward / 1e18 if e else 0 for e in earned],
        color="tab:olive",
        label="validator fees",
    )
    ax2.set_title("earned (tokens; stake returned not shown)")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(out / "contributions.png")
    plt.close(fig)


def data_card(sim: SimulationSetup) -> dict[str, Any] | None:
    """An own-data job's data as the model card states it: schema, rows and commitments per organisation."""
    spec = sim.spec
    if spec.data_schema is None:
        return None
    schema = spec.data_schema
    card: dict[str, Any] = {
        "kind": schema.kind,
        "classes": list(schema.classes),
        "rows": {o.name: lt.data.x.shape[0] for o, lt in zip(sim.orgs, sim.local, strict=True)},
        "test_rows": len(sim.dataset.y_test),
        "data_commitments": dict(sim.data_commitments),
    }
    if schema.kind == "table":
        card["label"] = schema.label
        card["features"] = [f.name for f in schema.features]
        card["standardise"] = schema.standardise
    else:
        card["input_shape"] = list(schema.input_shape)
    return card


def write_record(sim: SimulationSetup, rows: list[RoundMetrics]) -> None:
    """What the audit needs to check the rounds so far: the spec, the chain's record, the metrics.

    Written at the end of a job, and by itself when a job is stopped after a round is final,
    so that the finalised rounds stay auditable.
    """
    out, spec = sim.out_dir, sim.spec
    (out / "spec.json").write_text(json.dumps(spec.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    export = export_chain(
        sim.chain,
        sim.deployment.contracts,
        job_id=sim.job_id,
        participants=sim.participants,
    )
    (out / "chain.json").write_text(json.dumps(export, indent=1) + "\n")
    write_metrics(out, rows)


def write_run(sim: SimulationSetup, result: SimulationResult, *, plot: Future[None] | None = None) -> None:
    """The run directory; `plot` is `start_plot`'s drawing of `accuracy.png` (None: drawn here)."""
    out, spec = sim.out_dir, sim.spec
    write_record(sim, result.rounds)
    (plot or start_plot(sim, result.rounds)).result()
    if result.scores:
        write_scores(out, result)

    from safetensors.numpy import save_file

    final = final_model_tensors(sim.store.get_tensors(result.final_commitment), spec.scale_bits)
    contributors = sorted(
        {
            sim.participants.get(c.trainer, c.trainer)
            for rec in sim.reader.rounds.values()
            if rec.finalized is not None
            for c in rec.commits
            if c.trainer not in rec.excluded
        }
    )
    card = {
        "job_id": sim.job_id,
        "coordinator": sim.deployment.coordinator.address,
        "chain": sim.chain.description,
        "spec_hash": "0x" + spec.spec_hash().hex(),
        "outcome": result.outcome,
        "rounds_finalized": sum(1 for m in result.rounds if m.status == "finalized"),
        "rounds_failed": sum(1 for m in result.rounds if m.status != "finalized"),
        "final_model_commitment": commitment_hex(result.final_commitment),
        "final_test_accuracy": result.final_accuracy,
        "contributing_organisations": contributors,
        "dataset": spec.dataset,
        "partition": spec.partition,
        "data": data_card(sim),
        "model": spec.model,
        "client": spec.client or None,
        "code_digest": spec.code_digest or None,
        "aggregation": spec.aggregation,
        "committee": spec.committee_size,
        "quorum": spec.effective_quorum,
        "min_commits": spec.effective_min_commits,
        "scale_bits": spec.scale_bits,
        "payouts": {k: str(v) for k, v in result.payouts.items()},
        "flagged": {
            org: {"flags": n, "slashed": str(result.slashed.get(org, 0))} for org, n in result.flags.items()
        },
        "ejected": result.ejected,
        "contribution": {k: round(v, 6) for k, v in contribution_totals(result).items()}
        if result.scores
        else {},
        "attack": None if sim.attack is None else {"kind": sim.attack.kind, "malicious": result.malicious},
        "privacy": {
            "mode": spec.privacy,
            "dp": spec.dp,
            "epsilon_spent": result.epsilon_spent,
            "epsilon_budget": spec.dp_epsilon,
            "delta": spec.dp_delta if spec.dp or spec.record_dp else None,
            "level": spec.dp_level if spec.dp or spec.record_dp else None,
            "epsilon_by_organisation": dict(sorted(result.epsilon_by_organisation.items())),
            "secagg_faults": [{"round": r, "org": o, "fault": f} for r, o, f in result.secagg_faults],
        },
    }
    save_file(
        final,
        str(out / "final_model.safetensors"),
        metadata={k: str(v) for k, v in card.items() if not isinstance(v, list | dict)},
    )
    (out / "final_model.safetensors").chmod(0o644)  # safetensors writes 0600; the card is public
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    # the prose card states only what the JSON card and the spec state: the audit re-renders it
    (out / "MODEL_CARD.md").write_text(card_markdown(card, spec, out=str(out)))
