"""A node given bad input says what is wrong and how to fix it in one line, and exits 2 (and the
valid counterpart of one refusal: a validator-only committee member registers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from fedledger.chain.anvil import free_port
from fedledger.chain.base import dev_accounts
from fedledger.codec.blob import encode_tensors
from fedledger.roles.devnet import Devnet, start_devnet
from fedledger.roles.node import Node, NodeConfig
from fedledger.roles.sponsor import create_job
from fedledger.spec import JobSpec
from fedledger.store.local import LocalStore

pytestmark = pytest.mark.anvil

SPEC = {"name": "errors", "dataset": "digits", "model": "logreg", "trainers": 2, "rounds": 1, "stake": 10}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Devnet, Path, int, int]]:
    """A devnet with an open job (1) and a job (2) whose allowlist leaves dev:2 out."""
    tmp = tmp_path_factory.mktemp("node-errors")
    net = start_devnet(accounts=4)
    try:
        spec = JobSpec.from_dict(SPEC)
        (tmp / "job.json").write_text(json.dumps(spec.model_dump(mode="json")))
        initial = LocalStore(tmp / "blobs").put(encode_tensors({}, metadata={"kind": "model"}))
        members = [a.address for a in net.accounts[1:3]]
        common = dict(deployment=net.deployment, sponsor=net.accounts[0], spec=spec, initial_model=initial)
        open_job, _ = create_job(**common, committee=members)  # type: ignore[arg-type]
        closed_job, _ = create_job(  # type: ignore[arg-type]
            **common, committee=members, allowlist=[net.accounts[1].address]
        )
        yield net, tmp, open_job, closed_job
    finally:
        net.stop()


def run_node(tmp: Path, net: Devnet, job: int, env: dict[str, str] | None = None, **fields: object) -> str:
    cfg = {
        "rpc": net.node.url,
        "coordinator": net.deployment.coordinator.address,
        "job": job,
        "key": "dev:2",
        "spec": str(tmp / "job.json"),
        "organisation": 2,
        "store": str(tmp / "blobs"),
        **fields,
    }
    path = tmp / "node.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg.items()))
    proc = subprocess.run(
        [sys.executable, "-m", "fedledger.cli.main", "node", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_the_token_address_is_not_a_coordinator(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, job, _ = world
    line = run_node(tmp, net, job, coordinator=net.deployment.token.address)
    assert "is not a fedledger coordinator" in line


def test_an_address_with_no_contract(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, job, _ = world
    line = run_node(tmp, net, job, coordinator="0x" + "12" * 20)
    assert "no contract at 0x1212" in line and "wrong address or wrong chain?" in line


def test_the_wrong_chain_id(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, job, _ = world
    line = run_node(tmp, net, job, chain_id=1)
    assert "serves chain id 31337, but the config expects 1" in line


def test_an_unreachable_node(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, job, _ = world
    line = run_node(tmp, net, job, rpc=f"http://127.0.0.1:{free_port()}")
    assert "cannot reach the EVM node" in line


def test_a_locked_keystore(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, job, _ = world
    keystore = tmp / "key.json"
    keystore.write_text(json.dumps(Account.encrypt(dev_accounts(3)[2].key, "right horse")))
    env = {k: v for k, v in os.environ.items() if k != "FEDLEDGER_PASSPHRASE"}
    os.environ.pop("FEDLEDGER_PASSPHRASE", None)
    line = run_node(tmp, net, job, key=str(keystore), env=env)
    assert "is locked and there is no terminal to ask: set $FEDLEDGER_PASSPHRASE" in line
    line = run_node(tmp, net, job, key=str(keystore), env={"FEDLEDGER_PASSPHRASE": "wrong"})
    assert "did not unlock: wrong passphrase" in line


def test_a_job_the_key_may_not_join(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, _, closed = world
    line = run_node(tmp, net, closed)
    assert f"cannot join job {closed}: coordinator: not on allowlist" in line


def test_a_job_that_does_not_exist(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, _, _ = world
    assert "job 99 does not exist" in run_node(tmp, net, 99)


def test_an_unreachable_own_store(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, job, _ = world
    line = run_node(tmp, net, job, store=f"http://127.0.0.1:{free_port()}")
    assert "own store is unusable" in line and "store serve" in line


def test_a_validator_only_node_off_the_committee(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, job, _ = world
    line = run_node(tmp, net, job, key="dev:3", trainer=False)
    assert "is not on job 1's validator committee and the config says `trainer = false`" in line


def test_a_node_with_no_organisation(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, job, _ = world
    line = run_node(tmp, net, job, organisation=0)
    assert "organisation: missing: give this node's share of the data split, 1..2" in line


def test_a_root_node_on_a_job_that_is_not_fltrust(world: tuple[Devnet, Path, int, int]) -> None:
    net, tmp, job, _ = world
    line = run_node(tmp, net, job, root=True)
    assert f"only an FLTrust job has a root update; job {job} aggregates with fedavg" in line


def test_a_validator_only_committee_member_registers(world: tuple[Devnet, Path, int, int]) -> None:
    """The counterpart of the refusal above: `trainer = false` with a committee member's key
    registers (and stakes) as a validator only."""
    net, tmp, job, _ = world
    path = tmp / "validator.toml"
    path.write_text(
        f'rpc = "{net.node.url}"\ncoordinator = "{net.deployment.coordinator.address}"\njob = {job}\n'
        f'key = "dev:1"\nspec = "{tmp / "job.json"}"\norganisation = 1\nstore = "{tmp / "blobs"}"\n'
        "trainer = false\n"
    )
    node = Node(NodeConfig.load(path))
    node.ensure_registered()
    me = net.accounts[1].address
    assert net.deployment.coordinator.is_validator(job, me)
    assert not net.deployment.coordinator.trainer_state(job, me).registered
    assert net.deployment.coordinator.stake_of(job, me) == 10
    assert not node.trains
