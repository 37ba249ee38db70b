"""Assertions shared by the node tests; the consortium launcher is `fedledger.sim.deployment`."""

from __future__ import annotations

from pathlib import Path

from fedledger.audit.verify import AuditReport
from fedledger.chain.contracts import Phase
from fedledger.sim.deployment import Consortium, start_consortium


def assert_nothing_lost(cons: Consortium, report: AuditReport) -> None:
    """The audit passes, no trainer committed twice to a round, every stake and reward came back."""
    assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
    seen: set[tuple[str, int]] = set()
    for e in cons.events("UpdateCommitted"):
        key = (e.args["trainer"], e.args["round"])
        assert key not in seen, f"{key} committed twice"
        seen.add(key)
    state = cons.coordinator.job_state(cons.job_id)
    assert state.phase == Phase.DONE, state
    for o in cons.nodes:
        assert cons.coordinator.claimable(cons.job_id, o.address) == 0, f"org {o.index} left rewards behind"
        assert cons.coordinator.stake_of(cons.job_id, o.address) == 0, f"org {o.index} left its stake"


def cut_from_the_chain_after_round_one(tmp: Path, rounds: int) -> Consortium:
    """A consortium whose nodes reach the chain through a proxy, cut (blocked) once round 1 is
    final: the outage and subscription tests start from here and unblock it themselves."""
    cons = start_consortium(
        tmp, spec={"rounds": rounds, "commit_window_s": 120, "max_failures": 10}, rpc_proxy=True
    )
    try:
        assert cons.rpc_proxy is not None
        cons.wait_until("round 1 finalised", lambda s: s.version >= 1)
        cons.rpc_proxy.block()
    except BaseException:
        cons.stop()
        raise
    return cons
