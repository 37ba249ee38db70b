"""A trainer's data commitment: made once per job, kept private, posted before its first update.

The commitment itself is `data/commitment.py`; this is the role's side of it. The salt that
opens it is the one thing an organisation must not lose (without it, it can never show an
auditor which file it trained on) and must not publish (with it, anyone can test guesses of
rows). So the opening is written, readable by its owner only, *before* the commitment is
sent: a crash between the two leaves an opening whose commitment is simply posted on the
next start, never a commitment on chain whose salt is gone.
"""

from __future__ import annotations

import logging
from pathlib import Path

from eth_account.signers.local import LocalAccount

from fedledger.chain.base import Receipt
from fedledger.chain.contracts import DataRegistry
from fedledger.codec.commitment import commitment_hex
from fedledger.data.commitment import (
    DataCommitment,
    Opening,
    commit_rows,
    differences,
    new_salt,
    schema_hash,
)
from fedledger.data.encode import LocalData
from fedledger.data.sources import DataSource
from fedledger.errors import DataError, TransactionReverted
from fedledger.spec import JobSpec

log = logging.getLogger("fedledger.trainer")


def make_opening(
    data: LocalData, spec: JobSpec, *, organisation: str, source: DataSource, salt: bytes | None = None
) -> Opening:
    """A fresh salted commitment to the rows this organisation brings to the job."""
    assert spec.data_schema is not None
    salt = new_salt() if salt is None else salt
    commitment = commit_rows(data.x, data.y, salt=salt, schema_hash=schema_hash(spec.data_schema))
    # the opening is handed to an auditor: a database URL goes in without its password
    where = source.describe() if source.is_url else source.source
    return Opening(
        organisation=organisation, source=where, salt=salt, commitment=commitment, query=source.query
    )


def node_opening(
    path: Path, data: LocalData, spec: JobSpec, *, organisation: str, source: DataSource
) -> Opening:
    """The node's opening for this job: read back and re-checked on a restart, else made and written.

    A restart must reuse the salt it committed under (the registry takes one commitment per
    trainer and job), and must still be reading the same rows: if the source changed since,
    the node refuses to train on data other than what it committed to.
    """
    assert spec.data_schema is not None
    if path.exists():
        opening = Opening.read(path)
        want = schema_hash(spec.data_schema)
        if opening.commitment.schema_hash != want:  # the rows cannot be compared: another job's opening
            raise DataError(
                f"{organisation}: the opening {path} commits under another data schema than this job's "
                "(it is another job's opening): point [data] opening at this job's, or move the file "
                "away to commit afresh"
            )
        again = commit_rows(data.x, data.y, salt=opening.salt, schema_hash=want)
        changed = differences(opening.commitment, again)
        if changed:
            whose = (
                f", which is {opening.organisation}'s, not {organisation}'s"
                if opening.organisation != organisation
                else ""
            )
            raise DataError(
                f"{organisation}: {source.describe()} no longer matches the data this node committed to "
                f"({' and '.join(changed)} {'differs' if len(changed) == 1 else 'differ'} from the opening "
                f"{path}{whose}): restore the source, or join another job with the new data"
            )
        return opening
    opening = make_opening(data, spec, organisation=organisation, source=source)
    opening.write(path)
    log.info("%s: data opening written to %s (keep it private)", organisation, path)
    return opening


def posted_commitment(registry: DataRegistry, job_id: int, trainer: str) -> DataCommitment | None:
    """The trainer's data commitment for the job as the registry holds it, or None."""
    posted = registry.data_commitment(job_id, trainer)
    return None if posted is None else DataCommitment(root=posted[0], rows=posted[1], schema_hash=posted[2])


def post_data_commitment(
    registry: DataRegistry, account: LocalAccount, job_id: int, commitment: DataCommitment, *, name: str
) -> Receipt | None:
    """Posts the commitment unless the chain already has it; None when it did.

    A different commitment already on chain for this trainer is a DataError: this node is
    about to train on data other than what it committed to.
    """
    on_chain = posted_commitment(registry, job_id, account.address)
    if on_chain is not None:
        changed = differences(on_chain, commitment)
        if changed:
            raise DataError(
                f"{name}: {account.address} already committed other data to job {job_id} "
                f"(root {commitment_hex(on_chain.root)}, {on_chain.rows} rows; {', '.join(changed)} "
                "differ): a job takes one data commitment per trainer"
            )
        return None
    try:
        receipt = registry.commit_data(
            account, job_id, root=commitment.root, rows=commitment.rows, schema_hash=commitment.schema_hash
        )
    except TransactionReverted as exc:
        raise DataError(f"{name}: cannot commit its data to job {job_id}: {exc.reason}") from None
    log.info(
        "%s: committed its data to job %d: %d rows, root %s",
        name,
        job_id,
        commitment.rows,
        commitment_hex(commitment.root),
    )
    return receipt
