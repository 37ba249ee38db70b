"""The audit of an own-data job's lineage below the model: data commitments and code digest.

Model version -> contributors is what the round checks establish. This module adds the
last two links: every trainer whose update was committed in a job on the organisations'
own data must have posted, before that first update, one data commitment under the job's
schema hash; and the code every party ran is the spec's code digest, which the spec hash
on chain already binds. The rows themselves stay with each organisation; an auditor who is
shown one file checks it against its commitment with `fedledger data prove`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fedledger.chain.contracts import Event
from fedledger.codec.commitment import commitment_hex
from fedledger.data.commitment import DataCommitment, schema_hash
from fedledger.errors import CodecError
from fedledger.spec import JobSpec

Report = Callable[..., None]  # (severity, check, artefact, message, round=, org=)


def _position(e: Event) -> tuple[int, int]:
    return (e.block_number, e.log_index)


def check_data_commitments(
    *,
    spec: JobSpec,
    events: Sequence[Event],
    registry: str,
    job_id: int,
    report: Report,
    name: Callable[[str], str],
) -> dict[str, dict[str, Any]]:
    """Each committer's data commitment, checked; keyed by trainer address (lower case).

    `events` are every trusted event of the job (coordinator and registry); a bundled-dataset
    job needs no data commitments, so it is checked only for ones it should not have.
    """
    posted = [
        e
        for e in events
        if e.name == "DataCommitted"
        and e.address.lower() == registry.lower()
        and str(e.args.get("job_id")) == str(job_id)
    ]
    first_update: dict[str, Event] = {}
    for e in sorted((e for e in events if e.name == "UpdateCommitted"), key=_position):
        first_update.setdefault(str(e.args["trainer"]).lower(), e)
    by_trainer: dict[str, list[Event]] = {}
    for e in posted:
        by_trainer.setdefault(str(e.args["trainer"]).lower(), []).append(e)
    if spec.data_schema is None:
        for e in posted:
            report(
                "warning",
                "data",
                f"DataCommitted (block {e.block_number})",
                "a data commitment in a job on a bundled dataset (not part of its lineage)",
                org=name(str(e.args["trainer"])),
            )
        return {}
    want = schema_hash(spec.data_schema)
    found: dict[str, dict[str, Any]] = {}
    for trainer, update in first_update.items():
        org = name(str(update.args["trainer"]))
        mine = by_trainer.get(trainer, [])
        if not mine:
            report(
                "error",
                "data",
                f"UpdateCommitted (block {update.block_number})",
                "committed an update without a data commitment: nothing binds the data it trained on",
                round=int(update.args["round"]),
                org=org,
            )
            continue
        if len(mine) > 1:
            report(
                "error",
                "data",
                f"DataCommitted (block {mine[1].block_number})",
                f"{len(mine)} data commitments for one trainer; the registry takes one per job",
                org=org,
            )
        e = mine[0]
        where = f"DataCommitted (block {e.block_number})"
        try:
            c = DataCommitment.from_event(e.args)
        except (ValueError, CodecError, KeyError, TypeError) as exc:  # only an edited export holds these
            report("error", "data", where, f"not a data commitment the registry accepts: {exc}", org=org)
            continue
        ok = True
        if c.schema_hash != want:
            report(
                "error",
                "data",
                where,
                f"schema hash {commitment_hex(c.schema_hash)} is not the job's data schema "
                f"({commitment_hex(want)}): the rows were encoded under another schema",
                org=org,
            )
            ok = False
        if _position(e) > _position(update):
            report(
                "error",
                "data",
                where,
                f"posted after the trainer's first update (block {update.block_number}): the data "
                "was not fixed before it trained",
                org=org,
            )
            ok = False
        if ok:
            report("passed", "data")
        found[trainer] = {
            "organisation": org,
            "trainer": str(update.args["trainer"]),
            "root": commitment_hex(c.root),
            "rows": c.rows,
            "schema_hash": commitment_hex(c.schema_hash),
            "block": e.block_number,
        }
    return found


def code_lineage(spec: JobSpec) -> dict[str, Any]:
    """The code every party ran, as the spec names it (the spec hash on chain binds all three)."""
    return {"model": spec.model, "client": spec.client, "code_digest": spec.code_digest or ""}
