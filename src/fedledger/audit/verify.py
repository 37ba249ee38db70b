"""The audit's checks: every blob, every round, every payout, re-derived from the events.

Given trusted events (see `replay.py`), a store and the spec, the auditor
recomputes each finalised round with the validators' own `compute_round`
(`rounds.py`) and compares the result with what the quorum finalised, byte for
byte via the commitment; then the penalties (`penalties.py`), the scores
(`scores.py`), the payouts and the privacy budget (`payouts.py`). A check that
cannot be made (a missing blob) is itself a finding. This module walks the job
in event order and hands each round to those checks.
"""

from __future__ import annotations

from collections import defaultdict

from fedledger.audit.data import check_data_commitments, code_lineage
from fedledger.audit.optimistic import check_optimistic
from fedledger.audit.payouts import check_payouts, check_privacy
from fedledger.audit.record_privacy import check_record_privacy
from fedledger.audit.replay import EventSource
from fedledger.audit.report import AuditReport, AuditState, LineageEntry
from fedledger.audit.rounds import check_round
from fedledger.audit.sampling import check_sampling
from fedledger.audit.scores import check_round_scores
from fedledger.chain.contracts import Event
from fedledger.codec.commitment import commitment_hex
from fedledger.roles.job import CommitRecord
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore

__all__ = ["AuditReport", "AuditState", "LineageEntry", "audit_events"]


def audit_events(source: EventSource, spec: JobSpec, store: BlobStore) -> AuditReport:
    """Runs every check over trusted events; the report's `ok` says whether all passed."""
    audit = AuditState(source, spec, store)
    job = audit.src.job_id
    events = [
        e for e in audit.src.events if e.address == audit.src.coordinator and e.args.get("job_id") == job
    ]
    created = [e for e in events if e.name == "JobCreated"]
    if not created:
        audit.error("job", "chain", f"no JobCreated event for job {job}")
        return audit.report
    c = created[0].args
    audit.events = events
    audit.sponsor = str(c["sponsor"])
    audit.stakes = {e.args["account"]: int(e.args["stake"]) for e in events if e.name == "Registered"}
    if c["spec_hash"] != audit.spec.spec_hash():
        audit.error(
            "spec",
            "spec.json",
            f"spec hash 0x{audit.spec.spec_hash().hex()} != on-chain "
            f"0x{c['spec_hash'].hex()}: this is not the spec the job was created with",
        )
    else:
        audit.passed("spec")
    audit.report.code = code_lineage(audit.spec)
    audit.data_commitments = check_data_commitments(
        spec=audit.spec,
        events=[e for e in audit.src.events if e.args.get("job_id") == job],
        registry=audit.src.data_registry,
        job_id=job,
        report=audit.record,
        name=audit.name,
    )
    audit.report.data = list(audit.data_commitments.values())
    current = c["initial_model"]
    model = audit.load_model(current, "initial model", None)

    by_round: dict[int, list[Event]] = defaultdict(list)
    for e in events:
        if "round" in e.args:
            by_round[int(e.args["round"])].append(e)
    finalized_rounds: list[tuple[int, Event, list[CommitRecord]]] = []
    for r in sorted(by_round):
        evs = by_round[r]
        opened = next((e for e in evs if e.name == "RoundOpened"), None)
        if opened is not None:
            if opened.args["global_model"] != current:
                audit.error(
                    "lineage",
                    f"RoundOpened event (block {opened.block_number})",
                    f"round opened on model {commitment_hex(opened.args['global_model'])}, "
                    f"but the last finalised model is {commitment_hex(current)}",
                    round=r,
                )
            else:
                audit.passed("lineage")
        commits = [
            CommitRecord(
                trainer=e.args["trainer"],
                round=r,
                commitment=e.args["commitment"],
                num_examples=e.args["num_examples"],
                block_number=e.block_number,
                log_index=e.log_index,
            )
            for e in evs
            if e.name == "UpdateCommitted"
        ]
        fin = next((e for e in evs if e.name == "RoundFinalized"), None)
        excluded = [e.args["trainer"] for e in evs if e.name == "UpdateExcluded"]
        if fin is None and not excluded:
            continue  # failed before any quorum: nothing was judged
        outcome = None
        hidden = audit.sealed_updates(commits)
        if hidden:
            audit.warn(
                "readers",
                f"round {r} updates",
                f"{hidden} of {len(commits)} updates are sealed to the job's readers and not readable "
                "to this audit: the round was not recomputed (audit --key with a reader's key does)",
                round=r,
            )
        elif model is not None:
            version = int(opened.args["version"]) if opened is not None else 0
            outcome = check_round(audit, r, fin, commits, excluded, evs, model, current, version)
            audit.outcomes[r] = (outcome, current)
        if fin is not None and audit.spec.scored:
            audit.settled[r] = check_round_scores(
                spec=audit.spec,
                r=r,
                fin=fin,
                commits=commits,
                evs=evs,
                events=events,
                outcome=outcome,
                model=model,
                scorer=audit.scorer,
                report=audit.record,
                name=audit.name,
            )
        if fin is not None:
            finalized_rounds.append((r, fin, commits))
            new = fin.args["aggregate"]
            model = audit.load_model(new, f"model version {fin.args['version']}", r)
            current = new
    check_sampling(audit)
    check_optimistic(audit)
    check_payouts(audit, created[0], finalized_rounds, events)
    check_privacy(audit, events)
    check_record_privacy(
        audit, [e for e in audit.src.events if e.args.get("job_id") == job], audit.src.data_registry, job
    )
    return audit.report
