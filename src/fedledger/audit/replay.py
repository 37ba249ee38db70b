"""Where the auditor's events come from: a re-executed export, or a live node.

An in-process run's `chain.json` holds every transaction's calldata. Replaying
them one by one on a fresh EVM, in their recorded blocks, regenerates every
event; any event in the export that differs from its re-execution has been
edited, and the re-executed events, not the exported ones, are what the
audit goes on to check. A live audit reads events straight from the node,
which is the source of truth there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedledger.audit.export_file import CHAIN_KINDS, load_export
from fedledger.chain import signing
from fedledger.chain.artifacts import load_artifact
from fedledger.chain.base import Receipt
from fedledger.chain.contracts import Coordinator, DataRegistry, Event, RewardToken, Sampler
from fedledger.chain.inprocess import InProcessChain
from fedledger.chain.optimistic import Disputes, Optimistic
from fedledger.errors import AuditFailure, FedledgerError, TransactionReverted

__all__ = ["CHAIN_KINDS", "EventSource", "Finding", "from_export", "from_live", "load_export", "reexecute"]


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
    sampler: str = ""  # where sampling jobs draw their rounds ("" in exports from before issue 15)
    optimistic: str = ""  # optimistic verification and its proofs ("" before issue 13, or not known)
    disputes: str = ""
    findings: list[Finding] = field(default_factory=list)
    transactions: int = 0


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
    sampler = Sampler(chain, addresses.get("Sampler", ""))  # "" in exports from before issue 15
    optimistic = Optimistic(chain, addresses.get("Optimistic", ""))  # "" before issue 13
    disputes = Disputes(chain, addresses.get("Disputes", ""))
    decoders = (coordinator, registry, token, sampler, optimistic, disputes)
    findings = _chain_findings(export, chain)
    replayed: list[Event] = []
    block = 0
    for tx in export["transactions"]:
        block += 1
        receipt = _replay(chain, tx, block, findings)
        if receipt is None:
            continue
        for log in receipt.logs:
            ev = next((e for e in (c.decode(log) for c in decoders) if e is not None), None)
            if ev is not None:
                replayed.append(ev)
    findings += _bytecode_findings(export)
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
        sampler=addresses.get("Sampler", ""),
        optimistic=addresses.get("Optimistic", ""),
        disputes=addresses.get("Disputes", ""),
        provenance=f"re-executed {len(export['transactions'])} transactions of the in-process chain",
        findings=findings,
        transactions=len(export["transactions"]),
    )


def _replay(chain: InProcessChain, tx: dict[str, Any], block: int, findings: list[Finding]) -> Receipt | None:
    """Re-executes one exported transaction from its signed envelope; what differs goes to `findings`."""

    def error(message: str) -> None:
        findings.append(Finding("error", "chain-export", f"transaction {tx.get('tx_hash')}", message))

    if tx["block_number"] != block:
        error(
            f"is recorded in block {tx['block_number']}, but the in-process chain mines one block per "
            f"transaction and this is transaction {block}"
        )
    raw = tx.get("raw")
    try:
        if not isinstance(raw, str) or not raw.startswith("0x"):
            raise ValueError("it carries no signed transaction ('raw')")
        signed = signing.decode(bytes.fromhex(raw[2:]))
        at = {"block_number": int(tx["block_number"]), "timestamp": int(tx["timestamp"])}
        receipt = chain.replay(signed, **at)  # decoded once: the signature is recovered here only
    except (TransactionReverted, FedledgerError, ValueError) as exc:
        error(f"does not re-execute as recorded: {exc}")
        return None
    said = {"from": tx["from"], "to": tx["to"], "input": tx["input"]}
    signed_fields = {"from": signed.sender, "to": signed.to, "input": "0x" + signed.data.hex()}
    for k, v in signed_fields.items():
        if str(said[k]).lower() != str(v).lower():
            error(f"its {k} is {_short(said[k])}, but the transaction its sender signed says {_short(v)}")
    if receipt.tx_hash != tx.get("tx_hash"):
        error(f"re-executes as {receipt.tx_hash}, the hash of the signed transaction it carries")
    if receipt.block_hash != tx.get("block_hash"):
        error(
            f"its block re-executes with hash {receipt.block_hash}, not {tx.get('block_hash')}: its block "
            "number, timestamp or an earlier block differs from what was recorded"
        )
    if receipt.contract_address != tx.get("contract_address"):
        error(f"created {receipt.contract_address}, export says {tx.get('contract_address')}")
    if receipt.gas_used != tx.get("gas_used"):
        error(f"re-executed gas {receipt.gas_used} != recorded {tx.get('gas_used')}")
    return receipt


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 80 else f"{text[:40]}…{text[-8:]} ({len(text)} characters)"


def _chain_findings(export: dict[str, Any], chain: InProcessChain) -> list[Finding]:
    """The export's description of its chain must be the in-process chain's own."""
    findings = []
    recorded = export["chain"]
    for key, want in (("description", chain.description), ("chain_id", chain.chain_id)):
        if recorded.get(key) != want:
            findings.append(
                Finding(
                    "error",
                    "chain-export",
                    "chain.json chain",
                    f"{key} is {recorded.get(key)!r}, but an in-process export's is {want!r}",
                )
            )
    return findings


#: contract name in an export -> its artifact
_ARTIFACTS = {
    "Coordinator": "coordinator",
    "DataRegistry": "data_registry",
    "RewardToken": "reward_token",
    "Sampler": "sampler",
    "Optimistic": "optimistic",
    "Disputes": "disputes",
}


def _bytecode_findings(export: dict[str, Any]) -> list[Finding]:
    """The contracts were built from the sources this fedledger ships, and deployed as built.

    `contract_sources_sha256` names the sources; if they are this version's, each deployment's
    calldata must begin with the bytecode compiled from them. A run made with other contracts
    cannot be vouched for by this version: audit it with the fedledger that made it.
    """
    recorded = export.get("contract_sources_sha256")
    ours = load_artifact("coordinator").source_hash
    if recorded != ours:
        return [
            Finding(
                "error",
                "chain-export",
                "chain.json contract_sources_sha256",
                f"is {recorded!r}, not the hash of the contract sources this fedledger ships "
                f"({ours}); audit the run with the fedledger version that made it",
            )
        ]
    created = {tx.get("contract_address"): tx for tx in export["transactions"] if tx.get("to") is None}
    findings = []
    for name, address in export["contracts"].items():
        tx = created.get(address)
        if name not in _ARTIFACTS or not address:
            continue
        code = "0x" + load_artifact(_ARTIFACTS[name]).bytecode.hex()
        if tx is None or not str(tx["input"]).startswith(code):
            findings.append(
                Finding(
                    "error",
                    "chain-export",
                    f"chain.json contracts {name}",
                    f"{address} was not deployed with the bytecode of the shipped {name} source",
                )
            )
    return findings


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
        sampler=addresses.get("Sampler", ""),
        optimistic=addresses.get("Optimistic", ""),
        disputes=addresses.get("Disputes", ""),
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
    # the sampler is found in the coordinator's storage, not a getter (`Coordinator.sampler`)
    sampler = coordinator.sampler()
    if sampler is not None:
        events += [e for e in sampler.events() if e.args.get("job_id") == job_id]
    optimistic, disputes = _optimistic_of(coordinator, events, job_id)
    if optimistic is not None and disputes is not None:
        events += [e for e in optimistic.events() if e.args.get("job_id") == job_id]
        # proofs name claim ids (job_id << 48 | round << 8 | attempt)
        events += [e for e in disputes.events() if int(e.args.get("claim_id", 0)) >> 48 == job_id]
    events.sort(key=lambda e: (e.block_number, e.log_index))
    return EventSource(
        events=events,
        job_id=job_id,
        participants=participants or {},
        coordinator=coordinator.address,
        token=token.address,
        data_registry=registry.address,
        sampler=sampler.address if sampler is not None else "",
        optimistic=optimistic.address if optimistic is not None else "",
        disputes=disputes.address if disputes is not None else "",
        provenance=f"read from {coordinator.chain.description}",
    )


def _optimistic_of(
    coordinator: Coordinator, events: list[Event], job_id: int
) -> tuple[Optimistic | None, Disputes | None]:
    """A job's optimistic contract: its one registered committee member, if that is a contract
    whose `coordinator()` is this coordinator (an optimistic job's committee is that contract)."""
    members = [str(e.args["account"]) for e in events if e.name == "Registered" and e.args.get("validator")]
    if len(members) != 1:
        return None, None
    optimistic = Optimistic(coordinator.chain, members[0])
    try:
        if str(optimistic.read("coordinator")).lower() != coordinator.address.lower():
            return None, None
        return optimistic, optimistic.disputes()
    except Exception:  # an account or another contract (the call fails or decodes nothing)
        return None, None
