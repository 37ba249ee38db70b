"""What a compliance report is made from: the audited job, and the files a run directory adds.

Everything chain-derived comes through the audit's own readers (`audit.run.open_run_dir` /
`open_live`: the re-executed or live events, `audit.facts.RunFacts`), so the report states
exactly the events the audit checked. The run directory's derived files (metrics.json,
model_card.json) are read only for what the chain does not hold — accuracy and
loss (the audit says whether it checked them); contribution scores come from the chain's
ScoresSettled events, not scores.csv.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from fedledger.audit.export_file import parse_json
from fedledger.audit.facts import RunFacts
from fedledger.audit.run import OpenedJob, audit_opened, open_live, open_run_dir
from fedledger.audit.verify import AuditReport
from fedledger.errors import AuditFailure, ChainError


@dataclass
class ReportInputs:
    """One audited job, ready to be described."""

    job: OpenedJob
    audit: AuditReport
    facts: RunFacts
    #: where the job was read from, in words (a run directory's path, or the RPC URL)
    where: str
    #: block number -> UNIX time of the block, for every block holding one of the job's events
    block_times: dict[int, int] = field(default_factory=dict)
    #: metrics.json's rows (a run directory only; the chain holds no accuracy)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    #: model_card.json (a run directory only)
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def chain_description(self) -> str:
        if self.job.export is not None:
            return str(self.job.export["chain"].get("description", "chain export"))
        return self.job.chain.description if self.job.chain is not None else "unknown chain"


def from_run_dir(run_dir: Path | str) -> ReportInputs:
    """Opens and audits a run directory; refuses (one line) a directory that is not a run."""
    job = open_run_dir(run_dir)
    run = Path(run_dir)
    assert job.export is not None  # open_run_dir always sets it
    times = {int(tx["block_number"]): int(tx["timestamp"]) for tx in job.export["transactions"]}
    inputs = ReportInputs(
        job=job, audit=audit_opened(job), facts=RunFacts(job.source), where=str(run), block_times=times
    )
    inputs.metrics = _json_list(run / "metrics.json")
    card = _json_file(run / "model_card.json")
    inputs.card = card if isinstance(card, dict) else {}
    return inputs


def from_live(
    *,
    rpc_url: str,
    coordinator: str,
    job_id: int,
    store: Sequence[Path | str],
    spec_path: Path | str,
    participants_path: Path | str | None = None,
    key: LocalAccount | None = None,
    ca_bundle: Path | str | None = None,
) -> ReportInputs:
    """Reads a job from a live node, audits it against its stores, and dates its blocks.

    `key` and `ca_bundle` are the audit's: a reader's key opens sealed updates, a CA bundle
    trusts the consortium's own certificates.
    """
    job = open_live(
        rpc_url=rpc_url,
        coordinator=coordinator,
        job_id=job_id,
        store_dir=store,
        spec_path=spec_path,
        participants_path=participants_path,
        key=key,
        ca_bundle=ca_bundle,
    )
    inputs = ReportInputs(job=job, audit=audit_opened(job), facts=RunFacts(job.source), where=rpc_url)
    chain = job.chain
    if chain is not None:
        blocks = sorted({e.block_number for e in job.source.events if e.args.get("job_id") == job_id})
        try:
            inputs.block_times = {b: chain.block_timestamp(b) for b in blocks}
        except ChainError as exc:
            raise AuditFailure(f"cannot date the job's blocks at {rpc_url}: {exc}") from None
    return inputs


def _json_file(path: Path) -> Any:
    """A derived JSON file, or None when absent; a malformed one is one clear line."""
    if not path.is_file():
        return None
    try:
        return parse_json(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AuditFailure(f"{path} cannot be read as JSON: {' '.join(str(exc).split())}") from None


def _json_list(path: Path) -> list[dict[str, Any]]:
    rows = _json_file(path)
    if rows is None:
        return []
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise AuditFailure(f"{path} is not a list of per-round objects")
    return rows
