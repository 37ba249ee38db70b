"""The simulation's pipeline: commits executing in a second process while the next trainer trains,
and a committee's proposals sent in a row.

It may change when the simulation waits, never what the chain records: a pipelined run's
export is byte for byte the synchronous run's, a refused commit (an ejected trainer's) is
met where the synchronous run met it, and a process that may not start processes runs the
same job in turn.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from conftest import small_spec
from daemonic_job import run_job

import fedledger.sim.simulate as simulate_mod
from fedledger.chain.inprocess import InProcessChain
from fedledger.chain.pipelined import PipelinedChain
from fedledger.sim.faults import Fault
from fedledger.sim.quorum_round import QuorumRound
from fedledger.sim.round_close import HeadStart, RoundClose
from fedledger.sim.simulate import Simulation

#: org-02 is flagged in round 1 and ejected (one flag allowed): its round-2 commit is refused
SPEC = dict(rounds=3, max_flags=1)
FAULTS = ["huge-norm@2"]


def _run(out: Path, *, synchronous: bool) -> tuple[bytes, bytes, list[str], str]:
    sim = Simulation(
        small_spec(**SPEC),
        out_dir=out,
        chain=InProcessChain() if synchronous else None,
        faults=[Fault.parse(f) for f in FAULTS],
    )
    assert isinstance(sim.chain.inner, InProcessChain if synchronous else PipelinedChain)
    result = sim.run()
    assert result.ejected == ["org-02"]
    log = (out / "run.log").read_text()
    assert "org-02: round 2: ejected from job 1" in log  # the refused commit, met in `complete`
    return (
        (out / "chain.json").read_bytes(),
        result.final_commitment,
        [m.model_commitment for m in result.rounds],
        log,
    )


def test_a_pipelined_run_records_exactly_what_a_synchronous_run_records(tmp_path: Path) -> None:
    first = _run(tmp_path / "pipelined", synchronous=False)
    again = _run(tmp_path / "again", synchronous=False)
    alone = _run(tmp_path / "synchronous", synchronous=True)
    assert first[0] == again[0] == alone[0]  # chain.json: every transaction, event, block and hash
    assert first[1:3] == again[1:3] == alone[1:3]


def test_a_daemonic_process_runs_the_same_job_in_turn(tmp_path: Path) -> None:
    spec = small_spec(rounds=1)
    # a daemonic process may not start processes (a Pool's workers are daemonic). Spawned, not
    # forked: a child forked from a process whose torch has started its OpenMP threads hangs when
    # it trains. A Process and a timeout, not a Pool: a Pool whose worker dies waits forever
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=run_job, args=(spec, out), daemon=True)
    child.start()
    try:
        chain, in_turn, commitment = out.get(timeout=600)
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
    assert chain != "error", in_turn
    assert (chain, in_turn) == ("InProcessChain", True)
    assert commitment == Simulation(spec, out_dir=tmp_path / "here").run().final_commitment


def test_a_wrong_count_of_the_deciding_proposal_changes_nothing_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committee's proposals go out in a row up to the one the count says decides the round
    (sim/quorum_round.py); where the chain has not decided there, the rest propose one by one,
    asking the chain first, and the record is the one a correct count leaves."""
    spec = small_spec(rounds=2, validators=4)
    faults = [Fault.parse("lying-validator@1")]
    right = Simulation(spec, out_dir=tmp_path / "right", faults=faults)
    right.run()
    early = QuorumRound.__init__

    def one_short(self: QuorumRound, *args: Any, **kwargs: Any) -> None:
        early(self, *args, **kwargs)
        self.quorum -= 1  # predicts the decision one proposal before the coordinator makes it

    monkeypatch.setattr(QuorumRound, "__init__", one_short)
    wrong = Simulation(spec, out_dir=tmp_path / "wrong", faults=faults)
    result = wrong.run()
    assert [m.status for m in result.rounds] == ["finalized", "finalized"]
    recorded = [(tmp_path / side / "chain.json").read_bytes() for side in ("wrong", "right")]
    assert recorded[0] == recorded[1]
    assert "undecided where the proposals' count said" in (tmp_path / "wrong" / "run.log").read_text()


def _recorded(out: Path, result: Any) -> tuple[bytes, list[str], list[float]]:
    return (
        (out / "chain.json").read_bytes(),
        [m.model_commitment for m in result.rounds],
        [m.test_accuracy for m in result.rounds],
    )


def _without_head_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulate_mod, "head_start", lambda *a, **k: None)


def _count_head_starts(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The rounds whose head start was kept, and those whose head start was thrown away."""
    seen: dict[str, list[int]] = {"kept": [], "thrown away": []}
    take = HeadStart.take

    def counted(self: HeadStart, *args: Any) -> Any:
        trained = take(self, *args)
        seen["kept" if trained is not None else "thrown away"].append(self.round)
        return trained

    monkeypatch.setattr(HeadStart, "take", counted)
    return seen


def test_a_head_start_is_the_training_the_round_would_have_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first organisation trains the next round on the predicted aggregate while the round
    closes (sim/round_close.py); kept, it leaves the record a run without head starts leaves."""
    spec = small_spec(rounds=3)
    seen = _count_head_starts(monkeypatch)
    ahead = Simulation(spec, out_dir=tmp_path / "ahead").run()
    assert seen == {"kept": [1, 2, 3], "thrown away": []}  # round 1's during the set-up
    _without_head_starts(monkeypatch)
    plain = Simulation(spec, out_dir=tmp_path / "plain").run()
    assert seen == {"kept": [1, 2, 3], "thrown away": []}  # none taken
    assert _recorded(tmp_path / "ahead", ahead) == _recorded(tmp_path / "plain", plain)


def test_a_head_start_on_a_model_the_chain_did_not_finalise_is_thrown_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong prediction costs a training, never a byte of the record: the head start is
    trained again from what the chain finalised, and the evaluation redone on it."""
    spec = small_spec(rounds=3)
    predict = RoundClose._predict

    def mistaken(self: RoundClose, aggregate: bytes | None) -> None:
        predict(self, self.global_model if aggregate is not None else None)  # the round's old model

    monkeypatch.setattr(RoundClose, "_predict", mistaken)
    seen = _count_head_starts(monkeypatch)
    wrong = Simulation(spec, out_dir=tmp_path / "wrong").run()
    assert seen == {"kept": [1], "thrown away": [2, 3]}  # round 1's was on the right model
    monkeypatch.undo()
    _without_head_starts(monkeypatch)
    plain = Simulation(spec, out_dir=tmp_path / "plain").run()
    assert _recorded(tmp_path / "wrong", wrong) == _recorded(tmp_path / "plain", plain)
