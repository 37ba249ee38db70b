"""Where the dashboard's events come from: a finished run directory, or a live node.

Both read through the audit's own readers (`load_export`/`from_export` for `chain.json`,
the coordinator client and `from_live`'s event sources for a node), so the dashboard shows
exactly the events the audit would check. A run directory is read once and never changes;
a live source is polled for new blocks (`poll`) and folds only the new logs into its ledgers.
The audit button re-runs the full audit (`audit_run_dir`/`audit_live`): the pages present,
the audit verifies.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from fedledger.audit.export_file import load_export
from fedledger.audit.replay import from_export
from fedledger.audit.run import audit_live, audit_run_dir
from fedledger.audit.verify import AuditReport
from fedledger.chain.contracts import Coordinator
from fedledger.chain.types import Phase
from fedledger.dashboard.ledger import JobLedger
from fedledger.errors import AuditFailure, DashboardError, FedledgerError
from fedledger.spec import JobSpec


class Source(Protocol):
    """What the web app needs from a run directory or a chain."""

    description: str

    def job_ids(self) -> list[int]: ...

    def state(self, job_id: int) -> dict[str, Any]: ...

    def poll(self) -> bool: ...

    def audit(self, job_id: int) -> dict[str, Any]: ...


def _finite(value: Any) -> Any:
    """NaN/inf become null: the browser's JSON.parse rejects them (metrics.json may hold NaN)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def audit_json(report: AuditReport) -> dict[str, Any]:
    """The audit page's verdicts: one row per check (passes counted), then every finding."""
    return {
        "ok": report.ok,
        "provenance": report.provenance,
        "checks": [{"check": k, "passed": n} for k, n in sorted(report.checks.items())],
        "findings": [{"severity": f.severity, "check": f.check, "line": f.line()} for f in report.findings],
        "not_covered": list(report.not_covered),
    }


def _spec_fields(spec: JobSpec | None) -> dict[str, Any]:
    if spec is None:
        return {}
    return {k: _finite(v) for k, v in spec.model_dump(mode="json").items() if k != "data_schema"}


class RunDirSource:
    """A run directory left by `fedledger simulate`: one job, finished."""

    def __init__(self, run_dir: Path) -> None:
        if not run_dir.is_dir():
            raise DashboardError(f"{run_dir} is not a directory")
        for needed in ("spec.json", "chain.json"):
            if not (run_dir / needed).exists():
                raise DashboardError(f"{run_dir} is not a run directory: {needed} is missing")
        self.run_dir = run_dir
        self.description = f"run directory {run_dir}"
        self.spec = JobSpec.load(run_dir / "spec.json")
        source = from_export(load_export(run_dir / "chain.json"))
        self.ledger = JobLedger(source.job_id, source.participants)
        self.ledger.ingest_all(source.events)
        self.metrics = self._read_json("metrics.json", [])
        self.card = self._read_json("model_card.json", {})

    def _read_json(self, name: str, default: Any) -> Any:
        path = self.run_dir / name
        if not path.exists():
            return default
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DashboardError(f"{path} is unreadable: {exc}") from None

    def job_ids(self) -> list[int]:
        return [self.ledger.job_id]

    def _check(self, job_id: int) -> JobLedger:
        if job_id != self.ledger.job_id:
            raise DashboardError(f"{self.run_dir} holds job {self.ledger.job_id}, not job {job_id}")
        return self.ledger

    def state(self, job_id: int) -> dict[str, Any]:
        ledger = self._check(job_id)
        rounds = ledger.rounds
        last = rounds[max(rounds)] if rounds else None
        metrics = [
            {k: _finite(m.get(k)) for k in ("round", "version", "test_accuracy", "test_loss", "train_loss")}
            for m in self.metrics
            if isinstance(m, dict)
        ]
        return ledger.snapshot(
            {
                "source": self.description,
                "live": False,
                "phase": {"name": ledger.outcome.upper(), "deadline": last.deadline if last else 0},
                "spec": _spec_fields(self.spec),
                "metrics": metrics,
                "purpose": self.card.get("intended_use") if isinstance(self.card, dict) else None,
            }
        )

    def poll(self) -> bool:
        return False  # a finished run's export does not change

    def audit(self, job_id: int) -> dict[str, Any]:
        self._check(job_id)
        return audit_json(audit_run_dir(self.run_dir))


class LiveSource:
    """Every job of a coordinator on a JSON-RPC node, followed block by block."""

    def __init__(
        self,
        rpc_url: str,
        coordinator: str,
        *,
        stores: Sequence[str] = (),
        spec_path: Path | None = None,
        participants: dict[str, str] | None = None,
    ) -> None:
        self.coordinator = Coordinator.connect(rpc_url, coordinator)
        self.rpc_url, self.stores, self.spec_path = rpc_url, list(stores), spec_path
        self.spec = JobSpec.load(spec_path) if spec_path else None
        self.registry = self.coordinator.data_registry()
        self.participants = dict(participants or {})
        self.description = f"{self.coordinator.chain.description}, coordinator {coordinator}"
        self.ledgers: dict[int, JobLedger] = {}
        self.phases: dict[int, dict[str, Any]] = {}
        self.next_block = 0
        self._lock = threading.Lock()
        self.poll()

    def job_ids(self) -> list[int]:
        return sorted(self.ledgers)

    def poll(self) -> bool:
        """Folds the logs of blocks not yet seen into the ledgers; True when any job moved."""
        with self._lock:
            chain = self.coordinator.chain
            head = chain.block_number()
            if head < self.next_block:
                return False
            events = self.coordinator.events(self.next_block, head)
            events += self.registry.events(self.next_block, head) if self.registry.address else []
            events.sort(key=lambda e: (e.block_number, e.log_index))
            self.next_block = head + 1
            for e in events:
                job = e.args.get("job_id")
                if not isinstance(job, int):
                    continue
                if job not in self.ledgers:
                    self.ledgers[job] = JobLedger(job, self.participants)
                self.ledgers[job].ingest(e)
            for job, ledger in self.ledgers.items():
                ledger.block = head
                if ledger.outcome == "running" or job not in self.phases:
                    state = self.coordinator.job_state(job)
                    self.phases[job] = {"name": Phase(state.phase).name, "deadline": state.deadline}
            return bool(events)

    def state(self, job_id: int) -> dict[str, Any]:
        with self._lock:  # poll() folds events in from another thread
            return self._state(job_id)

    def _state(self, job_id: int) -> dict[str, Any]:
        ledger = self.ledgers.get(job_id)
        if ledger is None:
            raise DashboardError(f"no job {job_id} on coordinator {self.coordinator.address}")
        return ledger.snapshot(
            {
                "source": self.description,
                "live": True,
                "phase": self.phases.get(job_id, {"name": "NONE", "deadline": 0}),
                "spec": _spec_fields(self.spec),
                "metrics": [],
                "purpose": None,
            }
        )

    def audit(self, job_id: int) -> dict[str, Any]:
        if not self.stores or self.spec_path is None:
            raise DashboardError(
                "auditing a live job needs the blob stores and the spec: start with --store and --spec"
            )
        try:
            report = audit_live(
                rpc_url=self.rpc_url,
                coordinator=self.coordinator.address,
                job_id=job_id,
                store_dir=self.stores,
                spec_path=self.spec_path,
            )
        except AuditFailure:
            raise
        except FedledgerError as exc:
            raise DashboardError(f"the audit could not run: {exc}") from None
        report.not_covered = []
        return audit_json(report)
