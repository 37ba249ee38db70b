"""The audit of record-level DP: every organisation's ε, recomputed from public values alone.

Under `dp_level = "record"` each trainer runs DP-SGD on its own records and posts, after
each commit, its cumulative ε to the data registry (`TrainerPrivacySpent`). The spend is a
function of the spec (noise multiplier, sampling rate, steps per round, δ, accountant) and
of how many rounds the trainer committed in, which the chain shows. So the audit recomputes
each organisation's ε from its `UpdateCommitted` events and checks:

- no posted figure is below what the trainer's commits up to that round imply (a trainer may
  post more: an update uploaded but not committed in time was released too);
- no trainer committed an update its budget did not afford, and no posted figure exceeds it.

What the audit cannot check is that the noise was really added inside the organisation: the
update it sees is the same shape either way (docs/design.md, "What nobody can verify").
"""

from __future__ import annotations

import math
from typing import Any

from fedledger.audit.report import AuditState
from fedledger.chain.contracts import Event
from fedledger.roles.record_dp import micro_epsilon_after


def check_record_privacy(audit: AuditState, events: list[Event], registry: str, job_id: int) -> None:
    """Checks every posted per-organisation ε and fills the report's per-organisation figures.

    `events` are every event of the job, coordinator's and registry's.
    """
    spec = audit.spec
    posted = sorted(
        (
            e
            for e in events
            if e.name == "TrainerPrivacySpent"
            and e.address.lower() == registry.lower()
            and str(e.args.get("job_id")) == str(job_id)
        ),
        key=lambda e: (e.block_number, e.log_index),
    )
    if not spec.record_dp:
        for e in posted:
            audit.error(
                "privacy",
                f"TrainerPrivacySpent (block {e.block_number})",
                "a per-organisation ε recorded in a job without record-level DP",
                org=audit.name(str(e.args["trainer"])),
            )
        return
    commits: dict[str, list[int]] = {}
    for e in events:
        if e.name == "UpdateCommitted" and e.address.lower() != registry.lower():
            commits.setdefault(str(e.args["trainer"]).lower(), []).append(int(e.args["round"]))
    budget_micro = math.ceil(spec.dp_epsilon * 1e6)
    last_posted: dict[str, int] = {}
    for e in posted:
        trainer, r, got = str(e.args["trainer"]).lower(), int(e.args["round"]), int(e.args["micro_epsilon"])
        org, where = audit.name(str(e.args["trainer"])), f"TrainerPrivacySpent (block {e.block_number})"
        rounds = sum(1 for c in commits.get(trainer, []) if c <= r)
        want = micro_epsilon_after(spec, rounds)
        if got < want:
            audit.error(
                "privacy",
                where,
                f"ε {got / 1e6:.6f} recorded after round {r}; its {rounds} committed rounds spend "
                f"{want / 1e6:.6f}",
                round=r,
                org=org,
            )
        elif got > budget_micro:
            audit.error(
                "privacy",
                where,
                f"ε {got / 1e6:.6f} exceeds the budget {spec.dp_epsilon:g}",
                round=r,
                org=org,
            )
        else:
            audit.passed("privacy")
        last_posted[trainer] = got
    organisations: dict[str, dict[str, Any]] = {}
    for trainer, committed in sorted(commits.items()):
        org = audit.name(_checksummed(trainer, events))
        spent = micro_epsilon_after(spec, len(committed))
        if spent > budget_micro:
            over = (
                sorted(committed)[spec.dp_rounds_affordable]
                if len(committed) > spec.dp_rounds_affordable
                else 0
            )
            audit.error(
                "privacy",
                "UpdateCommitted events",
                f"{len(committed)} committed rounds spend ε {spent / 1e6:.6f} of its records, over the "
                f"budget {spec.dp_epsilon:g} (it affords {spec.dp_rounds_affordable})",
                round=over,
                org=org,
            )
        if trainer not in last_posted:
            audit.warn("privacy", "data registry", "committed updates but recorded no ε", org=org)
        organisations[org] = {
            "rounds": len(committed),
            "epsilon": spent / 1e6,
            "epsilon_recorded": last_posted.get(trainer, 0) / 1e6,
        }
    organisations = dict(sorted(organisations.items()))
    audit.report.privacy = {
        "level": "record",
        # as recorded on chain, like organisation level's figure (each one was checked above)
        "epsilon_spent": max((o["epsilon_recorded"] for o in organisations.values()), default=0.0),
        "epsilon_budget": spec.dp_epsilon,
        "delta": spec.dp_delta,
        "noise_multiplier": spec.noise_multiplier,
        "max_grad_norm": spec.dp_max_grad_norm,
        "sample_rate": spec.dp_sample_rate,
        "steps_per_round": spec.dp_steps_per_round,
        "accountant": spec.dp_accountant,
        "organisations": organisations,
    }


def _checksummed(lower: str, events: list[Event]) -> str:
    """The address as the events spell it (the report's names are keyed that way)."""
    for e in events:
        trainer = str(e.args.get("trainer", ""))
        if trainer.lower() == lower:
            return trainer
    return lower
