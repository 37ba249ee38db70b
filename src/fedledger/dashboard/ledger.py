"""The dashboard's view of one job, folded from its events one at a time.

A live page must follow new blocks without re-reading the whole log, so the view is
built incrementally: `JobLedger.ingest` takes one decoded event (the audit's `Event`,
from an export or a live node) and updates the rows the pages show. `snapshot()` is the
JSON the browser renders. Nothing here is trusted beyond display: the audit button
re-executes and verifies; this only presents what the events say.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fedledger.chain.contracts import Event

#: token amounts are 18-decimal integers; the pages show whole tokens
WEI = 10**18


def _hex(value: object) -> str:
    return "0x" + value.hex() if isinstance(value, bytes | bytearray) else str(value)


@dataclass
class RoundRow:
    """One round as the job page lists it."""

    round: int
    version: int = 0
    status: str = "open"
    model: str = ""
    deadline: int = 0
    commits: int = 0
    accepted: int = 0
    weight: int = 0
    excluded: list[str] = field(default_factory=list)
    reward: int = 0
    block: int = 0
    epsilon: float = 0.0
    updates: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class OrgRow:
    """One organisation's contributions, earnings, reputation, flags and slashes, by round."""

    address: str
    name: str
    trainer: bool = False
    validator: bool = False
    stake: int = 0
    commits: dict[int, int] = field(default_factory=dict)  # round -> examples
    excluded: list[int] = field(default_factory=list)
    slashes: list[tuple[int, int]] = field(default_factory=list)  # (round, amount)
    ejected: int = 0
    reputation: list[tuple[int, int]] = field(default_factory=list)  # (block, score in basis points)
    flags: int = 0
    paid: int = 0
    data_root: str = ""
    data_rows: int = 0


