"""The event log as EU AI Act Art. 12 asks a high-risk system to keep it.

Art. 12(1) asks for the automatic recording of events over the system's lifetime; 12(2) for
records that let one (a) identify situations that may present a risk or a substantial
modification, (b) support post-market monitoring, and (c) monitor the system's operation.
Every event the chain holds for the job is listed, with its time (the block's timestamp),
block, transaction hash and log index, and tagged with the Art. 12(2) purpose it serves:

- `risk` (12(2)(a)): exclusions, flags, slashes, ejections, failed or aborted rounds;
- `change` (12(2)(a), substantial modification): a model version finalised;
- `monitoring` (12(2)(b)): privacy spent, scores settled, reputation;
- `operation` (12(2)(c)): the job's lifecycle, registrations, commits, proposals, payments.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fedledger.audit.replay import EventSource
from fedledger.chain.contracts import jsonable

RISK = {"UpdateExcluded", "TrainerSlashed", "TrainerEjected", "ValidatorSlashed", "RoundFailed", "JobAborted"}
CHANGE = {"RoundFinalized"}
MONITORING = {"PrivacySpent", "ScoresSettled", "ReputationUpdated", "ValidatorRewarded"}
#: the address-valued arguments that name who acted
_ACTORS = ("trainer", "validator", "account", "sponsor")
_QUIET = {"job_id", "round", *_ACTORS}


def purpose(name: str) -> str:
    if name in RISK:
        return "risk"
    if name in CHANGE:
        return "change"
    return "monitoring" if name in MONITORING else "operation"


def iso(timestamp: int | None) -> str:
    return "" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(value: Any) -> str:
    text = str(jsonable(value))
    return text[:12] + "…" if text.startswith("0x") and len(text) > 14 else text


def event_log(source: EventSource, block_times: dict[int, int]) -> list[dict[str, Any]]:
    """Every event of the job in chain order, as Art. 12 records (see the module docstring)."""
    contracts = {
        source.coordinator: "Coordinator",
        source.data_registry: "DataRegistry",
        source.token: "RewardToken",
    }
    names = source.participants
    out = []
    for e in sorted(source.events, key=lambda e: (e.block_number, e.log_index)):
        if e.args.get("job_id") != source.job_id:
            continue  # token transfers and other jobs: payments show as Withdrawn
        actor = next((str(e.args[k]) for k in _ACTORS if k in e.args), "")
        at = block_times.get(e.block_number)
        out.append(
            {
                "time": iso(at),
                "timestamp": at,
                "block": e.block_number,
                "tx_hash": e.tx_hash,
                "log_index": e.log_index,
                "contract": contracts.get(e.address, e.address),
                "event": e.name,
                "purpose": purpose(e.name),
                "round": e.args.get("round"),
                "organisation": names.get(actor, actor),
                "details": ", ".join(f"{k}={_short(v)}" for k, v in e.args.items() if k not in _QUIET),
                "args": {k: jsonable(v) for k, v in e.args.items()},
            }
        )
    return out
