"""Private jobs run by node processes: secure aggregation (with a dropout) and central DP.

Each ends with a live audit, which replays the unmasked sums from the masked blobs and the
revealed shares, and re-draws the DP noise, against what the chain finalised.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from consortium_harness import assert_nothing_lost

from fedledger.chain.contracts import Phase, RewardToken
from fedledger.privacy.keys import public_key_bytes
from fedledger.roles.secure import x25519_key
from fedledger.sim.deployment import start_consortium

pytestmark = pytest.mark.anvil


def test_secure_aggregation_job_on_nodes_audits(tmp_path: Path) -> None:
    """4 nodes, privacy=secagg, 3 rounds: every organisation registers its key before the first
    commit closes the directory, every committer reveals, and the audit re-derives every sum."""
    cons = start_consortium(tmp_path, spec={"privacy": "secagg", "rounds": 3})
    try:
        cons.wait_done(timeout=240)
        state = cons.coordinator.job_state(cons.job_id)
        assert state.phase == Phase.DONE and state.version == 3, cons.logs()
        keys = {e.args["trainer"] for e in cons.events("KeyRegistered")}
        assert keys == {o.address for o in cons.orgs}, "a node committed before the others had registered"
        commits = cons.commits_by_round()
        assert all(len(ts) == 4 for ts in commits.values()), commits
        revealed: dict[int, set[str]] = {}
        for e in cons.events("SharesRevealed"):
            revealed.setdefault(e.args["round"], set()).add(e.args["trainer"])
        assert revealed == {r: set(ts) for r, ts in commits.items()}
        report = cons.audit()
        assert_nothing_lost(cons, report)
        assert report.checks["aggregate"] == 3
    finally:
        cons.stop()


def test_secure_aggregation_recovers_a_trainer_that_dropped_out(tmp_path: Path) -> None:
    """A fifth trainer registers its key and then goes silent: the round's masks include pairs
    with it, so the sum is unmasked only after the live trainers reveal their shares of its key.
    The audit replays the recovery; the silent trainer gets its stake back after the job."""
    cons = start_consortium(
        tmp_path,
        orgs=5,
        # the round waits out the window for the silent trainer; half of it is the nodes' time
        # to start and register their keys before the first commit closes the directory (five
        # node processes import torch at once: on 2 loaded cores that has taken over 20 s)
        spec={"privacy": "secagg", "rounds": 1, "commit_window_s": 60},
        node_options={"availability_wait_s": 3},
        start_nodes=False,
    )
    try:
        silent, account = cons.orgs[4], cons.net.accounts[5]
        assert account.address == silent.address
        cfg = cons.coordinator.job_config(cons.job_id)
        RewardToken(cons.coordinator.chain, cfg["token"]).approve(
            account, cons.coordinator.address, int(cfg["stake"])
        )
        key = public_key_bytes(x25519_key(bytes(account.key)))
        cons.coordinator.register_with_key(account, cons.job_id, key)
        for o in cons.orgs[:4]:
            cons.start(o)
        cons.wait_done(timeout=240)
        state = cons.coordinator.job_state(cons.job_id)
        assert state.phase == Phase.DONE and state.version == 1, cons.logs()
        keyed = {e.args["trainer"] for e in cons.events("KeyRegistered")}
        # a node slower to start than half the window joins as a validator only
        assert silent.address in keyed and len(keyed) >= 4, keyed
        commits = cons.commits_by_round()
        assert all(silent.address not in ts and set(ts) <= keyed for ts in commits.values()), commits
        (finalized,) = cons.events("RoundFinalized")
        assert finalized.args["accepted_commits"] == len(commits[finalized.args["round"]]) >= 3
        cons.coordinator.withdraw(account, cons.job_id)
        report = cons.audit()  # re-derives the sum, unmasked with the silent trainer's key shares
        assert_nothing_lost(cons, report)
        assert report.checks["aggregate"] == 1
    finally:
        cons.stop()


def test_differentially_private_job_on_nodes_records_epsilon(tmp_path: Path) -> None:
    """Central DP at ε = 8 on 4 nodes: each release's ε is on chain, rising to at most the budget."""
    cons = start_consortium(tmp_path, spec={"dp_epsilon": 8.0, "rounds": 3})
    try:
        cons.wait_done(timeout=240)
        state = cons.coordinator.job_state(cons.job_id)
        assert state.phase == Phase.DONE and state.version == 3, cons.logs()
        spent = [e.args["micro_epsilon"] for e in cons.events("PrivacySpent")]
        assert len(spent) == 3 and spent == sorted(spent) and 0 < spent[0] < spent[-1] <= 8_000_000, spent
        assert cons.coordinator.epsilon_spent(cons.job_id) == spent[-1]
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "fedledger.cli.main",
                "job",
                "status",
                "--rpc",
                cons.net.node.url,
                "--coordinator",
                cons.coordinator.address,
                "--job",
                str(cons.job_id),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert f"ε spent {spent[-1] / 1e6:.4f} (agreed by the quorum)" in status, status
        report = cons.audit()
        assert_nothing_lost(cons, report)
        assert report.checks["aggregate"] == 3
    finally:
        cons.stop()
