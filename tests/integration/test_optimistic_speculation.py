"""Optimistic mode's challenge window off the critical path: nodes train round r+1 during round r's window.

Four node processes on a real anvil (the windows are real seconds), every one tracing its steps
(`trace`, roles/node_trace.py). Organisations 1-3 are the bonded committee; organisation 4 only
trains (`validator = false`), so it trains ahead on the posted claim (`roles/node_speculation.py`)
where the committee trains on the aggregate it computed to check the claim. The chain opens
round r+1 only once round r's claim has stood its window, so every node's training of r+1 must
have started before round r was final, and its commit must be the update trained then. With a
lying proposer, what was trained on the struck claim must be discarded, never committed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_optimistic_nodes import SPEC, WINDOW, drawn_index

from fedledger.chain.contracts import Phase
from fedledger.chain.optimistic import Optimistic
from fedledger.codec.commitment import commitment_hex
from fedledger.roles.optimistic import Posted
from fedledger.sim.deployment import Consortium, Org, start_consortium

pytestmark = pytest.mark.anvil

ROUNDS = 3


def start_traced(
    tmp: Path, spec: dict[str, object], fault: str | None = None
) -> tuple[Consortium, Org | None]:
    """Organisations 1-3 bond in order, 4 only trains; `fault` goes to round 1's drawn proposer."""
    trace = tmp / "trace.jsonl"
    cons = start_consortium(
        tmp,
        orgs=4,
        spec=spec,
        start_nodes=False,
        node_options={"recheck_seconds": 0.5, "availability_wait_s": 10, "trace": str(trace)},
    )
    try:
        job, optimistic = cons.job_id, cons.net.deployment.optimistic
        assert isinstance(optimistic, Optimistic)
        committee, trainer = cons.orgs[:3], cons.orgs[3]
        with trainer.config.open("a") as f:
            f.write("validator = false\n")
        faulty = None
        if fault is not None:
            initial = cons.coordinator.global_model(job)
            faulty = committee[drawn_index(job, 1, 0, initial, len(committee))]
            with faulty.config.open("a") as f:
                f.write(f'testing_fault = "{fault}"\n')
        for org in committee:
            cons.start(org)
            cons.wait_until(
                f"org {org.index} bonded",
                lambda _, a=org.address: optimistic.bond_of(job, a) >= cons.spec.proposer_bond,
                timeout=150,
            )
        cons.start(trainer)
        assert [p.lower() for p in optimistic.proposers(job)] == [o.address.lower() for o in committee]
    except BaseException:
        cons.stop()
        raise
    return cons, faulty


def steps(cons: Consortium) -> list[dict[str, Any]]:
    path = cons.orgs[0].config.parent / "trace.jsonl"
    trace = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return sorted(trace, key=lambda x: x["t"])


def finalised(cons: Consortium) -> dict[int, tuple[float, str]]:
    """Per round: the block time of its `RoundFinalized` and the model it finalised."""
    chain = cons.net.chain
    return {
        e.args["round"]: (chain.block_timestamp(e.block_number), commitment_hex(e.args["aggregate"]))
        for e in cons.events("RoundFinalized")
    }


def test_training_of_the_next_round_starts_inside_the_window(tmp_path: Path) -> None:
    cons, _ = start_traced(tmp_path, {**SPEC, "rounds": ROUNDS})
    try:
        cons.wait_done(timeout=300)
        assert cons.coordinator.job_state(cons.job_id).phase == Phase.DONE, cons.logs()
        final = finalised(cons)
        trace = steps(cons)
        assert sorted(final) == list(range(1, ROUNDS + 1))
        for org in cons.orgs:
            mine = [x for x in trace if x["node"].lower() == org.address.lower()]
            for r in range(2, ROUNDS + 1):
                done_at, model = final[r - 1]
                spec = [x for x in mine if x["step"] == "spec_start" and x["round"] == r]
                # started on round r-1's final model while its window was still running: a block
                # time is a whole second, and the window is WINDOW of them
                assert spec and spec[0]["on"] == model, (org.index, r, spec, model)
                assert spec[0]["t"] < done_at, (org.index, r, spec[0]["t"], done_at)
                # and what it committed is that update: it never trained again once r opened
                assert [x["step"] for x in mine if x["round"] == r and x["step"] == "train_start"] == []
                assert any(x["step"] == "committed" and x["round"] == r for x in mine), (org.index, r)
            assert not [x for x in mine if x["step"] == "spec_discarded" and x["round"] <= ROUNDS]
        assert WINDOW >= 3  # the window the spec_start checks above leave room in
    finally:
        cons.stop()


def test_nothing_trained_on_a_struck_claim_is_committed(tmp_path: Path) -> None:
    cons, liar = start_traced(tmp_path, {**SPEC, "rounds": 2}, fault="lying-proposer")
    try:
        assert liar is not None
        cons.wait_done(timeout=300)
        job = cons.job_id
        assert cons.coordinator.job_state(job).phase == Phase.DONE, cons.logs()
        optimistic = cons.net.deployment.optimistic
        assert isinstance(optimistic, Optimistic)
        events = [e for e in optimistic.events() if e.args.get("job_id") == job]
        lie = Posted.of(next(e for e in events if e.name == "ProposalPosted"))
        assert lie.proposer.lower() == liar.address.lower()
        assert [e.args["round"] for e in events if e.name == "ProposalStruck"] == [1]
        lied, honest = commitment_hex(lie.claim.aggregate_root), finalised(cons)[1][1]
        assert lied != honest
        trace = steps(cons)
        trainer = cons.orgs[3]
        mine = [x for x in trace if x["node"].lower() == trainer.address.lower() and x["round"] == 2]
        # the trainer off the committee trained round 2 on the lie while it was the live claim,
        # threw that update away once the claim was struck, and trained on the honest model
        kinds = [(x["step"], x.get("on")) for x in mine]
        assert ("spec_start", lied) in kinds, kinds
        assert ("spec_discarded", lied) in kinds, kinds
        assert kinds.index(("spec_discarded", lied)) > kinds.index(("spec_start", lied))
        committed = kinds.index(("committed", None))
        trained_on = [on for step, on in kinds[:committed] if step in ("spec_start", "train_start")]
        assert trained_on[-1] == honest, kinds
        # every node's round-2 update was trained on the honest model (the committee on its own
        # computation; the liar computed the honest round before forging its claim)
        for org in cons.orgs:
            theirs = [x for x in trace if x["node"].lower() == org.address.lower() and x["round"] == 2]
            at = next(i for i, x in enumerate(theirs) if x["step"] == "committed")
            starts = [x["on"] for x in theirs[:at] if x["step"] in ("spec_start", "train_start")]
            assert starts and starts[-1] == honest, (org.index, theirs)
        assert len(cons.events("UpdateCommitted")) == 8
    finally:
        cons.stop()
