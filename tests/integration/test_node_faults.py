"""The fault matrix: nodes killed, restarted, cut off from the chain or from a blob server.

Every test runs real node processes on anvil and ends with a live audit that finds nothing
lost: every finalised model re-derived, no double commit, every reward and stake withdrawn.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from consortium_harness import assert_nothing_lost, cut_from_the_chain_after_round_one

from fedledger.chain.contracts import Phase
from fedledger.sim.deployment import start_consortium

pytestmark = pytest.mark.anvil

#: short windows so a round missing a trainer closes in seconds; anvil's clock is the wall clock
FAST = {"commit_window_s": 12, "aggregate_window_s": 30, "rounds": 8, "max_failures": 10}


def test_killed_trainer_and_validator_then_restart_catches_up(tmp_path: Path) -> None:
    """Org 4 (trainer and validator) dies: its round finalises with the other three trainers and
    the remaining quorum of three validators; restarted, it resumes from the chain and commits
    again with no double commit."""
    cons = start_consortium(tmp_path, spec=FAST)
    try:
        victim = cons.orgs[3]

        # a node that starts slowly may join late (a round closes early once every trainer
        # registered so far has committed): kill it only once it has been in a finalised round
        def victim_in_a_finalised_round(_: object) -> bool:
            commits = cons.commits_by_round()
            return any(
                victim.address in commits.get(e.args["round"], []) for e in cons.events("RoundFinalized")
            )

        cons.wait_until("a round finalised with org 4", victim_in_a_finalised_round, timeout=150)
        cons.kill(victim)
        killed_at = cons.coordinator.job_state(cons.job_id).round
        # it may have committed to the open round just before it died
        last_commit = max(r for r, ts in cons.commits_by_round().items() if victim.address in ts)

        def rounds_without_victim() -> list[int]:
            commits = cons.commits_by_round()
            return [
                e.args["round"]
                for e in cons.events("RoundFinalized")
                if e.args["round"] >= killed_at
                and e.args["round"] > last_commit
                and victim.address not in commits.get(e.args["round"], [])
            ]

        # restart as soon as a round has been decided without it: a cold start (loading torch
        # and the data) takes seconds, and the job must have rounds left to catch up on
        s = cons.wait_until(
            "a round finalised without org 4", lambda _: bool(rounds_without_victim()), timeout=150
        )
        assert s.phase in (Phase.OPEN, Phase.AGGREGATING)
        cons.start(victim)
        cons.wait_done(timeout=180)
        commits = cons.commits_by_round()
        proposers: dict[int, set[str]] = {}
        for e in cons.events("AggregateProposed"):
            proposers.setdefault(e.args["round"], set()).add(e.args["validator"])
        without = rounds_without_victim()
        assert without, f"no round finalised without the killed trainer: {commits}"
        # finalised by the quorum of the three live validators alone
        assert any(victim.address not in proposers[r] and len(proposers[r]) >= 3 for r in without)
        # after the restart it caught up: it committed again, at most once a round
        rejoined = [r for r, ts in commits.items() if victim.address in ts and r > max(without)]
        assert rejoined, f"the restarted node never committed again: {commits}\n{cons.logs()}"
        assert_nothing_lost(cons, cons.audit())
    finally:
        cons.stop()


def test_rpc_outage_of_30_seconds_is_ridden_out(tmp_path: Path) -> None:
    """The chain's endpoint refuses every connection for 30 s mid-job: nodes back off, retry and finish."""
    cons = cut_from_the_chain_after_round_one(tmp_path, rounds=4)
    try:
        assert cons.rpc_proxy is not None
        t0 = time.monotonic()
        time.sleep(30)
        at_unblock = cons.coordinator.job_state(cons.job_id)  # read directly, not through the proxy
        cons.rpc_proxy.unblock()
        assert time.monotonic() - t0 >= 30
        # the outage fell in the middle of the job: nothing could move while the nodes were cut off
        assert at_unblock.phase not in (Phase.DONE, Phase.ABORTED), at_unblock
        cons.wait_done(timeout=180)
        # a node either saw requests refused (and logged it) or had one held open until the
        # endpoint came back; either way every node finished the job
        assert cons.coordinator.job_state(cons.job_id).version == 4
        assert_nothing_lost(cons, cons.audit())
    finally:
        cons.stop()


def test_blob_server_down_is_a_data_availability_fault(tmp_path: Path) -> None:
    """Org 4's blob server is unreachable to the others for its first round: after waiting, the other
    validators exclude its committed update as unavailable, the quorum finalises without it and
    the contract flags it; once the server is back, org 4 is in again. The audit, which can read
    the blob now, reports the exclusion as a data-availability fault rather than an error."""
    cons = start_consortium(
        tmp_path,
        spec={"rounds": 5, "max_flags": 0},
        store_proxies=True,
        node_options={"availability_wait_s": 3},
        start_nodes=False,
    )
    try:
        down = cons.orgs[3]
        assert down.proxy is not None
        down.proxy.block()
        for o in cons.orgs:
            cons.start(o)

        # a node that starts slowly may miss round 1 (it closes early once every trainer
        # registered so far has committed): the fault is the first round org 4 committed to
        def first_commit() -> int | None:
            rounds = [r for r, ts in cons.commits_by_round().items() if down.address in ts]
            return min(rounds) if rounds else None

        cons.wait_until("org 4 committed", lambda _: first_commit() is not None, timeout=150)
        faulty = first_commit()
        assert faulty is not None
        cons.wait_until(
            f"round {faulty} decided", lambda s: s.round > faulty or s.phase == Phase.DONE, timeout=120
        )
        down.proxy.unblock()
        cons.wait_done(timeout=180)
        assert cons.coordinator.job_state(cons.job_id).version == 5
        excluded = [(e.args["round"], e.args["trainer"]) for e in cons.events("UpdateExcluded")]
        assert (faulty, down.address) in excluded, excluded
        slashed = [(e.args["round"], e.args["trainer"]) for e in cons.events("TrainerSlashed")]
        assert (faulty, down.address) in slashed
        assert "data-availability fault" in cons.logs()
        # back in once its server is reachable again
        commits = cons.commits_by_round()
        accepted_later = [
            r
            for r, ts in commits.items()
            if r > faulty and down.address in ts and (r, down.address) not in excluded
        ]
        assert accepted_later, (excluded, commits)
        report = cons.audit()
        assert any(f.check == "availability" and f.round == faulty for f in report.findings), report.findings
        assert_nothing_lost(cons, report)
    finally:
        cons.stop()


def test_confirmations_on_a_chain_that_mines_blocks_on_its_own(tmp_path: Path) -> None:
    """With blocks every second and `confirmations = 2`, nodes act only on state 2 blocks deep."""
    cons = start_consortium(
        tmp_path, orgs=3, spec={"rounds": 2}, block_time=1, node_options={"confirmations": 2}
    )
    try:
        cons.wait_done(timeout=180)
        assert cons.coordinator.job_state(cons.job_id).version == 2
        assert_nothing_lost(cons, cons.audit())
    finally:
        cons.stop()
