"""The audit's re-execution of a round: the validators' own `compute_round`, byte for byte.

The auditor recomputes each judged round from the committed updates and compares what it
finds with what the chain recorded: which updates were excluded, the finalised aggregate
(via its commitment), the accepted counts and weights; then checks the round's penalties
(`penalties.py`) and records the model version's lineage.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fedledger.audit.penalties import check_dissent, check_flags
from fedledger.audit.report import AuditState, LineageEntry
from fedledger.chain.contracts import Event
from fedledger.codec.commitment import commitment_hex
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import RoundOutcome
from fedledger.roles.secure import SecureInputs
from fedledger.roles.validator import compute_round
from fedledger.store.base import BlobStore


def check_round(
    audit: AuditState,
    r: int,
    fin: Event | None,
    commits: list[CommitRecord],
    excluded: list[str],
    evs: list[Event],
    model: dict[str, np.ndarray],
    parent: bytes,
    version_before: int,
) -> RoundOutcome:
    """Re-derives the round's exclusions, flags and penalties, and if it finalised, its model."""
    releases = sum(1 for e in audit.events if e.name == "PrivacySpent" and int(e.args["round"]) < r)
    secure = None
    if audit.spec.secure:  # the key directory and this round's reveals, from the re-executed events
        secure = SecureInputs.from_events(audit.src.coordinator, audit.events, audit.src.job_id, r, parent)

    def recompute(store: BlobStore) -> RoundOutcome:
        return compute_round(
            store=store,
            spec=audit.spec,
            job_id=audit.src.job_id,
            round=r,
            version=version_before,
            global_model=model,
            commits=commits,
            root_trainer=audit.sponsor,
            secure=secure,
            releases_before=releases,
        )

    outcome = recompute(audit.store)
    for who, why in outcome.faults.items():
        audit.warn(
            "secagg",
            "share reveals",
            f"fault recorded, round recovered: {why}",
            round=r,
            org=audit.name(who),
        )
    rejected = {x.trainer: x.reason for x in outcome.rejected}
    chain_excluded = set(excluded)
    revived = {cm.commitment for cm in commits if cm.trainer in chain_excluded and cm.trainer not in rejected}
    if revived:
        # Excluded on chain, valid now. If the validators could not fetch it during the round
        # (a data-availability fault: its store was down), the chain's result is what they
        # had to compute; availability at the time cannot be re-derived, so say so.
        unavailable = recompute(_Without(audit.store, revived))
        if fin is None or unavailable.aggregate == fin.args["aggregate"]:
            for cm in commits:
                if cm.commitment in revived:
                    audit.warn(
                        "availability",
                        f"update blob {commitment_hex(cm.commitment)}",
                        "excluded on chain as unavailable (a data-availability fault); the blob is "
                        "available now, so whether it was during the round cannot be re-derived",
                        round=r,
                        org=audit.name(cm.trainer),
                    )
            outcome = unavailable
            rejected = {x.trainer: x.reason for x in outcome.rejected}
    for cm in commits:
        org = audit.name(cm.trainer)
        artefact = f"update blob {commitment_hex(cm.commitment)}"
        if cm.trainer in rejected and cm.trainer not in chain_excluded:
            audit.error(
                "update",
                artefact,
                f"accepted on chain but now invalid: {rejected[cm.trainer]}",
                round=r,
                org=org,
            )
        elif cm.trainer in chain_excluded and cm.trainer not in rejected:
            audit.error(
                "update",
                artefact,
                "excluded on chain but the update is valid",
                round=r,
                org=org,
            )
        elif cm.trainer in rejected:
            audit.warn(
                "update",
                artefact,
                f"excluded, as the audit confirms: {rejected[cm.trainer]}",
                round=r,
                org=org,
            )
            audit.passed("update")
        else:
            audit.passed("update")
    check_flags(audit, r, outcome.rejected, evs)
    check_dissent(audit, r, fin, evs)
    flagged_on_chain = {e.args["trainer"] for e in evs if e.name == "TrainerSlashed"}
    if fin is None:
        return outcome
    version = int(fin.args["version"])
    if outcome.aggregate != fin.args["aggregate"]:
        audit.error(
            "aggregate",
            f"model version {version}",
            f"recomputed aggregate {commitment_hex(outcome.aggregate)} != finalised "
            f"{commitment_hex(fin.args['aggregate'])}",
            round=r,
        )
    else:
        audit.passed("aggregate")
    # the weight is examples, or in a scored job the consensus scores (checked in scores.py)
    accepted_examples = sum(c.num_examples for c in outcome.accepted)
    weight = accepted_examples if not audit.spec.scored else fin.args["accepted_weight"]
    if (fin.args["accepted_commits"], fin.args["accepted_weight"]) != (len(outcome.accepted), weight):
        audit.error(
            "aggregate",
            f"RoundFinalized event (block {fin.block_number})",
            f"records {fin.args['accepted_commits']} updates / {fin.args['accepted_weight']} "
            f"examples, recomputed {len(outcome.accepted)} / {accepted_examples}",
            round=r,
        )
    audit.report.lineage.append(
        LineageEntry(
            version=version,
            round=r,
            commitment=commitment_hex(fin.args["aggregate"]),
            parent=commitment_hex(parent),
            contributors=[
                {
                    "organisation": audit.name(c.trainer),
                    "trainer": c.trainer,
                    "update": commitment_hex(c.commitment),
                    "num_examples": c.num_examples,
                    **(
                        {"data_commitment": audit.data_commitments[c.trainer.lower()]["root"]}
                        if c.trainer.lower() in audit.data_commitments
                        else {}
                    ),
                }
                for c in commits
                if c.trainer not in chain_excluded
            ],
            excluded=[
                {
                    "organisation": audit.name(t),
                    "trainer": t,
                    "reason": rejected.get(t, ""),
                    "flagged": t in flagged_on_chain,
                }
                for t in sorted(chain_excluded)
            ],
        )
    )
    return outcome


class _Without(BlobStore):
    """A store that has lost some blobs: how the round looked to validators who could not fetch them."""

    def __init__(self, store: BlobStore, hidden: set[bytes]) -> None:
        self.store, self.hidden = store, hidden

    def _read(self, commitment: bytes) -> bytes | None:
        return None if commitment in self.hidden else self.store._read(commitment)

    def _write(self, commitment: bytes, data: bytes) -> None:
        self.store._write(commitment, data)

    def _remove(self, commitment: bytes) -> bool:
        return self.store._remove(commitment)

    def _list(self) -> Iterator[bytes]:
        return (c for c in self.store._list() if c not in self.hidden)
