"""An optimistic-mode job on organisations' nodes: one node lies, the others prove it, the job goes on.

Four node processes on a real anvil (whose clock is the wall clock, so the windows are real
seconds). The sponsor delegates the job to optimistic.vy as it creates it; each node bonds
itself. The nodes are started one at a time, each once the one before has bonded, so the
proposers' order is 1..4 and round 1's drawn proposer is known before any node starts: that
one runs with the `lying-proposer` testing fault. Its claim must be struck within its window,
its bond slashed, no finalised round may carry its aggregate, and the job must complete.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak

from fedledger.chain.contracts import Phase
from fedledger.chain.optimistic import Optimistic
from fedledger.cli.main import main
from fedledger.roles.optimistic import Posted
from fedledger.sim.deployment import start_consortium

pytestmark = pytest.mark.anvil

ROUNDS = 3
WINDOW = 5  # challenge_window_s: real seconds
SPEC = {
    "rounds": ROUNDS,
    "verification": "optimistic",
    "quorum": 2,  # an escalation's vote: the committee of 4 without the two parties
    "min_commits": 4,  # round 1 waits for every node, however slowly they start
    "commit_window_s": 240,
    "aggregate_window_s": 60,
    "challenge_window_s": WINDOW,
    "proposal_window_s": 20,
}


def drawn_index(job: int, round: int, attempt: int, model: bytes, proposers: int) -> int:
    """optimistic.vy's `_drawn`: keccak(job, round, attempt, global model) mod proposers."""
    h = keccak(encode(["uint256", "uint32", "uint256", "bytes32"], [job, round, attempt, model]))
    return int.from_bytes(h, "big") % proposers


def test_lying_proposer_struck_within_its_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cons = start_consortium(
        tmp_path,
        orgs=4,
        spec=SPEC,
        start_nodes=False,
        node_options={"recheck_seconds": 0.5, "availability_wait_s": 10},
    )
    try:
        job = cons.job_id
        optimistic = cons.net.deployment.optimistic
        assert isinstance(optimistic, Optimistic)
        initial = cons.coordinator.global_model(job)
        liar = cons.orgs[drawn_index(job, 1, 0, initial, len(cons.orgs))]
        with liar.config.open("a") as f:
            f.write('testing_fault = "lying-proposer"\n')
        bond = cons.spec.proposer_bond
        for org in cons.orgs:  # bond order = start order: the draw above holds
            cons.start(org)
            cons.wait_until(
                f"org {org.index} bonded",
                lambda _, a=org.address: optimistic.bond_of(job, a) >= bond,
                timeout=150,
            )
        assert [p.lower() for p in optimistic.proposers(job)] == [o.address.lower() for o in cons.orgs]
        cons.wait_done(timeout=300)
        state = cons.coordinator.job_state(job)
        assert state.phase == Phase.DONE and state.version == ROUNDS, cons.logs()

        events = [e for e in optimistic.events() if e.args.get("job_id") == job]
        posted = {
            (p.round, p.attempt): p for p in (Posted.of(e) for e in events if e.name == "ProposalPosted")
        }
        lied = posted[(1, 0)]
        assert lied.proposer.lower() == liar.address.lower(), (lied.proposer, liar.address)
        struck = [e for e in events if e.name == "ProposalStruck"]
        assert len(struck) == 1, struck
        (s,) = struck
        assert (s.args["round"], s.args["attempt"]) == (1, 0)
        assert s.args["proposer"].lower() == liar.address.lower()
        assert s.args["slashed"] == bond and s.args["by"].lower() != liar.address.lower()
        # within one window: the contract refuses a proof after final_at, and it came before
        assert cons.net.chain.block_timestamp(s.block_number) <= lied.final_at
        assert optimistic.bond_of(job, liar.address) == 0
        assert "TESTING FAULT" in liar.log.read_text()

        finalized = cons.events("RoundFinalized")
        assert sorted(e.args["round"] for e in finalized) == list(range(1, ROUNDS + 1))
        assert all(e.args["aggregate"] != lied.claim.aggregate_root for e in finalized)
        settled = {e.args["round"]: e.args["aggregate"] for e in events if e.name == "ProposalSettled"}
        assert settled == {e.args["round"]: e.args["aggregate"] for e in finalized}
        # round 1 went to a second attempt, by an honest node, which settled it
        assert posted[(1, 1)].proposer.lower() != liar.address.lower()

        # every node took its bond back, the prover its bounty too; the sponsor is owed the rest
        # of the slashed bond and its stake for the contract, which a node released at the end
        token = cons.net.deployment.token.address
        for o in cons.orgs:
            assert optimistic.bond_of(job, o.address) == 0
            assert optimistic.owed(token, o.address) == 0
        bounty = s.args["bounty"]
        assert bounty == bond * cons.spec.bounty_bps // 10_000 > 0
        paid = {e.args["account"].lower(): e.args["amount"] for e in optimistic.events() if e.name == "Paid"}
        assert paid[s.args["by"].lower()] == bond + bounty
        assert liar.address.lower() not in paid
        sponsor = cons.net.accounts[0].address
        assert optimistic.owed(token, sponsor) == bond - bounty + cons.spec.stake
        # the live audit re-derives every finalised model from the stores
        assert main(["audit", *cons.audit_args()]) == 0, capsys.readouterr().out
        assert "AUDIT PASSED" in capsys.readouterr().out
    finally:
        cons.stop()
