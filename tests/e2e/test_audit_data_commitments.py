"""The audit of an own-data run's data commitments, honest and tampered.

One small simulation on three hospitals' CSV files (the Wisconsin breast-cancer table,
a few hundred rows, two rounds) is shared by the module; each test audits a copy of its
run directory, some after editing chain.json. An in-process export is re-executed, so an
edited event is caught as "chain-export"; a removed transaction re-executes cleanly and
leaves the data check to find the update nobody bound to data. An RPC export cannot be
re-executed: there the data check alone judges when and under which schema a trainer
committed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from fedledger.audit.replay import reexecute
from fedledger.audit.run import audit_run_dir
from fedledger.audit.verify import AuditReport
from fedledger.chain import signing
from fedledger.chain.base import dev_accounts
from fedledger.chain.inprocess import InProcessChain
from fedledger.data.discover import discover, infer_job_schema
from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec
from fedledger.training.own import OwnSources

ROWS = {"north": 110, "south": 100, "west": 90}


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One honest own-data run: three hospitals, 300 training rows, two rounds."""
    root = tmp_path_factory.mktemp("own-data")
    df = load_breast_cancer(as_frame=True).frame.copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["diagnosis"] = np.where(df.pop("target") == 1, "benign", "malignant")
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    sites = root / "hospitals"
    sites.mkdir()
    start = 100
    for name, n in ROWS.items():
        df.iloc[start : start + n].to_csv(sites / f"{name}.csv", index=False)
        start += n
    df.iloc[:100].to_csv(root / "test.csv", index=False)
    sources, names = discover([str(sites)])
    assert sorted(names) == sorted(ROWS)
    schema = infer_job_schema(sources, label="diagnosis")
    spec = JobSpec.from_dict({"dataset": "hospitals", "data_schema": schema.model_dump(),
                              "trainers": len(sources), "partition": "organisation", "model": "logreg",
                              "rounds": 2})  # fmt: skip
    own = OwnSources(tuple(sources), tuple(names), discover([str(root / "test.csv")])[0][0])
    out = root / "run"
    Simulation(spec, out_dir=out, data=own).run()
    yield out


