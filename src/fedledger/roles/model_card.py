"""MODEL_CARD.md, rendered from model_card.json and the spec alone.

The run writer and the audit call the same function: the writer to produce the prose card,
the audit to re-render it from the facts it has verified and compare the file line for
line. So the prose states nothing the JSON card and the spec do not, and an edit anywhere
in it, a title or a closing sentence included, is a named discrepancy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fedledger.spec import JobSpec

#: the closing line's shape: the run directory goes between the prefix and the suffix
VERIFY_PREFIX, VERIFY_SUFFIX = "verify everything with `fedledger audit ", "`."


def card_markdown(card: Mapping[str, Any], spec: JobSpec, *, out: str) -> str:
    """The prose model card of a run whose JSON card is `card`; `out` is the run directory as named."""
    flagged: Mapping[str, Any] = card["flagged"]
    ejected: list[str] = list(card["ejected"])
    lines = [
        f"# Model card: {spec.name}",
        "",
        f"- Job id: {card['job_id']} on coordinator `{card['coordinator']}` ({card['chain']})",
        f"- Spec hash: `{card['spec_hash']}`",
        f"- Outcome: job {card['outcome']}; rounds: {card['rounds_finalized']} finalised, "
        f"{card['rounds_failed']} failed",
        f"- Quorum {spec.effective_quorum} of a committee of {spec.committee_size}; "
        f"at least {spec.effective_min_commits} accepted updates per round",
        f"- Final model commitment (Merkle root of the committed fixed-point model): "
        f"`{card['final_model_commitment']}`",
        f"- Final test accuracy on held-out data no trainer saw: {100 * card['final_test_accuracy']:.2f}%",
        f"- Data: {spec.dataset}, {spec.partition} partition over {spec.trainers} organisations",
        *data_lines(card.get("data")),
        f"- Contributing organisations: {', '.join(card['contributing_organisations'])}",
        "- Flagged and slashed: "
        + (", ".join(f"{org} ({e['flags']}x)" for org, e in sorted(flagged.items())) or "nobody")
        + (f"; ejected: {', '.join(ejected)}" if ejected else ""),
        *privacy_lines(spec, card["privacy"]),
        "",
        "`final_model.safetensors` holds float32 weights dequantised from the committed model;",
        f"{VERIFY_PREFIX}{out}{VERIFY_SUFFIX}",
    ]
    return "\n".join(lines) + "\n"


def privacy_lines(spec: JobSpec, privacy: Mapping[str, Any]) -> list[str]:
    """Secure aggregation, and the ε spent as recorded on chain."""
    lines = []
    faults = privacy.get("secagg_faults") or []
    if spec.secure:
        lines.append(
            "- Secure aggregation (SecAgg+): validators saw only the sum of each round's updates"
            + (f"; faults recovered from: {len(faults)}" if faults else "")
        )
    if spec.record_dp:
        spent = privacy.get("epsilon_by_organisation") or {}
        lines.append(
            f"- Record-level differential privacy (DP-SGD in each trainer, Opacus): budget ε = "
            f"{spec.dp_epsilon:g} per organisation over its own records (δ = {spec.dp_delta:g}, "
            f"per-example clip {spec.dp_max_grad_norm:g}, noise multiplier {spec.noise_multiplier:.4g}, "
            f"sampling rate {spec.dp_sample_rate:g}, {spec.dp_steps_per_round} steps a round, "
            f"{spec.dp_accountant.upper()} accountant); spent, as recorded on chain: "
            + (", ".join(f"{org} {eps:.6f}" for org, eps in spent.items()) or "none")
        )
    if spec.dp:
        lines.append(
            f"- Differential privacy: ε = {privacy['epsilon_spent']:.6f} spent of {spec.dp_epsilon:g} "
            f"(δ = {spec.dp_delta:g}, clip {spec.dp_clip_norm:g}, noise multiplier "
            f"{spec.noise_multiplier:.4g}, {spec.dp_accountant.upper()} accountant), as recorded on chain"
        )
    return lines


def data_lines(data: Mapping[str, Any] | None) -> list[str]:
    """An own-data job's rows, label, features and data commitments (nothing for a bundled set)."""
    if data is None:
        return []
    rows: Mapping[str, int] = data["rows"]
    lines = [f"- Rows per organisation: {', '.join(f'{o} {n:,}' for o, n in rows.items())}"]
    if data["kind"] == "table":
        lines.append(
            f"- Label `{data['label']}` ({', '.join(data['classes'])}); {len(data['features'])} features; "
            + (
                "standardised with statistics aggregated by the job's statistics round (version 1)"
                if data["standardise"] == "federated"
                else "not standardised"
            )
        )
    for org, root in data["data_commitments"].items():
        lines.append(f"- Data commitment of {org}: `{root}`")
    return lines