class JobLedger:
    """Rounds, organisations, privacy and lineage of job `job_id`, as its events arrive."""

    def __init__(self, job_id: int, participants: dict[str, str] | None = None) -> None:
        self.job_id = job_id
        self.names = dict(participants or {})
        self.job: dict[str, Any] = {}
        self.rounds: dict[int, RoundRow] = {}
        self.orgs: dict[str, OrgRow] = {}
        self.outcome = "running"
        self.block = 0
        self.events = 0
        self.epsilon_micro = 0
        self.trainer_epsilon: dict[str, int] = defaultdict(int)
        #: bumped by every ingested event: the stream sends a snapshot when it moved
        self.revision = 0

    def org(self, address: str) -> OrgRow:
        row = self.orgs.get(address)
        if row is None:
            name = self.names.get(address) or address[:10] + "…"
            row = self.orgs[address] = OrgRow(address=address, name=name)
        return row

    def _round(self, r: int) -> RoundRow:
        row = self.rounds.get(r)
        if row is None:
            row = self.rounds[r] = RoundRow(round=r)
        return row

    def ingest(self, e: Event) -> None:
        """Folds one event in; events of other jobs (and token transfers) only move the block."""
        self.block = max(self.block, e.block_number)
        a = e.args
        if a.get("job_id") != self.job_id:
            return
        self.events += 1
        self.revision += 1
        handler = _HANDLERS.get(e.name)
        if handler is not None:
            handler(self, a, e)

    def ingest_all(self, events: list[Event]) -> None:
        for e in events:
            self.ingest(e)

    def snapshot(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the pages render: plain JSON (integers of wei as strings, to stay exact in JS)."""
        rounds = [self.rounds[r] for r in sorted(self.rounds)]
        return {
            "job_id": self.job_id,
            "job": self.job,
            "outcome": self.outcome,
            "block": self.block,
            "events": self.events,
            "revision": self.revision,
            "rounds": [
                {
                    **{k: v for k, v in vars(r).items() if k not in ("reward", "updates")},
                    "reward": str(r.reward),
                    "reward_tokens": r.reward / WEI,
                    "updates": r.updates,
                }
                for r in rounds
            ],
            "organisations": [
                {
                    **{k: v for k, v in vars(o).items() if k not in ("stake", "paid", "commits", "slashes")},
                    "stake": str(o.stake),
                    "stake_tokens": o.stake / WEI,
                    "paid": str(o.paid),
                    "paid_tokens": o.paid / WEI,
                    "commits": {str(r): n for r, n in sorted(o.commits.items())},
                    "slashes": [[r, amount / WEI] for r, amount in o.slashes],
                }
                for o in sorted(self.orgs.values(), key=lambda o: o.name)
            ],
            "privacy": {
                "epsilon_spent": self.epsilon_micro / 1e6,
                "by_round": [[r.round, r.epsilon] for r in rounds if r.epsilon],
                "by_trainer": {self.org(t).name: m / 1e6 for t, m in sorted(self.trainer_epsilon.items())},
            },
            **(extra or {}),
        }


def _created(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    ledger.job = {
        "sponsor": str(a["sponsor"]),
        "token": str(a["token"]),
        "spec_hash": _hex(a["spec_hash"]),
        "initial_model": _hex(a["initial_model"]),
        "rounds": int(a["rounds"]),
        "quorum": int(a["quorum"]),
        "reward_pool": str(a["reward_pool"]),
        "reward_pool_tokens": int(a["reward_pool"]) / WEI,
        "created_block": e.block_number,
    }


def _registered(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    org = ledger.org(str(a["account"]))
    org.trainer, org.validator, org.stake = bool(a["trainer"]), bool(a["validator"]), int(a["stake"])


def _opened(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    row = ledger._round(int(a["round"]))
    row.version, row.deadline, row.status = int(a["version"]), int(a["deadline"]), "open"
    row.model = _hex(a["global_model"])


def _committed(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    r, trainer = int(a["round"]), str(a["trainer"])
    row = ledger._round(r)
    row.commits += 1
    row.updates.append(
        {"trainer": trainer, "commitment": _hex(a["commitment"]), "examples": a["num_examples"]}
    )
    ledger.org(trainer).commits[r] = int(a["num_examples"])


def _closed(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    row = ledger._round(int(a["round"]))
    row.status, row.deadline = "aggregating", int(a["deadline"])


def _excluded(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    r, trainer = int(a["round"]), str(a["trainer"])
    ledger._round(r).excluded.append(trainer)
    ledger.org(trainer).excluded.append(r)


def _slashed(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    org = ledger.org(str(a["trainer"]))
    org.slashes.append((int(a["round"]), int(a["amount"])))
    org.flags = max(org.flags, int(a.get("flags", 0)))


def _ejected(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    ledger.org(str(a["trainer"])).ejected = int(a["round"])


def _finalized(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    row = ledger._round(int(a["round"]))
    row.status, row.version, row.block = "finalized", int(a["version"]), e.block_number
    row.model = _hex(a["aggregate"])
    row.accepted, row.weight, row.reward = (
        int(a["accepted_commits"]),
        int(a["accepted_weight"]),
        int(a["reward"]),
    )


def _failed(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    row = ledger._round(int(a["round"]))
    row.status, row.block = f"failed: {a.get('reason', '')}", e.block_number


def _privacy(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    ledger.epsilon_micro += int(a["micro_epsilon"])
    ledger._round(int(a["round"])).epsilon = ledger.epsilon_micro / 1e6


def _trainer_privacy(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    ledger.trainer_epsilon[str(a["trainer"])] += int(a["micro_epsilon"])


def _data(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    org = ledger.org(str(a["trainer"]))
    if not org.data_root:
        org.data_root, org.data_rows = _hex(a["root"]), int(a["rows"])


def _reputation(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    org = ledger.org(str(a["account"]))
    org.reputation.append((e.block_number, int(a["score"])))
    org.flags = int(a["flags"])


def _withdrawn(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    ledger.org(str(a["account"])).paid = int(a["reward"]) + int(a["fees"]) + int(a["stake"])


def _completed(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    ledger.outcome = "completed"
    ledger.job["final_model"] = _hex(a["final_model"])


def _aborted(ledger: JobLedger, a: dict[str, Any], e: Event) -> None:
    ledger.outcome = "aborted"


_HANDLERS = {
    "JobCreated": _created,
    "Registered": _registered,
    "RoundOpened": _opened,
    "UpdateCommitted": _committed,
    "CommitsClosed": _closed,
    "UpdateExcluded": _excluded,
    "TrainerSlashed": _slashed,
    "TrainerEjected": _ejected,
    "RoundFinalized": _finalized,
    "RoundFailed": _failed,
    "PrivacySpent": _privacy,
    "TrainerPrivacySpent": _trainer_privacy,
    "DataCommitted": _data,
    "ReputationUpdated": _reputation,
    "Withdrawn": _withdrawn,
    "JobCompleted": _completed,
    "JobAborted": _aborted,
}
