"""Assertions shared by the node tests; the consortium launcher is `fedledger.sim.deployment`."""

from __future__ import annotations

from fedledger.audit.verify import AuditReport
from fedledger.chain.contracts import Phase
from fedledger.sim.deployment import Consortium


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
