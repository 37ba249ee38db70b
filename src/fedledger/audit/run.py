"""Audit entry points: a run directory, or a live chain plus a blob store.

Each is split in two — opening the job's inputs (`open_run_dir`, `open_live`) and auditing
them (`audit_opened`) — so a reader that also needs the trusted events (the compliance
report) re-executes the chain once, not twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from fedledger.audit.outputs import check_outputs
from fedledger.audit.replay import EventSource, from_export, from_live, load_export, reexecute
from fedledger.audit.verify import AuditReport, audit_events
from fedledger.chain.contracts import Coordinator
from fedledger.chain.rpc import RpcChain
from fedledger.errors import AuditFailure
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore
from fedledger.store.http import open_store
from fedledger.store.local import LocalStore
from fedledger.store.peers import PeerStore
from fedledger.store.sealed import OpeningStore, read_key


@dataclass
class OpenedJob:
    """A job's audit inputs: its spec, trusted events and store, and where they came from.

    `run_dir` and `export` are set for a run directory; `chain` for a live node.
    """

    spec: JobSpec
    source: EventSource
    store: BlobStore
    run_dir: Path | None = None
    export: dict[str, Any] | None = None
    chain: RpcChain | None = None


def open_run_dir(run_dir: Path | str) -> OpenedJob:
    """Reads a run directory (spec.json, chain.json, store/) left by `fedledger simulate`;
    an in-process export is re-executed here, so its events are the ones the audit trusts."""
    run = Path(run_dir)
    if not run.is_dir():
        raise AuditFailure(f"{run} is not a directory")
    for needed in ("spec.json", "chain.json", "store"):
        if not (run / needed).exists():
            raise AuditFailure(f"{run} is not a run directory: {needed} is missing")
    spec = JobSpec.load(run / "spec.json")
    export = load_export(run / "chain.json")
    source = reexecute(export) if export["chain"].get("kind") == "inprocess" else from_export(export)
    return OpenedJob(spec=spec, source=source, store=LocalStore(run / "store"), run_dir=run, export=export)


def open_live(
    *,
    rpc_url: str,
    coordinator: str,
    job_id: int,
    store_dir: Path | str | Sequence[Path | str],
    spec_path: Path | str,
    participants_path: Path | str | None = None,
    key: LocalAccount | None = None,
    ca_bundle: Path | str | None = None,
) -> OpenedJob:
    """Reads a job's events from a live node and opens its blob stores.

    `store_dir` is one location or several — directories, or the URLs of the organisations'
    `store serve` — read in turn, every blob re-hashed whichever store served it. With `key`
    (an auditor's or committee member's key listed in the spec's readers) reads are signed
    and sealed updates opened; without it they are verified as far as what is public goes.
    """
    chain = RpcChain(rpc_url, ca_bundle=str(ca_bundle) if ca_bundle else None)
    participants = {}
    if participants_path:
        participants = json.loads(Path(participants_path).read_text())
    source = from_live(Coordinator(chain, coordinator), job_id, participants)
    where = [store_dir] if isinstance(store_dir, str | Path) else list(store_dir)
    stores = [open_store(str(w), key, ca_bundle=ca_bundle) for w in where]
    peers = stores[0] if len(stores) == 1 else PeerStore(stores[0], stores[1:])
    store = OpeningStore(peers, key.address, read_key(bytes(key.key))) if key else OpeningStore(peers)
    return OpenedJob(spec=JobSpec.load(spec_path), source=source, store=store, chain=chain)


def audit_opened(job: OpenedJob) -> AuditReport:
    """Every check over an opened job; a run directory's derived files are checked too."""
    report = audit_events(job.source, job.spec, job.store)
    if job.run_dir is not None:
        # what a user deploys and reads: the final model, the model card, metrics, decoded calldata
        report.not_covered = check_outputs(
            job.run_dir,
            spec=job.spec,
            source=job.source,
            store=job.store,
            report=report.record,
            privacy=report.privacy,
        )
    return report


def audit_run_dir(run_dir: Path | str) -> AuditReport:
    """Audits a run directory (spec.json, chain.json, store/) left by `fedledger simulate`."""
    return audit_opened(open_run_dir(run_dir))


def audit_live(
    *,
    rpc_url: str,
    coordinator: str,
    job_id: int,
    store_dir: Path | str | Sequence[Path | str],
    spec_path: Path | str,
    participants_path: Path | str | None = None,
    key: LocalAccount | None = None,
    ca_bundle: Path | str | None = None,
) -> AuditReport:
    """Audits a job on a live chain against its blob stores (see `open_live`)."""
    return audit_opened(
        open_live(
            rpc_url=rpc_url,
            coordinator=coordinator,
            job_id=job_id,
            store_dir=store_dir,
            spec_path=spec_path,
            participants_path=participants_path,
            key=key,
            ca_bundle=ca_bundle,
        )
    )
