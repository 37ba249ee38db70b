"""devnet, job create/status/list and store serve against a real anvil node, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedledger.chain.base import dev_accounts

pytestmark = pytest.mark.anvil


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedledger.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_devnet_then_create_and_inspect_a_job(tmp_path: Path) -> None:
    from fedledger.chain.anvil import free_port

    port = free_port()
    out = tmp_path / "devnet.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedledger.cli.main",
            "devnet",
            "--port",
            str(port),
            "--accounts",
            "6",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        info = json.loads(out.read_text())
        assert info["chain_id"] == 31337 and len(info["accounts"]) == 6
        spec = tmp_path / "job.json"
        spec.write_text(
            json.dumps(
                {
                    "dataset": "digits",
                    "model": "logreg",
                    "trainers": 4,
                    "validators": 3,
                    "rounds": 2,
                    "stake": 10,
                    "reward_per_round": 1000,
                }
            )
        )
        committee = [a.address for a in dev_accounts(4)[1:4]]
        args = [
            "job",
            "create",
            "--rpc",
            info["rpc"],
            "--coordinator",
            info["coordinator"],
            "--token",
            info["token"],
            "--spec",
            str(spec),
            "--key",
            "dev:0",
            "--store",
            str(tmp_path / "blobs"),
        ]
        for c in committee:
            args += ["--committee", c]
        created = cli(*args)
        assert created.returncode == 0, created.stderr
        assert "job 1 created by" in created.stdout
        assert len(list((tmp_path / "blobs").rglob("*"))) >= 1  # the initial model is stored
        status = cli(
            "job", "status", "--rpc", info["rpc"], "--coordinator", info["coordinator"], "--job", "1"
        )
        assert status.returncode == 0, status.stderr
        assert "job 1: OPEN, round 1, model version 0 of 2" in status.stdout
        listed = cli("job", "list", "--rpc", info["rpc"], "--coordinator", info["coordinator"])
        assert "OPEN" in listed.stdout and listed.returncode == 0
        # bad input: one line each, exit 2
        wrong = cli("job", "list", "--rpc", info["rpc"], "--coordinator", info["token"][:-4] + "dead")
        assert wrong.returncode == 2 and "no contract at" in wrong.stderr and "Traceback" not in wrong.stderr
        missing = cli(
            "job", "status", "--rpc", info["rpc"], "--coordinator", info["coordinator"], "--job", "9"
        )
        assert missing.returncode == 2 and "job 9 does not exist" in missing.stderr

        # a job on the organisations' own data: the sponsor needs only the schema
        from fedledger.chain.contracts import Coordinator
        from fedledger.data.schema import Feature, TableSchema

        schema = TableSchema(
            features=(Feature(name="age"), Feature(name="ward", type="categorical", vocabulary=("a", "b"))),
            label="outcome",
            classes=("no", "yes"),
        )
        own = {"dataset": "wards", "data_schema": schema.model_dump(), "partition": "organisation",
               "model": "mlp", "trainers": 4, "validators": 3, "rounds": 2}  # fmt: skip
        spec.write_text(json.dumps(own))
        created = cli(*args)
        assert created.returncode == 0, created.stderr
        assert "job 2 created by" in created.stdout
        registry = Coordinator.connect(info["rpc"], info["coordinator"]).data_registry()
        assert registry.address == info["data_registry"]
        assert registry.coordinator() == info["coordinator"]
        # user code the spec does not approve by digest is refused before anything is sent
        spec.write_text(json.dumps({**own, "model": "json.decoder:JSONDecoder"}))
        refused = cli(*args)
        assert refused.returncode == 2 and "approves no digest" in refused.stderr, refused.stderr

        # an optimistic-mode job is delegated to the optimistic contract devnet deployed, as created
        from fedledger.chain.optimistic import Optimistic

        optimistic_spec = {"dataset": "digits", "model": "logreg", "trainers": 4, "quorum": 2, "rounds": 2,
                           "stake": 10, "verification": "optimistic"}  # fmt: skip
        spec.write_text(json.dumps(optimistic_spec))
        four = [f for a in dev_accounts(5)[1:5] for f in ("--committee", a.address)]
        plain = [a for a in args if not a.startswith("--committee") and a not in committee]
        refused = cli(*plain, *four)
        assert refused.returncode == 2 and "give --optimistic ADDRESS" in refused.stderr, refused.stderr
        created = cli(*plain, *four, "--optimistic", info["optimistic"])
        assert created.returncode == 0, created.stderr
        assert "job 3 created by" in created.stdout and info["optimistic"] in created.stdout
        optimistic = Optimistic(registry.chain, info["optimistic"])
        assert optimistic.terms(3).bond == 10**18 and optimistic.terms(3).num_params == 650
        assert [e.args["job_id"] for e in optimistic.events() if e.name == "JobDelegated"] == [3]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_keystore_unlocks_only_with_its_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from eth_account import Account

    from fedledger.errors import SpecError
    from fedledger.roles.keys import load_key

    org = dev_accounts(2)[1]
    key = tmp_path / "key.json"
    key.write_text(json.dumps(Account.encrypt(org.key, "right")))
    monkeypatch.setenv("FEDLEDGER_PASSPHRASE", "wrong")
    with pytest.raises(SpecError, match="did not unlock: wrong passphrase"):
        load_key(str(key))
    monkeypatch.setenv("FEDLEDGER_PASSPHRASE", "right")
    assert load_key(str(key)).address == org.address
    assert load_key("dev:1").address == org.address
    with pytest.raises(SpecError, match="cannot read keystore"):
        load_key(str(tmp_path / "absent.json"))
