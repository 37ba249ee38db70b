"""The audit of a run's derived files: final model, model card, metrics, export decoding, names.

Two small runs (digits, three organisations) are made once through the command line; each
test copies the first, tampers with one file the way a careless or dishonest publisher
might, and calls `check_outputs` with the re-executed events and the run's store. An honest
copy must give no error; every tampered one an error naming the file it touched.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from fedledger.audit.outputs import check_outputs
from fedledger.audit.replay import load_export, reexecute
from fedledger.cli.main import main
from fedledger.spec import JobSpec
from fedledger.store.local import LocalStore

Finding = tuple[str, str, str, str, dict[str, Any]]


def simulate(out: Path, *extra: str) -> None:
    argv = ["simulate", "--dataset", "digits", "--trainers", "3", "--rounds", "2", "--out", str(out)]
    assert main([*argv, "--quiet", *extra]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("outputs")
    simulate(root / "a")
    simulate(root / "b", "--seed", "7")
    yield root / "a", root / "b"


@pytest.fixture()
def run(runs: tuple[Path, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(runs[0], tmp_path / "run"))


def audit(run: Path, **kw: Any) -> tuple[list[Finding], list[str]]:
    found: list[Finding] = []

    def report(severity: str, check: str, artefact: str = "", message: str = "", **where: Any) -> None:
        found.append((severity, check, artefact, message, where))

    source = reexecute(load_export(run / "chain.json"))
    not_covered = check_outputs(
        run, spec=JobSpec.load(run / "spec.json"), source=source, store=LocalStore(run / "store"),
        report=report, **kw,
    )  # fmt: skip
    return found, not_covered


def errors(found: list[Finding], artefact: str) -> list[Finding]:
    return [f for f in found if f[0] == "error" and artefact in f[2]]


def edit_json(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def test_honest_run_has_no_error_and_lists_what_it_does_not_cover(run: Path) -> None:
    found, not_covered = audit(run)
    assert [f for f in found if f[0] != "passed"] == []
    passed = {f[1] for f in found}
    assert passed == {"final-model", "model-card", "metrics", "tx-decoding", "participants"}
    assert not_covered == ["accuracy.png", "run.log"]
    _, without = audit(run, recompute_accuracy=False)
    assert without == ["accuracy.png", "metrics.csv", "metrics.json", "run.log"]


def test_final_model_of_another_run_is_an_error(run: Path, runs: tuple[Path, Path]) -> None:
    shutil.copy(runs[1] / "final_model.safetensors", run / "final_model.safetensors")
    bad = errors(audit(run)[0], "final_model.safetensors")
    assert any("differs from the dequantised committed model" in f[3] for f in bad)
    assert any("metadata final_model_commitment" in f[3] for f in bad)


def test_one_flipped_float_names_its_tensor(run: Path) -> None:
    path = run / "final_model.safetensors"
    with safe_open(str(path), framework="numpy") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        meta = fh.metadata()
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].copy()
    tensors[name].flat[0] = np.nextafter(tensors[name].flat[0], np.float32(np.inf))
    save_file(tensors, str(path), metadata=meta)
    bad = errors(audit(run)[0], "final_model.safetensors")
    assert len(bad) == 1 and f"tensor {name!r} differs" in bad[0][3]


def test_a_float64_copy_of_the_model_is_an_error(run: Path) -> None:
    path = run / "final_model.safetensors"
    with safe_open(str(path), framework="numpy") as fh:
        tensors = {k: fh.get_tensor(k).astype(np.float64) for k in fh.keys()}  # noqa: SIM118
        meta = fh.metadata()
    save_file(tensors, str(path), metadata=meta)
    bad = errors(audit(run)[0], "final_model.safetensors")
    assert bad and all("float64" in f[3] for f in bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("final_model_commitment", "0x" + "11" * 32),
        ("final_test_accuracy", 0.99),
        ("contributing_organisations", ["org-01", "org-02"]),
        ("flagged", {"org-03": {"flags": 1, "slashed": "1"}}),
        ("code_digest", "0x" + "22" * 32),
        ("rounds_failed", 1),
        ("payouts", {"org-01": "1", "org-02": "2", "org-03": "3"}),
    ],
)
def test_an_edited_card_field_is_an_error_naming_it(run: Path, field: str, value: Any) -> None:
    edit_json(run / "model_card.json", lambda card: card.__setitem__(field, value))
    found, _ = audit(run)
    bad = errors(found, "model_card.json")
    assert any(f[3].startswith(f"{field} = ") for f in bad), bad
    assert errors(found, "final_model.safetensors") == []  # its metadata is judged by the chain's facts


def test_prose_card_must_state_the_chain_facts(run: Path) -> None:
    md = run / "MODEL_CARD.md"
    text = md.read_text()
    card = json.loads((run / "model_card.json").read_text())
    stated = f"{100 * card['final_test_accuracy']:.2f}%"
    md.write_text(text.replace(stated, "99.99%").replace(card["final_model_commitment"], "0x" + "33" * 32))
    bad = errors(audit(run)[0], "MODEL_CARD.md")
    assert {f[3].split(":")[0] for f in bad} == {"Final model commitment", "Final test accuracy"}


def test_forged_accuracy_names_its_round(run: Path) -> None:
    edit_json(
        run / "metrics.json",
        lambda rows: rows[0].__setitem__("test_accuracy", rows[0]["test_accuracy"] + 0.01),
    )
    found, _ = audit(run)
    bad = errors(found, "metrics.json")
    assert len(bad) == 1 and bad[0][3].startswith("test_accuracy") and bad[0][4] == {"round": 1}
    assert errors(found, "metrics.csv")  # the table no longer matches its JSON


def test_decoded_arg_edited_without_its_input(run: Path) -> None:
    export = json.loads((run / "chain.json").read_text())
    tx = next(t for t in export["transactions"] if t["function"] == "commit")
    tx["args"]["num_examples"] += 1
    (run / "chain.json").write_text(json.dumps(export))
    bad = errors(audit(run)[0], "chain.json")
    assert len(bad) == 1
    assert bad[0][2] == f"chain.json transaction {tx['tx_hash']}" and "args.num_examples" in bad[0][3]


def test_swapped_names_disagree_with_the_card(run: Path) -> None:
    def swap(export: dict[str, Any]) -> None:
        p = export["participants"]
        a, b = (k for k, v in p.items() if v in ("org-01", "org-02"))
        p[a], p[b] = p[b], p[a]

    edit_json(run / "chain.json", swap)
    bad = errors(audit(run)[0], "model_card.json")
    assert any(f[3].startswith("payouts = ") for f in bad)


def test_names_must_be_one_to_one_and_cover_every_sender(run: Path) -> None:
    def rename(export: dict[str, Any]) -> None:
        p = export["participants"]
        first, second, *_ = sorted(p)
        p[second] = p[first]  # two accounts, one name
        del p[next(k for k, v in p.items() if v == "sponsor")]

    edit_json(run / "chain.json", rename)
    bad = errors(audit(run)[0], "chain.json participants")
    messages = " | ".join(f[3] for f in bad)
    assert "names accounts" in messages and "is the job's sponsor but has no name" in messages


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Three hospitals' CSV files (breast cancer, 300 rows), standardised by a statistics round."""
    from sklearn.datasets import load_breast_cancer

    from fedledger.data.discover import discover, infer_job_schema
    from fedledger.sim.simulate import Simulation
    from fedledger.training.own import OwnSources

    root = tmp_path_factory.mktemp("own-outputs")
    df = load_breast_cancer(as_frame=True).frame
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["diagnosis"] = np.where(df.pop("target") == 1, "benign", "malignant")
    (root / "sites").mkdir()
    for i, name in enumerate(("north", "south", "west")):
        df.iloc[100 + 100 * i : 200 + 100 * i].to_csv(root / "sites" / f"{name}.csv", index=False)
    df.iloc[:100].to_csv(root / "test.csv", index=False)
    sources, names = discover([str(root / "sites")])
    schema = infer_job_schema(sources, label="diagnosis")
    spec = JobSpec.from_dict({"dataset": "hospitals", "data_schema": schema.model_dump(), "rounds": 2,
                              "trainers": 3, "partition": "organisation", "model": "logreg"})  # fmt: skip
    test = discover([str(root / "test.csv")])[0][0]
    Simulation(spec, out_dir=root / "run", data=OwnSources(tuple(sources), tuple(names), test)).run()
    yield root / "run"


def test_own_data_run_checks_standardiser_and_data_commitments(own_run: Path, tmp_path: Path) -> None:
    run = Path(shutil.copytree(own_run, tmp_path / "run"))
    found, not_covered = audit(run)
    assert [f for f in found if f[0] != "passed"] == []
    with safe_open(str(run / "final_model.safetensors"), framework="numpy") as fh:
        assert {"standardise.mean", "standardise.std"} <= set(fh.keys())
    assert not_covered == ["accuracy.png", "metrics.csv", "metrics.json", "private/", "run.log"]

    def forge(card: dict[str, Any]) -> None:
        card["data"]["data_commitments"]["north"] = "0x" + "44" * 32

    edit_json(run / "model_card.json", forge)
    bad = errors(audit(run)[0], "model_card.json")
    assert [f[3].split(" = ")[0] for f in bad] == ["data.data_commitments"]
