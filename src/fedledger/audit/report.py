"""The audit's report, and the state its checks share while they walk the job.

`AuditReport` is what the audit hands back (and `fedledger audit --json` prints).
`AuditState` is passed to every check module (rounds, penalties, payouts): the trusted
events and the store, the report they write findings to, and the books they keep.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedledger.audit.replay import EventSource, Finding
from fedledger.audit.scores import SettledRound
from fedledger.chain.contracts import Event
from fedledger.codec.blob import decode_tensors
from fedledger.codec.commitment import commitment_hex
from fedledger.errors import (
    BlobIntegrityError,
    BlobNotFound,
    BlobSealed,
    CodecError,
    DatasetError,
    ReadRefused,
    SpecError,
    StoreError,
)
from fedledger.roles.scorer import RoundScorer, scorer_for
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore
from fedledger.store.sealed import OpeningStore


@dataclass
class LineageEntry:
    """One model version and what made it."""

    version: int
    round: int
    commitment: str
    parent: str
    contributors: list[dict[str, Any]]
    excluded: list[dict[str, Any]]


@dataclass
class AuditReport:
    job_id: int
    provenance: str
    checks: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    findings: list[Finding] = field(default_factory=list)
    lineage: list[LineageEntry] = field(default_factory=list)
    payouts: dict[str, dict[str, str]] = field(default_factory=dict)
    #: differential privacy: ε the chain recorded (PrivacySpent), re-derived by the audit
    privacy: dict[str, Any] = field(default_factory=dict)
    #: own data: each committer's data commitment (organisation, root, rows, schema hash, block)
    data: list[dict[str, Any]] = field(default_factory=list)
    #: the code every party ran: model, Flower client and their digest, as the spec binds them
    code: dict[str, Any] = field(default_factory=dict)
    #: files of the run directory that no check reads (run.log, accuracy.png, private/ …)
    not_covered: list[str] = field(default_factory=list)

    def record(
        self,
        severity: str,
        check: str,
        artefact: str = "",
        message: str = "",
        *,
        round: int | None = None,
        org: str | None = None,
    ) -> None:
        """One outcome from a check module: `passed`, `warning` or `error`."""
        if severity == "passed":
            self.checks[check] += 1
        else:
            self.findings.append(Finding(severity, check, artefact, message, round, org))

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "ok": self.ok,
            "provenance": self.provenance,
            "checks": dict(self.checks),
            "findings": [f.__dict__ for f in self.findings],
            "lineage": [e.__dict__ for e in self.lineage],
            "payouts": self.payouts,
            "privacy": self.privacy,
            "data": self.data,
            "code": self.code,
            "not_covered": self.not_covered,
        }


class AuditState:
    """What the checks share while the audit walks a job: its inputs, the report, and the books.

    The books are what later checks depend on earlier ones for: stake left after each slash
    (slash caps, stakes returned), flags so far (ejection), each round's settled scores
    (payouts), and own-data commitments (lineage).
    """

    def __init__(self, source: EventSource, spec: JobSpec, store: BlobStore) -> None:
        self.src = source
        self.spec = spec
        self.store = store
        self.names = source.participants
        self.report = AuditReport(
            job_id=source.job_id, provenance=source.provenance, findings=list(source.findings)
        )
        self.sponsor = ""  # FLTrust's root trainer; set from JobCreated
        self.stakes: dict[str, int] = {}  # stake each account holds after slashes so far
        self.slashed_total = 0
        self.flag_counts: dict[str, int] = defaultdict(int)
        self.events: list[Event] = []
        self.settled: dict[int, SettledRound] = {}  # scored jobs: consensus per finalised round
        self.data_commitments: dict[str, dict[str, Any]] = {}  # own data: by trainer, lower case
        self.scorer: RoundScorer | None = None
        #: each recomputed round's outcome and the model it started from (optimistic mode's claims)
        self.outcomes: dict[int, tuple[Any, bytes]] = {}
        if spec.scored:
            try:
                self.scorer = scorer_for(spec)
            except (SpecError, DatasetError) as exc:
                self.warn("scores", "validation set", f"cannot re-score the rounds: {exc}")

    def name(self, address: str) -> str:
        return self.names.get(address, address)

    @property
    def keyless(self) -> bool:
        """Whether this audit holds no reader key (`audit` without --key): sealed reads are not its."""
        return not (isinstance(self.store, OpeningStore) and self.store.key is not None)

    def sealed_updates(self, commits: list[Any]) -> int:
        """How many of a round's updates this keyless audit may not read (sealed, or refused to it).

        Only a job with readers seals updates. An audit holding a reader's key reads them all:
        it probes nothing, and an update refused or unopenable to it is an error of the round.
        """
        if not self.spec.readers or not self.keyless:
            return 0
        hidden = 0
        for cm in commits:
            try:
                self.store.get(cm.commitment)
            except (BlobSealed, ReadRefused):
                hidden += 1
            except StoreError:
                pass  # missing or altered: the round's recomputation reports it
        return hidden

    def error(self, check: str, artefact: str, message: str, **where: Any) -> None:
        self._find("error", check, artefact, message, **where)

    def warn(self, check: str, artefact: str, message: str, **where: Any) -> None:
        self._find("warning", check, artefact, message, **where)

    def _find(
        self,
        severity: str,
        check: str,
        artefact: str,
        message: str,
        *,
        round: int | None = None,
        org: str | None = None,
    ) -> None:
        self.report.findings.append(Finding(severity, check, artefact, message, round, org))

    def passed(self, check: str) -> None:
        self.report.checks[check] += 1

    def record(self, severity: str, check: str, artefact: str = "", message: str = "", **where: Any) -> None:
        """One outcome from a check module: `passed`, `warning` or `error`."""
        self.report.record(severity, check, artefact, message, **where)

    def load_model(self, commitment: bytes, what: str, round: int | None) -> dict[str, np.ndarray] | None:
        artefact = f"{what} blob {commitment_hex(commitment)}"
        try:
            model = decode_tensors(self.store.get(commitment))
        except BlobNotFound:
            self.error("blob", artefact, "missing from the store", round=round)
            return None
        except BlobIntegrityError:
            self.error("blob", artefact, "fails its hash: the stored bytes were altered", round=round)
            return None
        except ReadRefused as exc:
            if not self.keyless:
                self.error("blob", artefact, f"refused to this reader: {exc}", round=round)
            else:  # blob servers serve global models to the job's parties and readers only
                self.warn("readers", artefact, f"not readable to this audit (no key): {exc}", round=round)
            return None
        except (CodecError, StoreError) as exc:
            self.error("blob", artefact, f"unreadable: {exc}", round=round)
            return None
        self.passed("blob")
        return model
