"""Where the auditor's events come from: a re-executed export, or a live node.

An in-process run's `chain.json` holds every transaction's calldata. Replaying
them one by one on a fresh EVM, in their recorded blocks, regenerates every
event; any event in the export that differs from its re-execution has been
edited, and the re-executed events, not the exported ones, are what the
audit goes on to check. A live audit reads events straight from the node,
which is the source of truth there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedledger.chain.contracts import Coordinator, DataRegistry, Event, RewardToken
from fedledger.chain.export import EXPORT_FORMAT
from fedledger.chain.inprocess import InProcessChain
from fedledger.errors import AuditFailure, FedledgerError, TransactionReverted


@dataclass
class Finding:
    """One thing the audit found wrong (error) or worth knowing (warning)."""

    severity: str  # "error" | "warning"
    check: str
    artefact: str
    message: str
    round: int | None = None
    organisation: str | None = None

    def line(self) -> str:
        where = ", ".join(
            x
            for x in (
                f"round {self.round}" if self.round is not None else "",
                self.organisation or "",
                self.artefact,
            )
            if x
        )
        return f"{self.severity.upper()} [{self.check}] {where}: {self.message}"


@dataclass
class EventSource:
    """The events an audit trusts, and how it came to trust them."""

    events: list[Event]
    job_id: int
    participants: dict[str, str]
    coordinator: str
    token: str
    provenance: str
    data_registry: str = ""  # where trainers commit to their data ("" in exports from before it)
    findings: list[Finding] = field(default_factory=list)
    transactions: int = 0


#: what every exported transaction and event must hold for the audit to read it: key -> types
_TX_FIELDS: dict[str, tuple[type, ...]] = {
    "from": (str,),
    "to": (str, type(None)),
    "input": (str,),
    "block_number": (int,),
    "timestamp": (int,),
}
_EVENT_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "args": (dict,),
    "address": (str,),
    "block_number": (int,),
    "tx_hash": (str,),
    "log_index": (int,),
}
_TOP_FIELDS: dict[str, tuple[type, ...]] = {
    "chain": (dict,),
    "contracts": (dict,),
    "job_id": (int,),
    "transactions": (list,),
    "events": (list,),
}


def load_export(path: Path) -> dict[str, Any]:
    """Reads a chain export, refusing (one line naming the file and the entry) one the audit
    cannot read: not UTF-8, not JSON, or missing a key or holding a wrong type where it reads one.

    Well-formed but edited values are not refused here: re-execution finds those.
    """
    try:
        export = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuditFailure(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise AuditFailure(f"{path} is not UTF-8 (byte {exc.start}): not a chain export") from None
    except ValueError as exc:
        raise AuditFailure(f"{path} is not valid JSON ({' '.join(str(exc).split())}): truncated?") from None
    if not isinstance(export, dict) or export.get("format") != EXPORT_FORMAT:
        raise AuditFailure(f"{path} is not a fedledger chain export ({EXPORT_FORMAT})")
    _check_fields(path, "the export", export, _TOP_FIELDS)
    participants = export.get("participants", {})
    if not isinstance(participants, dict):
        raise AuditFailure(f"{path}: participants is {_kind(participants)}, not an object")
    for name in ("Coordinator", "RewardToken", "DataRegistry"):
        address = export["contracts"].get(name, "" if name == "DataRegistry" else None)
        if not isinstance(address, str):  # exports from before the data registry lack one
            raise AuditFailure(f"{path}: contracts has no {name} address")
    block_time = export["chain"].get("block_time", 1)
    if not isinstance(block_time, int) or isinstance(block_time, bool):
        raise AuditFailure(f"{path}: chain 'block_time' is {_kind(block_time)}, not an integer")
    for what, entries, fields in (
        ("transaction", export["transactions"], _TX_FIELDS),
        ("event", export["events"], _EVENT_FIELDS),
    ):
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise AuditFailure(f"{path}: {what} #{i} is {_kind(entry)}, not an object")
            _check_fields(path, f"{what} #{i}", entry, fields)
    return export


def _check_fields(path: Path, where: str, obj: dict[str, Any], fields: dict[str, tuple[type, ...]]) -> None:
    for key, types in fields.items():
        if key not in obj:
            raise AuditFailure(f"{path}: {where} has no {key!r}")
        value = obj[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            want = " or ".join("null" if t is type(None) else _TYPE_NAMES.get(t, t.__name__) for t in types)
            raise AuditFailure(f"{path}: {where} {key!r} is {_kind(value)}, not {want}")


_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list"}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")


def _label(i: int, ev: dict[str, Any]) -> str:
    return (
        f"chain.json event #{i} {ev.get('name')} (block {ev.get('block_number')}, log {ev.get('log_index')})"
    )


def reexecute(export: dict[str, Any]) -> EventSource:
    """Replays an in-process export and compares every event with its re-execution."""
    chain = InProcessChain(block_time=int(export["chain"].get("block_time", 1)))
    addresses = export["contracts"]
    coordinator = Coordinator(chain, addresses["Coordinator"])
    token = RewardToken(chain, addresses["RewardToken"])
    registry = DataRegistry(chain, addresses.get("DataRegistry", ""))
    findings: list[Finding] = []
    replayed: list[Event] = []
    for tx in export["transactions"]:
        try:
            receipt = chain.replay(
                sender=tx["from"],
                to=tx["to"],
                data=bytes.fromhex(tx["input"][2:]),
                block_number=int(tx["block_number"]),
                timestamp=int(tx["timestamp"]),
            )
        except (TransactionReverted, FedledgerError, ValueError, KeyError) as exc:
            findings.append(
                Finding(
                    "error",
                    "chain-export",
                    f"transaction {tx.get('tx_hash')}",
                    f"does not re-execute as recorded: {exc}",
                )
            )
            continue
        if receipt.contract_address != tx.get("contract_address"):
            findings.append(
                Finding(
                    "error",
                    "chain-export",
                    f"transaction {tx.get('tx_hash')}",
                    f"created {receipt.contract_address}, export says {tx.get('contract_address')}",
                )
            )
        if receipt.gas_used != tx.get("gas_used"):
            findings.append(
                Finding(
                    "error",
                    "chain-export",
                    f"transaction {tx.get('tx_hash')}",
                    f"re-executed gas {receipt.gas_used} != recorded {tx.get('gas_used')}",
                )
            )
        for log in receipt.logs:
            ev = coordinator.decode(log) or registry.decode(log) or token.decode(log)
            if ev is not None:
                replayed.append(ev)
    exported = export["events"]
    for i, (ours, theirs) in enumerate(zip(replayed, exported, strict=False)):
        mine = ours.to_json()
        if mine == theirs:
            continue
        changed = sorted(
            k
            for k in set(mine["args"]) | set(theirs.get("args", {}))
            if mine["args"].get(k) != theirs.get("args", {}).get(k)
        )
        values = ", ".join(f"{k}={mine['args'].get(k)}" for k in changed)
        placed = [
            k for k in ("name", "address", "block_number", "log_index", "tx_hash") if mine[k] != theirs.get(k)
        ]
        detail = (
            f"fields {', '.join(changed)} differ from re-execution (re-executed {values})"
            if changed
            else f"{', '.join(placed) or 'its place'} {'differs' if len(placed) == 1 else 'differ'} from "
            "re-execution (an event or transaction was added, dropped or moved before it)"
        )
        findings.append(
            Finding(
                "error",
                "chain-export",
                _label(i, theirs),
                detail,
                round=theirs.get("args", {}).get("round"),
            )
        )
    if len(replayed) != len(exported):
        findings.append(
            Finding(
                "error",
                "chain-export",
                "chain.json events",
                f"{len(exported)} events exported, {len(replayed)} re-executed",
            )
        )
    return EventSource(
        events=replayed,
        job_id=int(export["job_id"]),
        participants=dict(export.get("participants", {})),
        coordinator=addresses["Coordinator"],
        token=addresses["RewardToken"],
        data_registry=addresses.get("DataRegistry", ""),
        provenance=f"re-executed {len(export['transactions'])} transactions of the in-process chain",
        findings=findings,
        transactions=len(export["transactions"]),
    )


def from_export(export: dict[str, Any]) -> EventSource:
    """Events of an export that cannot be re-executed (a run against an RPC node)."""
    events = [
        Event(
            name=e["name"],
            args=_parse_args(e["args"]),
            address=e["address"],
            block_number=e["block_number"],
            tx_hash=e["tx_hash"],
            log_index=e["log_index"],
        )
        for e in export["events"]
    ]
    addresses = export["contracts"]
    return EventSource(
        events=events,
        job_id=int(export["job_id"]),
        participants=dict(export.get("participants", {})),
        coordinator=addresses["Coordinator"],
        token=addresses["RewardToken"],
        data_registry=addresses.get("DataRegistry", ""),
        provenance="events as exported from an RPC node (not re-executable; audit the live chain with --rpc)",
        findings=[
            Finding(
                "warning",
                "chain-export",
                "chain.json",
                "exported from an RPC node: events are checked for consistency, not re-executed",
            )
        ],
        transactions=len(export["transactions"]),
    )


def _parse_args(args: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in args.items():
        if isinstance(v, str) and v.startswith("0x") and len(v) == 66:
            out[k] = bytes.fromhex(v[2:])
        else:
            out[k] = v
    return out


def from_live(
    coordinator: Coordinator, job_id: int, participants: dict[str, str] | None = None
) -> EventSource:
    """Events of one job read from a live node."""
    config = coordinator.job_config(job_id)
    if config["sponsor"] == "0x" + "00" * 20:
        raise AuditFailure(f"job {job_id} does not exist on coordinator {coordinator.address}")
    token = RewardToken(coordinator.chain, config["token"])
    registry = coordinator.data_registry()
    events = [e for e in coordinator.events() if e.args.get("job_id") == job_id]
    events += [e for e in registry.events() if e.args.get("job_id") == job_id]
    events += token.events()
    events.sort(key=lambda e: (e.block_number, e.log_index))
    return EventSource(
        events=events,
        job_id=job_id,
        participants=participants or {},
        coordinator=coordinator.address,
        token=token.address,
        data_registry=registry.address,
        provenance=f"read from {coordinator.chain.description}",
    )
