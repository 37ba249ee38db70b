"""An optimistic-mode job on organisations' nodes: a lying or silent proposer, and the job goes on.

Four node processes on a real anvil (whose clock is the wall clock, so the windows are real
seconds). The sponsor delegates the job to optimistic.vy as it creates it; each node bonds
itself. The nodes are started one at a time, each once the one before has bonded, so the
proposers' order is 1..4 and round 1's drawn proposer is known before any node starts: that
one runs with a testing fault (node_config.py's `testing_fault`). A liar's claim must be
struck within its window, its bond slashed, no finalised round may carry its aggregate, and
the job must complete; a silent one's round must be posted by another node after its turn.
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
from fedledger.sim.deployment import Consortium, Org, start_consortium

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


def start_with_faulty_drawn(tmp: Path, spec: dict[str, object], fault: str) -> tuple[Consortium, Org]:
    """A consortium whose round-1 drawn proposer runs `fault`: (consortium, that organisation).

    The nodes start one by one, each once the one before has bonded, so the proposers' order
    is 1..4 and the draw (of the initial model, known before any node starts) holds."""
    cons = start_consortium(
        tmp,
        orgs=4,
        spec=spec,
        start_nodes=False,
        node_options={"recheck_seconds": 0.5, "availability_wait_s": 10},
    )
    try:
        job, optimistic = cons.job_id, cons.net.deployment.optimistic
        assert isinstance(optimistic, Optimistic)
        initial = cons.coordinator.global_model(job)
        faulty = cons.orgs[drawn_index(job, 1, 0, initial, len(cons.orgs))]
        with faulty.config.open("a") as f:
            f.write(f'testing_fault = "{fault}"\n')
        for org in cons.orgs:
            cons.start(org)
            cons.wait_until(
                f"org {org.index} bonded",
                lambda _, a=org.address: optimistic.bond_of(job, a) >= cons.spec.proposer_bond,
                timeout=150,
            )
        assert [p.lower() for p in optimistic.proposers(job)] == [o.address.lower() for o in cons.orgs]
    except BaseException:
        cons.stop()
        raise
    return cons, faulty


def test_lying_proposer_struck_within_its_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cons, liar = start_with_faulty_drawn(tmp_path, SPEC, "lying-proposer")
    try:
        job, bond = cons.job_id, cons.spec.proposer_bond
        optimistic = cons.net.deployment.optimistic
        assert isinstance(optimistic, Optimistic)
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


def test_silent_proposer_replaced_after_its_turn(tmp_path: Path) -> None:
    """The drawn proposer never posts: once `proposal_window_s` has passed, another bonded node
    does (sent unestimated: an estimate on the idle chain's old block would still refuse it)."""
    turn = 8
    spec = {**SPEC, "rounds": 1, "proposal_window_s": turn}
    cons, silent = start_with_faulty_drawn(tmp_path, spec, "silent-proposer")
    try:
        job = cons.job_id
        optimistic = cons.net.deployment.optimistic
        assert isinstance(optimistic, Optimistic)
        cons.wait_done(timeout=240)
        assert cons.coordinator.job_state(job).phase == Phase.DONE, cons.logs()
        events = [e for e in optimistic.events() if e.args.get("job_id") == job]
        (event,) = [e for e in events if e.name == "ProposalPosted"]
        posted = Posted.of(event)
        assert posted.attempt == 0 and posted.proposer.lower() != silent.address.lower()
        (closed,) = cons.events("CommitsClosed")
        chain = cons.net.chain
        waited = chain.block_timestamp(event.block_number) - chain.block_timestamp(closed.block_number)
        assert waited > turn, waited  # not before the drawn proposer's turn was over
        assert not [e for e in events if e.name == "ProposalStruck"]
        (settled,) = [e for e in events if e.name == "ProposalSettled"]
        (finalized,) = cons.events("RoundFinalized")
        assert settled.args["aggregate"] == finalized.args["aggregate"] == posted.claim.aggregate_root
    finally:
        cons.stop()


def test_wrong_exclusion_escalated_and_voted_down(tmp_path: Path) -> None:
    """The drawn proposer leaves an honest update out: one chunk cannot show that, so a watcher
    escalates, the two other nodes vote their own result, and the vote finalises it."""
    spec = {**SPEC, "rounds": 1}
    cons, liar = start_with_faulty_drawn(tmp_path, spec, "excluding-proposer")
    try:
        job, bond = cons.job_id, cons.spec.proposer_bond
        optimistic = cons.net.deployment.optimistic
        assert isinstance(optimistic, Optimistic)
        cons.wait_done(timeout=240)
        assert cons.coordinator.job_state(job).phase == Phase.DONE, cons.logs()
        events = [e for e in optimistic.events() if e.args.get("job_id") == job]
        (event,) = [e for e in events if e.name == "ProposalPosted"]
        posted = Posted.of(event)
        assert posted.proposer.lower() == liar.address.lower() and len(posted.excluded) == 1
        (escalated,) = [e for e in events if e.name == "RoundEscalated"]
        escalator = escalated.args["escalator"].lower()
        votes = [e for e in events if e.name == "VoteCast"]
        voters = {e.args["voter"].lower() for e in votes}
        assert len(votes) == 2 and voters.isdisjoint({escalator, liar.address.lower()})
        (decided,) = [e for e in events if e.name == "EscalationDecided"]
        assert not decided.args["upheld"] and decided.args["loser"].lower() == liar.address.lower()
        assert decided.args["slashed"] == bond and optimistic.bond_of(job, liar.address) == 0
        assert not [e for e in events if e.name in ("ProposalStruck", "ProposalSettled")]
        (finalized,) = cons.events("RoundFinalized")
        assert finalized.args["aggregate"] != posted.claim.aggregate_root
        assert finalized.args["accepted_commits"] == 4 and not cons.events("UpdateExcluded")
        # the escalator got its escalation bond back, the bounty, and its proposer bond
        paid = {e.args["account"].lower(): e.args["amount"] for e in optimistic.events() if e.name == "Paid"}
        assert paid[escalator] == 2 * bond + decided.args["bounty"]
    finally:
        cons.stop()
