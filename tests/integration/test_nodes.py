"""Organisations as separate OS processes on a real anvil node: a job runs unattended, then audits."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fedledger.audit.run import audit_live
from fedledger.chain.base import dev_accounts
from fedledger.chain.contracts import Phase
from fedledger.codec.blob import encode_tensors
from fedledger.roles.model import quantize_model
from fedledger.roles.sponsor import create_job
from fedledger.roles.validator import model_metadata
from fedledger.spec import JobSpec
from fedledger.store.local import LocalStore
from fedledger.training.consortium import build_consortium
from fedledger.training.torch_client import get_weights

pytestmark = pytest.mark.anvil

SPEC = {
    "name": "nodes",
    "dataset": "digits",
    "model": "logreg",
    "trainers": 3,
    "rounds": 3,
    "partition": "iid",
    "local_epochs": 1,
    "stake": 10,
    "reward_per_round": 900,
}


def test_three_organisation_processes_complete_a_job_that_audits(tmp_path: Path) -> None:
    from fedledger.roles.devnet import start_devnet

    net = start_devnet(accounts=4)
    try:
        spec = JobSpec.from_dict(SPEC)
        spec_file = tmp_path / "job.json"
        spec_file.write_text(json.dumps(spec.model_dump(mode="json")))
        sponsor_store = LocalStore(tmp_path / "sponsor")
        c = build_consortium(spec)
        initial = sponsor_store.put(
            encode_tensors(
                quantize_model(c.names, get_weights(c.initial_model), spec.scale_bits),
                metadata=model_metadata(0, 0),
            )
        )
        orgs = dev_accounts(4)[1:]
        job_id, _ = create_job(
            deployment=net.deployment,
            sponsor=net.accounts[0],
            spec=spec,
            initial_model=initial,
            committee=[a.address for a in orgs],
        )
        stores = [tmp_path / f"org-{i}" for i in (1, 2, 3)]
        procs = []
        for i, store in enumerate(stores, start=1):
            peers = [str(tmp_path / "sponsor")] + [str(s) for s in stores if s != store]
            cfg = tmp_path / f"node-{i}.toml"
            cfg.write_text(
                f'rpc = "{net.node.url}"\ncoordinator = "{net.deployment.coordinator.address}"\n'
                f'job = {job_id}\nkey = "dev:{i}"\nspec = "{spec_file}"\norganisation = {i}\n'
                f'store = "{store}"\npeers = {json.dumps(peers)}\npoll_seconds = 0.1\n'
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "fedledger.cli.main", "node", "--config", str(cfg)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        outputs = []
        for p in procs:
            try:
                out, _ = p.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                logs = "\n---\n".join(q.communicate()[0][-1500:] for q in procs)
                pytest.fail("a node hung; the nodes' logs:\n" + logs)
            outputs.append(out)
            assert p.returncode == 0, out[-3000:]
        coord = net.deployment.coordinator
        state = coord.job_state(job_id)
        assert state.phase == Phase.DONE and state.version == 3, outputs[0][-2000:]
        assert all("rewards and stake withdrawn" in out for out in outputs)
        # the auditor gathers every organisation's blobs and audits the live chain
        merged = tmp_path / "all-blobs"
        for d in [tmp_path / "sponsor", *stores]:
            shutil.copytree(d, merged, dirs_exist_ok=True)
        report = audit_live(
            rpc_url=net.node.url,
            coordinator=coord.address,
            job_id=job_id,
            store_dir=merged,
            spec_path=spec_file,
        )
        assert report.ok, [f.line() for f in report.findings if f.severity == "error"]
        assert report.checks["aggregate"] == 3
    finally:
        net.stop()