@pytest.fixture()
def run(own_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(own_run, dst)
    return dst


def load(run: Path) -> dict[str, Any]:
    return json.loads((run / "chain.json").read_text())


def save(run: Path, export: dict[str, Any]) -> None:
    (run / "chain.json").write_text(json.dumps(export))


def data_events(export: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in export["events"] if e["name"] == "DataCommitted"]


def first_update(export: dict[str, Any], trainer: str) -> dict[str, Any]:
    return next(
        e for e in export["events"] if e["name"] == "UpdateCommitted" and e["args"]["trainer"] == trainer
    )


def errors(report: AuditReport) -> list[tuple[str, str, str | None]]:
    return [(f.check, f.message, f.organisation) for f in report.findings if f.severity == "error"]


def flip(hex32: str) -> str:
    """The same 32-byte hex value with its last byte changed."""
    last = int(hex32[-2:], 16) ^ 0x01
    return hex32[:-2] + f"{last:02x}"


def as_rpc(export: dict[str, Any]) -> None:
    export["chain"] = {"kind": "rpc", "description": "anvil", "chain_id": 31337}


# -- honest ------------------------------------------------------------------------------------


def test_honest_run_lists_each_organisation_s_commitment(run: Path) -> None:
    report = audit_run_dir(run)
    assert report.ok, errors(report)
    assert report.checks["data"] == len(ROWS)
    export = load(run)
    posted = {e["args"]["trainer"]: e for e in data_events(export)}
    assert sorted(d["organisation"] for d in report.data) == sorted(ROWS)
    for d in report.data:
        assert d["rows"] == ROWS[d["organisation"]]
        e = posted[d["trainer"]]
        assert (d["root"], d["rows"], d["schema_hash"], d["block"]) == (
            e["args"]["root"],
            e["args"]["rows"],
            e["args"]["schema_hash"],
            e["block_number"],
        )
        assert export["participants"][d["trainer"]] == d["organisation"]
        # each opening stays with its organisation, and it opens the posted root
        opening = json.loads((run / "private" / f"{d['organisation']}.opening.json").read_text())
        assert d["root"] in json.dumps(opening)
    assert len({d["schema_hash"] for d in report.data}) == 1
    roots = {d["trainer"]: d["root"] for d in report.data}
    assert report.lineage, "no model versions in the lineage"
    for entry in report.lineage:
        assert entry.contributors
        for c in entry.contributors:
            assert c["data_commitment"] == roots[c["trainer"]]


def test_honest_run_exported_from_rpc_passes(run: Path) -> None:
    export = load(run)
    as_rpc(export)
    save(run, export)
    report = audit_run_dir(run)
    assert report.ok, errors(report)
    assert len(report.data) == len(ROWS)
    assert any(f.check == "chain-export" and f.severity == "warning" for f in report.findings)


# -- tampered in-process exports: re-execution ---------------------------------------------------


def test_edited_root_is_caught_by_reexecution(run: Path) -> None:
    export = load(run)
    ev = data_events(export)[0]
    ev["args"]["root"] = flip(ev["args"]["root"])
    save(run, export)
    report = audit_run_dir(run)
    assert not report.ok
    found = [(c, m) for c, m, _ in errors(report) if c == "chain-export"]
    assert any("fields root differ from re-execution" in m for _, m in found), errors(report)


def drop_data_commitment(export: dict[str, Any], which: int) -> tuple[str, str]:
    """Removes one DataCommitted event and its transaction; (trainer, organisation)."""
    ev = data_events(export)[which]
    trainer, tx = ev["args"]["trainer"], ev["tx_hash"]
    export["events"] = [e for e in export["events"] if e["tx_hash"] != tx]
    export["transactions"] = [t for t in export["transactions"] if t["tx_hash"] != tx]
    return trainer, export["participants"][trainer]


NO_DATA = "committed an update without a data commitment: nothing binds the data it trained on"


def assert_update_without_data(report: AuditReport, trainer: str, org: str) -> None:
    assert not report.ok
    assert ("data", NO_DATA, org) in errors(report)
    assert [m for c, m, _ in errors(report) if c == "data"] == [NO_DATA]
    assert sorted(d["organisation"] for d in report.data) == sorted(set(ROWS) - {org})
    for entry in report.lineage:
        for c in entry.contributors:
            assert ("data_commitment" in c) == (c["trainer"] != trainer)


def test_a_dropped_commitment_stalls_its_trainer_s_later_transactions(run: Path) -> None:
    """Dropping a signed transaction leaves a gap in its sender's nonces: that trainer's later
    transactions (its updates among them) no longer re-execute."""
    export = load(run)
    trainer, _ = drop_data_commitment(export, 1)
    save(run, export)
    report = audit_run_dir(run)
    assert not report.ok
    chain_export = [m for c, m, _ in errors(report) if c == "chain-export"]
    assert any(f"{trainer} signed nonce" in m for m in chain_export)  # and what depended on them reverts


def test_dropped_commitment_with_a_re_signed_history_is_left_to_the_data_check(run: Path) -> None:
    """A forger holding the keys (the simulator's are the public development accounts) re-signs
    every later transaction, renumbers the blocks and rewrites what they derive: the history then
    re-executes cleanly, and only the data check stands between it and a clean audit."""
    export = load(run)
    trainer, org = drop_data_commitment(export, 1)
    keys = {a.address: a for a in dev_accounts(len(export["participants"]) + 2)}
    chain = InProcessChain(block_time=int(export["chain"]["block_time"]))
    for block, t in enumerate(export["transactions"], start=1):  # one block per transaction
        signed = signing.decode(bytes.fromhex(t["raw"][2:]))
        resigned = signing.sign(
            keys[t["from"]], nonce=chain._nonces.get(t["from"], 0), to=signed.to, data=signed.data,
            gas=signed.gas, chain_id=signed.chain_id,
        )  # fmt: skip
        receipt = chain.replay(resigned, block_number=block, timestamp=t["timestamp"])
        t.update(
            raw="0x" + resigned.raw.hex(),
            tx_hash=receipt.tx_hash,
            block_number=block,
            block_hash=receipt.block_hash,
        )
    replayed = reexecute(export).events
    assert len(replayed) == len(export["events"])
    export["events"] = [e.to_json() for e in replayed]
    save(run, export)
    report = audit_run_dir(run)
    # the model card names the dropped commitment too: it no longer matches the chain
    assert [c for c, _, _ in errors(report) if c not in ("data", "model-card")] == [], errors(report)
    assert_update_without_data(report, trainer, org)


# -- tampered RPC exports: the data check alone ------------------------------------------------


def test_commitment_after_first_update_is_refused(run: Path) -> None:
    export = load(run)
    as_rpc(export)
    ev = data_events(export)[0]
    trainer = ev["args"]["trainer"]
    org = export["participants"][trainer]
    update = first_update(export, trainer)
    assert ev["block_number"] < update["block_number"]
    ev["block_number"] = update["block_number"] + 1
    save(run, export)
    report = audit_run_dir(run)
    assert not report.ok
    late = [(c, m, o) for c, m, o in errors(report) if "posted after the trainer's first update" in m]
    assert late == [
        (
            "data",
            f"posted after the trainer's first update (block {update['block_number']}): the data "
            "was not fixed before it trained",
            org,
        )
    ], errors(report)


def test_commitment_under_another_schema_is_refused(run: Path) -> None:
    export = load(run)
    as_rpc(export)
    ev = data_events(export)[2]
    org = export["participants"][ev["args"]["trainer"]]
    want = ev["args"]["schema_hash"]
    ev["args"]["schema_hash"] = flip(want)
    save(run, export)
    report = audit_run_dir(run)
    assert not report.ok
    bad = [(c, m, o) for c, m, o in errors(report) if "is not the job's data schema" in m]
    assert bad == [
        (
            "data",
            f"schema hash {flip(want)} is not the job's data schema ({want}): the rows were encoded "
            "under another schema",
            org,
        )
    ], errors(report)


def test_a_second_commitment_for_one_trainer_is_refused(run: Path) -> None:
    export = load(run)
    as_rpc(export)
    ev = data_events(export)[0]
    org = export["participants"][ev["args"]["trainer"]]
    twin = json.loads(json.dumps(ev))
    twin["log_index"] = ev["log_index"] + 1
    twin["args"]["root"] = flip(ev["args"]["root"])
    export["events"].insert(export["events"].index(ev) + 1, twin)
    save(run, export)
    report = audit_run_dir(run)
    assert (
        "data",
        "2 data commitments for one trainer; the registry takes one per job",
        org,
    ) in errors(report)
    # the first one posted is the one the lineage names
    assert next(d for d in report.data if d["organisation"] == org)["root"] == ev["args"]["root"]


@pytest.mark.parametrize("edit", ["schema_hash", "block_number"])
def test_in_process_export_edits_are_caught_by_reexecution(run: Path, edit: str) -> None:
    """The same edits to an in-process export never reach the data check's judgement alone."""
    export = load(run)
    ev = data_events(export)[0]
    if edit == "schema_hash":
        ev["args"]["schema_hash"] = flip(ev["args"]["schema_hash"])
        expected = "fields schema_hash differ from re-execution"
    else:
        ev["block_number"] = first_update(export, ev["args"]["trainer"])["block_number"] + 1
        expected = "block_number differs from re-execution"
    save(run, export)
    report = audit_run_dir(run)
    assert not report.ok
    assert [m for c, m, _ in errors(report) if c == "chain-export" and expected in m], errors(report)
    # re-execution's own events are what the data check reads: it finds nothing wrong
    assert [c for c, _, _ in errors(report) if c == "data"] == []
