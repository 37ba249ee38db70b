"""The 4-node deployment with TLS and sealed updates (issue 18), audited live with and without a key.

Every organisation's `store serve` runs with a certificate from a throw-away CA, the spec's
readers are the committee and one auditor, the nodes reach each other over https with the CA
bundle, and `fedledger audit` runs as an auditor would run it: as a CLI against the live chain.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tls_harness import make_ca

from fedledger.chain.base import dev_accounts
from fedledger.chain.contracts import Phase
from fedledger.codec.commitment import merkle_root
from fedledger.errors import ReadRefused
from fedledger.sim.deployment import TlsFiles, start_consortium
from fedledger.store.http import HttpStore
from fedledger.store.local import LocalStore
from fedledger.store.sealed import is_sealed

pytestmark = pytest.mark.anvil
ROUNDS = 3
AUDITOR = "dev:5"  # dev:0 is the sponsor, dev:1..4 the committee


def _audit(args: list[str], tmp: Path, name: str) -> tuple[int, str, dict[str, object]]:
    report = tmp / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fedledger.cli.main", "audit", *args, "--report", str(report), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert report.exists(), out
    return proc.returncode, out, json.loads(report.read_text())


def test_four_organisations_over_tls_with_sealed_updates_audit_with_an_auditor_key(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    auditor = dev_accounts(6)[5]
    cons = start_consortium(
        tmp_path,
        spec={"rounds": ROUNDS},
        node_options={"availability_wait_s": 10},
        tls=TlsFiles(ca.ca, ca.cert, ca.key),
        auditors=[auditor],
    )
    try:
        assert [r.address for r in cons.spec.readers] == [o.address for o in cons.orgs] + [auditor.address]
        assert all(o.store_url.startswith("https://") for o in cons.orgs)
        cons.wait_done(timeout=240)
        state = cons.coordinator.job_state(cons.job_id)
        assert state.phase == Phase.DONE and state.version == ROUNDS, cons.logs()
        # every update is sealed at rest: on the organisation's disk is ciphertext, not the bytes
        # its commitment is the root of; and its server refuses it to a key outside the readers
        # (a slow starter may join in round 2: a round closes once every registered trainer committed)
        commits = cons.events("UpdateCommitted")
        by_round = cons.commits_by_round()
        assert sorted(by_round) == list(range(1, ROUNDS + 1)), by_round
        assert {e.args["trainer"] for e in commits} == {o.address for o in cons.orgs}, by_round
        stranger = dev_accounts(7)[6]
        for e in commits:
            org = next(o for o in cons.orgs if o.address == e.args["trainer"])
            stored = LocalStore(org.store_dir)._read(e.args["commitment"])
            assert stored is not None and is_sealed(stored) and merkle_root(stored) != e.args["commitment"]
            with pytest.raises(ReadRefused, match="may not read this"):
                HttpStore(org.store_url, stranger, ca_bundle=ca.ca).get(e.args["commitment"])
        # the auditor's key reads every update, and every round is recomputed bit for bit
        rc, out, report = _audit([*cons.audit_args(), "--key", AUDITOR], tmp_path, "with-key")
        assert rc == 0 and report["ok"], out
        assert report["checks"]["aggregate"] == ROUNDS, report["checks"]  # type: ignore[index]
        assert not [f for f in report["findings"] if f["check"] == "readers"], out  # type: ignore[attr-defined]
        # without a key the audit checks what is public and says the updates were not readable
        # (and that the global models its servers serve to the job's parties only were not either)
        rc, out, report = _audit(cons.audit_args(), tmp_path, "without-key")
        findings: list[dict[str, str]] = report["findings"]  # type: ignore[assignment]
        unread = {f["artefact"] for f in findings if f["check"] == "readers"}
        assert {f"round {r} updates" for r in range(1, ROUNDS + 1)} <= unread, out
        assert rc == 0 and report["ok"], out
        assert "for what is public" in out and "not readable to this audit" in out, out
        assert all(f["severity"] == "warning" for f in findings), out
        assert "aggregate" not in report["checks"], report["checks"]  # type: ignore[operator]
        for o in cons.orgs:
            assert cons.coordinator.claimable(cons.job_id, o.address) == 0
            assert cons.coordinator.stake_of(cons.job_id, o.address) == 0
    finally:
        cons.stop()
