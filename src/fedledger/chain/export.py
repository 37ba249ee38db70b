"""Chain exports: every transaction and event of a job's contracts, as JSON.

The export is what a run directory carries instead of a node: an auditor with
no access to the original chain re-executes it (in-process runs) or checks it
for consistency (runs against an RPC node).
"""

from __future__ import annotations

from typing import Any

from fedledger.chain.artifacts import load_artifact
from fedledger.chain.base import Chain
from fedledger.chain.contracts import Contract, jsonable
from fedledger.chain.inprocess import InProcessChain
from fedledger.chain.pipelined import PipelinedChain

EXPORT_FORMAT = "fedledger-chain-export/1"


def export_chain(
    chain: Chain, contracts: list[Contract], *, job_id: int, participants: dict[str, str]
) -> dict[str, Any]:
    """Every transaction (decoded and raw) and every event of the given contracts.

    An export from the in-process chain can be re-executed transaction by
    transaction (`fedledger audit` does), so an edited event or receipt shows
    up as a difference from the re-execution.
    """
    inner = getattr(chain, "inner", chain)
    by_address = {c.address: c for c in contracts}
    names = {c.address: type(c).__name__ for c in contracts}  # Coordinator, DataRegistry, RewardToken
    transactions, events = [], []
    for r in chain.receipts():
        fn: str = "<create>"
        args: dict[str, Any] = {}
        target = by_address.get(r.to or "")
        if target is not None:
            fn, args = target.abi.decode_calldata(r.input)
        transactions.append(
            {
                "tx_hash": r.tx_hash,
                "block_number": r.block_number,
                "timestamp": r.timestamp,
                "from": r.sender,
                "to": r.to,
                "contract": names.get(r.to or "", ""),
                "function": fn,
                "args": jsonable(args),
                "input": "0x" + r.input.hex(),
                "gas_used": r.gas_used,
                "contract_address": r.contract_address,
                **({"raw": "0x" + r.raw.hex(), "block_hash": r.block_hash} if r.raw else {}),
            }
        )
        for log in r.logs:
            c = by_address.get(log.address)
            ev = c.decode(log) if c is not None else None
            if ev is not None:
                events.append(ev.to_json())
    # the pipelined chain is the in-process EVM run in a second process: the same chain
    replayable = isinstance(inner, InProcessChain | PipelinedChain)
    kind = "inprocess" if replayable else "rpc"
    chain_info: dict[str, Any] = {"kind": kind, **inner.info()}
    if isinstance(inner, InProcessChain | PipelinedChain):
        chain_info["block_time"] = inner.block_time
    return {
        "format": EXPORT_FORMAT,
        "chain": chain_info,
        "contracts": {names[a]: a for a in by_address},
        "contract_sources_sha256": load_artifact("coordinator").source_hash,
        "job_id": job_id,
        "participants": participants,
        "transactions": transactions,
        "events": events,
    }
