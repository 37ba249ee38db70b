"""What the audit verified, and — as plainly — what it did not.

The verified part is the audit's own report (`fedledger audit`): its checks passed, its
findings, and the run-directory files no check reads. The not-verified part states the
limits of any chain audit, so a reader does not take the green verdict for more than it is.
"""

from __future__ import annotations

from typing import Any

from fedledger.report.inputs import ReportInputs

#: what each audit check re-derives, in words (keys are the audit's check names)
CHECK_MEANING = {
    "spec": "the spec file hashes to the spec hash the job was created with",
    "blob": "every model blob the chain names is in the store and matches its commitment",
    "lineage": "each round opened on the model the previous round finalised",
    "update": "each committed update is in the store, decodes and passes the screen as the chain says",
    "aggregate": "each finalised aggregate recomputed bit for bit from the accepted updates",
    "scores": "settled scores equal the stake-weighted median of the quorum's posted scores",
    "rescore": "consensus scores within tolerance of the audit's own scoring",
    "fee": "validator fees paid as the consensus rules say",
    "payout": "each organisation's payout re-derived from the rounds",
    "stake": "stakes returned less slashes",
    "pool": "the reward pool balances",
    "privacy": "ε recorded on chain each round re-derived with the accountant",
    "tx-decoding": "every transaction's calldata decodes as the export says",
    "participants": "the export's participant names match the registered accounts",
    "metrics": "metrics.json's rounds, counts, accuracy and loss recomputed from the chain's models",
    "final-model": "final_model.safetensors is the last finalised model",
    "model-card": "model_card.json and MODEL_CARD.md state the chain's facts",
    "data": "each data commitment is well formed and bound to the job",
    "flag": "each slash follows a flag the quorum carried",
    "eject": "each ejection follows the flag limit",
    "record-privacy": "each organisation's record-level ε re-derived from its commits",
}


def audit_section(inputs: ReportInputs) -> dict[str, Any]:
    audit, spec = inputs.audit, inputs.job.spec
    limits = [
        "whether each organisation trained honestly on the data it committed to: the audit re-derives "
        "aggregation from the committed updates, not the local training that produced them",
        "the quality, representativeness, lawful basis and possible bias of each organisation's data",
        "who the organisations behind the addresses are: names come from the participants list, off chain",
        "the intended purpose, human oversight and the deployment of the model",
    ]
    if spec.own_data:
        limits.append("test accuracy: an own-data job's test rows stay with its sponsor")
    if inputs.job.run_dir is None:
        limits.append("run-directory files (metrics, model card, final model): a live audit reads none")
    elif inputs.job.export is not None and inputs.job.export["chain"].get("kind") != "inprocess":
        limits.append("re-execution: an export from an RPC node is checked for consistency, not replayed")
    return {
        "ok": audit.ok,
        "provenance": audit.provenance,
        "checks": [
            {"check": k, "passed": n, "meaning": CHECK_MEANING.get(k, "")}
            for k, n in sorted(audit.checks.items())
        ],
        "findings": [dict(f.__dict__) for f in audit.findings],
        "errors": sum(1 for f in audit.findings if f.severity == "error"),
        "warnings": sum(1 for f in audit.findings if f.severity == "warning"),
        "files_not_covered": list(audit.not_covered),
        "not_verified": limits,
    }
