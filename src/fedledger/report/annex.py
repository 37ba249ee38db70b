"""EU AI Act Annex IV technical documentation: what the chain fills, what the provider must.

Each Annex IV point becomes one section. `from_chain` holds what this report can state from
the audited chain, spec and run files (or points to the report section that states it);
`provider` names the fields no chain can fill — intent, people, organisation, legal standing —
left as labelled blanks for the provider to complete. Nothing is guessed into a blank.
"""

from __future__ import annotations

from typing import Any

from fedledger import __version__

BLANK = "[to be completed by the provider]"


def _field(label: str, value: Any) -> dict[str, Any]:
    return {"label": label, "value": value}


def annex_iv(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The Annex IV sections for a report already holding its other sections."""
    job, method, spec = report["job"], report["method"], report["spec"]
    versions = [p for p in report["performance"] if p["status"] == "finalized"]
    last = versions[-1] if versions else {}
    data = [o for o in report["organisations"] if o["data_commitment"]]
    risk = [e for e in report["event_log"] if e["purpose"] == "risk"]
    return [
        {
            "key": "general_description",
            "title": "1. General description of the AI system",
            "annex": "Annex IV(1)",
            "from_chain": [
                _field("task as the spec states it", report["purpose"]["stated_by_spec"]),
                _field("job", f"job {job['job_id']} on coordinator {job['coordinator']} ({job['chain']})"),
                _field("version", f"model version {last.get('version', 0)}, {last.get('model', 'none')}"),
                _field("software", f"fedledger {__version__}; contract sources {job['contract_sources']}"),
                _field("model code", method["code"]),
            ],
            "provider": [
                "intended purpose (Art. 13(3)(b)(i))",
                "provider name and contact",
                "how the system interacts with hardware or software outside it",
                "forms in which the system is placed on the market or put into service",
                "hardware it is intended to run on",
                "instructions for use and user interface description",
            ],
        },
        {
            "key": "development_process",
            "title": "2. Elements of the AI system and its development process",
            "annex": "Annex IV(2)",
            "from_chain": [
                _field("training method", "see 'Training method' (aggregation, robustness screen, privacy)"),
                _field(
                    "design specification",
                    f"spec hash {job['spec_hash']} binds the spec in 'Purpose and spec'",
                ),
                _field(
                    "validation",
                    f"a committee of {method['committee']} recomputes each round; quorum "
                    f"{method['quorum']}; the audit recomputed every round (see 'Audit')",
                ),
                _field(
                    "training data",
                    f"{len(data)} organisation(s) committed to their data on chain "
                    "(salted Merkle roots, rows, schema hash)"
                    if data
                    else f"bundled dataset '{spec['dataset']}' partitioned '{spec['partition']}'; "
                    "no data commitments on chain",
                ),
                _field(
                    "cybersecurity",
                    "signed transactions on an EVM chain, content-addressed model "
                    "blobs re-hashed on every read"
                    + (", secure aggregation" if spec["privacy"] == "secagg" else ""),
                ),
            ],
            "provider": [
                "data sheets: provenance, scope, labelling and cleaning of each organisation's data",
                "human oversight measures (Art. 14)",
                "design choices and their rationale, trade-offs",
                "pre-determined changes and continuous compliance",
            ],
        },
        {
            "key": "monitoring_functioning_control",
            "title": "3. Monitoring, functioning and control",
            "annex": "Annex IV(3)",
            "from_chain": [
                _field("performance limits", "test accuracy per model version: see 'Performance'"),
                _field(
                    "record-keeping",
                    f"{len(report['event_log'])} events logged with time, block "
                    "and transaction: see 'Event log'",
                ),
                _field("input data", "schema hash per data commitment" if data else "bundled dataset"),
            ],
            "provider": [
                "degree of accuracy for specific persons or groups the system is intended for",
                "foreseeable unintended outcomes and sources of risk to health, safety, rights",
                "human oversight measures and technical measures easing interpretation of outputs",
            ],
        },
        {
            "key": "performance_metrics",
            "title": "4. Appropriateness of the performance metrics",
            "annex": "Annex IV(4)",
            "from_chain": [
                _field(
                    "metrics",
                    f"test accuracy and loss on a held-out share of {spec['test_fraction']:g} "
                    "no trainer sees",
                ),
                _field("final accuracy", last.get("test_accuracy")),
            ],
            "provider": ["why these metrics are appropriate for the intended purpose"],
        },
        {
            "key": "risk_management",
            "title": "5. Risk management system (Art. 9)",
            "annex": "Annex IV(5)",
            "from_chain": [
                _field("risk events", f"{len(risk)} (exclusions, flags, slashes, ejections, failed rounds)"),
                _field(
                    "contribution skew",
                    f"{len(report['skew']['diverging'])} organisation(s) diverge: see 'Contribution skew'",
                ),
                _field("audit", "passed" if report["audit"]["ok"] else "FAILED"),
            ],
            "provider": ["description of the risk management system and its measures"],
        },
        {
            "key": "lifecycle_changes",
            "title": "6. Changes made over the lifecycle",
            "annex": "Annex IV(6)",
            "from_chain": [
                _field(
                    "versions",
                    f"{len(versions)} model version(s), each with its contributors: "
                    "see 'Changes between versions'",
                ),
            ],
            "provider": ["changes made to the system after it was placed on the market"],
        },
        {
            "key": "standards_applied",
            "title": "7. Harmonised standards and other specifications applied",
            "annex": "Annex IV(7)",
            "from_chain": [
                _field(
                    "privacy accounting", method["privacy"].get("accountant") or "no differential privacy"
                ),
            ],
            "provider": ["harmonised standards applied (published in the OJEU), or other solutions used"],
        },
        {
            "key": "eu_declaration",
            "title": "8. EU declaration of conformity (Art. 47)",
            "annex": "Annex IV(8)",
            "from_chain": [],
            "provider": ["a copy of the EU declaration of conformity"],
        },
        {
            "key": "post_market_monitoring",
            "title": "9. Post-market monitoring (Art. 72)",
            "annex": "Annex IV(9)",
            "from_chain": [
                _field("records", "the event log; a live chain's report can be re-run at any time")
            ],
            "provider": ["the post-market monitoring plan"],
        },
    ]
