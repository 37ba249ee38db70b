"""The compliance report as one JSON-able structure; HTML, PDF and JSON all render it.

The structure (format `fedledger-report/1`) is documented in docs/design.md. Every number is
taken from the audited events (via `RunFacts` and the audit's report) except accuracy and
loss, which the chain does not hold: those come from the run directory's metrics.json, and
the report says whether the audit checked that file.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from fedledger import __version__
from fedledger.chain.types import SCORE_ONE, unpack_scores
from fedledger.codec.commitment import commitment_hex
from fedledger.report.annex import annex_iv
from fedledger.report.audit_scope import audit_section
from fedledger.report.events import event_log, iso
from fedledger.report.inputs import ReportInputs
from fedledger.report.skew import contribution_skew

FORMAT = "fedledger-report/1"


def build_report(inputs: ReportInputs) -> dict[str, Any]:
    """Every section of the report, in the order the documents show them."""
    src, facts, spec = inputs.job.source, inputs.facts, inputs.job.spec
    report: dict[str, Any] = {
        "format": FORMAT,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": f"fedledger {__version__}",
        "job": {
            "job_id": src.job_id,
            "source": inputs.where,
            "chain": inputs.chain_description,
            "provenance": src.provenance,
            "coordinator": src.coordinator,
            "contract_sources": (inputs.job.export or {}).get("contract_sources_sha256", "as deployed"),
            "spec_hash": "0x" + spec.spec_hash().hex(),
            "sponsor": src.participants.get(facts.sponsor, facts.sponsor),
            "outcome": facts.outcome,
            "rounds_planned": spec.rounds,
            "rounds_finalized": len(facts.finalized),
            "rounds_failed": len(facts.failed),
            "initial_model": commitment_hex(facts.initial) if facts.initial else "",
            "final_model": commitment_hex(facts.final) if facts.final else "",
        },
        "purpose": {
            "stated_by_spec": _task(inputs),
            "provider_statement": None,  # the chain holds no statement of intended purpose
        },
        "spec": spec.model_dump(mode="json"),
        "method": _method(inputs),
        "performance": _performance(inputs),
        "changes": [dict(e.__dict__) for e in inputs.audit.lineage],
    }
    contributions = _contributions(inputs)
    report["organisations"] = _organisations(inputs, contributions)
    report["event_log"] = event_log(src, inputs.block_times)
    report["audit"] = audit_section(inputs)
    trainers = {o["organisation"]: o["flags"] for o in report["organisations"] if "trainer" in o["roles"]}
    report["skew"] = contribution_skew({o: contributions.get(o, []) for o in trainers}, trainers)
    report["annex_iv"] = annex_iv(report)
    return report


def _task(inputs: ReportInputs) -> str:
    spec = inputs.job.spec
    data = "the organisations' own data" if spec.own_data else f"the bundled '{spec.dataset}' dataset"
    return (
        f"job '{spec.name}': train a '{spec.model}' model on {data} across {spec.trainers} organisations "
        f"for {spec.rounds} rounds, aggregated with '{spec.aggregation}'. This is what the spec states; "
        "the chain holds no statement of intended purpose."
    )


def _method(inputs: ReportInputs) -> dict[str, Any]:
    spec, audit = inputs.job.spec, inputs.audit
    privacy: dict[str, Any] = {
        "secure_aggregation": spec.secure,
        "differential_privacy": spec.dp,
        "level": spec.dp_level if spec.dp else None,
        "epsilon_budget": spec.dp_epsilon if spec.dp else None,
        "delta": spec.dp_delta if spec.dp else None,
        "accountant": spec.dp_accountant if spec.dp else None,
        "clip_norm": (spec.dp_max_grad_norm if spec.record_dp else spec.dp_clip_norm) if spec.dp else None,
        "noise_multiplier": spec.noise_multiplier if spec.dp else None,
        "epsilon_spent": audit.privacy.get("epsilon_spent"),
        "audited": dict(audit.privacy),
    }
    return {
        "aggregation": spec.aggregation,
        "robustness": {
            "rule": spec.aggregation,
            "trim_fraction": spec.trim_fraction,
            "byzantine_tolerated": spec.byzantine,
            "clip_norm": spec.clip_norm,
            "max_update_norm": spec.max_update_norm,
            "flag_cosine": spec.flag_cosine,
            "flag_norm_ratio": spec.flag_norm_ratio,
            "slash_fraction": spec.slash_fraction,
            "max_flags": spec.max_flags,
        },
        "privacy": privacy,
        "scoring": {"method": spec.scoring, "utility": spec.scoring_utility if spec.scored else None},
        "committee": spec.committee_size,
        "quorum": spec.effective_quorum,
        "min_commits": spec.effective_min_commits,
        "local_training": {
            "epochs": spec.local_epochs,
            "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate,
            "momentum": spec.momentum,
        },
        "code": " · ".join(f"{k} {v}" for k, v in audit.code.items() if v) or f"model {spec.model}",
    }


def _performance(inputs: ReportInputs) -> list[dict[str, Any]]:
    """One row per round the chain closed: version, model, accuracy (metrics.json) and ε (chain)."""
    facts, src = inputs.facts, inputs.job.source
    metrics = {int(m["round"]): m for m in inputs.metrics if isinstance(m.get("round"), int)}
    spent = {
        int(e.args["round"]): int(e.args["micro_epsilon"]) / 1e6
        for e in src.events
        if e.name == "PrivacySpent" and e.args.get("job_id") == src.job_id
    }
    checked = bool(inputs.audit.checks.get("metrics"))
    rows = []
    for r in facts.rounds:
        fin, m = facts.finalized.get(r), metrics.get(r, {})
        rows.append(
            {
                "round": r,
                "version": int(fin.args["version"]) if fin else None,
                "status": "finalized" if fin else "failed",
                "model": commitment_hex(fin.args["aggregate"]) if fin else "",
                "accepted": int(fin.args["accepted_commits"]) if fin else 0,
                "excluded": len(facts.excluded.get(r, ())),
                "reward": str(fin.args["reward"]) if fin else "0",
                "block": fin.block_number if fin else None,
                "tx_hash": fin.tx_hash if fin else "",
                "time": iso(inputs.block_times.get(fin.block_number)) if fin else "",
                "test_accuracy": m.get("test_accuracy"),
                "test_loss": m.get("test_loss"),
                "epsilon": spent.get(r),
                "accuracy_checked_by_audit": checked and "test_accuracy" in m,
            }
        )
    return rows


def _contributions(inputs: ReportInputs) -> dict[str, list[float]]:
    """Per organisation, its contribution in each finalised round it committed to (see skew.py)."""
    facts, src = inputs.facts, inputs.job.source
    name = src.participants
    settled = {
        int(e.args["round"]): e
        for e in src.events
        if e.name == "ScoresSettled" and e.args.get("job_id") == src.job_id
    }
    out: dict[str, list[float]] = defaultdict(list)
    for entry in inputs.audit.lineage:
        r = entry.round
        if r in settled:  # scored: the consensus score of each commit, in commit order
            trainers = facts.commits.get(r, [])
            scores = unpack_scores(settled[r].args["scores"], len(trainers))
            for t, s in zip(trainers, scores, strict=True):
                out[name.get(t, t)].append(s / SCORE_ONE)
            continue
        total = sum(int(c["num_examples"]) for c in entry.contributors) or 1
        for c in entry.contributors:
            out[c["organisation"]].append(int(c["num_examples"]) / total)
        for x in entry.excluded:
            out[x["organisation"]].append(0.0)
    return dict(out)


def _organisations(inputs: ReportInputs, contributions: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Each registered organisation: roles, stake, rounds, exclusions, flags, pay, data commitment."""
    facts, src, audit = inputs.facts, inputs.job.source, inputs.audit
    name = src.participants
    examples: dict[str, int] = defaultdict(int)
    for entry in audit.lineage:
        for c in entry.contributors:
            examples[c["organisation"]] += int(c["num_examples"])
    data = {d["organisation"]: d for d in audit.data}
    registered = [e for e in src.events if e.name == "Registered" and e.args.get("job_id") == src.job_id]
    rows = []
    for e in sorted(registered, key=lambda e: (e.block_number, e.log_index)):
        account = str(e.args["account"])
        org = name.get(account, account)
        committed = [r for r, ts in facts.commits.items() if account in ts]
        excluded = [r for r, ts in facts.excluded.items() if account in ts]
        slashes = [a for s in facts.slashed.values() for t, a in s if t == account]
        pay = audit.payouts.get(org, {})
        contrib = contributions.get(org, [])
        rows.append(
            {
                "organisation": org,
                "address": account,
                "roles": [r for r in ("trainer", "validator") if e.args.get(r)],
                "registered_block": e.block_number,
                "stake": str(e.args["stake"]),
                "rounds_committed": len(committed),
                "rounds_excluded": len(excluded),
                "examples_accepted": examples.get(org, 0),
                "flags": len(slashes),
                "slashed": str(sum(slashes)),
                "ejected": account in facts.ejected,
                "earned": pay.get("earned"),
                "withdrawn": str(facts.paid[account]) if account in facts.paid else None,
                "mean_contribution": sum(contrib) / len(contrib) if contrib else None,
                "data_commitment": data.get(org),
            }
        )
    return rows
