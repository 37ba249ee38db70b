"""The CLI as a user meets it when something is wrong: a refused `simulate` leaves no run directory,
an unreadable audit input is one line and exit 2 (never a traceback, never exit 1), and a SIGTERM
to `fedledger devnet` takes its anvil node down with it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fedledger.cli.main import main

SMALL = ["--dataset", "digits", "--rounds", "1", "--trainers", "3", "--quiet"]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


# -- simulate: a refused job leaves no run directory ----------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--partition", "key", "--key", "x", "--dataset", "mnist"], "--key applies to own data only"),
        (["--dataset", "digits", "--partition", "key"], "no natural key per row"),
        (["--fault", "corrupt-blob@9"], "trainer 9 is outside 1..3"),
        (["--fault", "corrupt-blob@1:0"], "rounds count from 1"),
        (["--fault", "bogus"], "is not KIND@TRAINER"),
        (["--fault", "lying-validator@3", "--validators", "2"], "is not a validator"),
        (["--profile", "tiny@7"], "trainer 7 is outside 1..3"),
        (["--malicious", "0.3"], "--malicious is the share of trainers playing --attack; name the attack"),
    ],
)
def test_a_refused_simulate_leaves_no_run_directory(
    argv: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "runs" / "refused"
    code = main(["simulate", *SMALL, *argv, "--out", str(out)])
    assert code == 2
    assert words in one_error_line(capsys)
    assert not out.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv", [["--fault", "drop-out@9"], ["--profile", "tiny@7"]])
def test_a_fault_or_profile_aimed_past_the_trainers_is_refused_before_the_header(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loud = [a for a in SMALL if a != "--quiet"]
    code = main(["simulate", *loud, *argv, "--out", str(tmp_path / "run")])
    assert code == 2
    assert capsys.readouterr().out == ""  # no banner naming a run directory that will never exist
    assert not (tmp_path / "run").exists()


def test_a_job_refused_after_the_header_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default --out is runs/<name>-seed<seed>-<time>
    argv = [a for a in SMALL if a != "--quiet"]
    code = main(["simulate", *argv, "--partition", "key"])
    captured = capsys.readouterr()
    assert code == 2 and "fedledger simulate" in captured.out  # the header was printed
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_force_gives_back_the_previous_run_when_the_new_job_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "chain.json").write_text("the previous run's evidence")
    code = main(["simulate", *SMALL, "--partition", "key", "--out", str(out), "--force"])
    assert code == 2
    assert "no natural key per row" in one_error_line(capsys)
    assert (out / "chain.json").read_text() == "the previous run's evidence"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("stop", ["code", "interrupt"])
def test_a_run_stopped_before_any_final_round_leaves_nothing_and_gives_back_the_previous(
    stop: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An organisation's code that raises in round 1, or Ctrl-C: nothing is final, nothing is kept."""
    from fedledger.errors import CodeError
    from fedledger.training.torch_client import TorchClient

    def fit(*args: object, **kwargs: object) -> object:
        if stop == "code":
            raise CodeError("client", "fit raised RuntimeError: the organisation's own bug")
        raise KeyboardInterrupt

    monkeypatch.setattr(TorchClient, "fit", fit)
    out = tmp_path / "run"
    out.mkdir()
    (out / "chain.json").write_text("the previous run's evidence")
    code = main(["simulate", *SMALL, "--out", str(out), "--force"])
    if stop == "code":
        assert code == 2 and "fit raised RuntimeError: the organisation's own bug" in one_error_line(capsys)
    else:
        assert code == 130
    assert (out / "chain.json").read_text() == "the previous run's evidence"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert sorted(p.name for p in out.iterdir()) == ["chain.json"]


def test_a_run_stopped_after_final_rounds_keeps_them_auditable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in round 3: rounds 1 and 2 are final on chain, and their record is written for the audit."""
    from fedledger.audit.run import audit_run_dir
    from fedledger.training.torch_client import TorchClient

    fit, calls = TorchClient.fit, {"n": 0}

    def fit_until_round_3(self: TorchClient, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] > 2 * 3:  # SMALL has 3 trainers a round
            raise KeyboardInterrupt
        return fit(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TorchClient, "fit", fit_until_round_3)
    out = tmp_path / "run"
    assert main(["simulate", *SMALL, "--rounds", "5", "--out", str(out)]) == 130
    assert "stopped after 2 final round(s)" in capsys.readouterr().out
    assert {"spec.json", "chain.json", "metrics.json"} <= {p.name for p in out.iterdir()}
    report = audit_run_dir(out)
    assert report.ok, report.findings
    assert [m["status"] for m in json.loads((out / "metrics.json").read_text())] == ["finalized"] * 2


# -- audit: unreadable inputs are one line and exit 2 ---------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit") / "run"
    assert main(["simulate", *SMALL, "--out", str(out)]) == 0
    return out


@pytest.fixture
def run_copy(small_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(small_run, copy)
    return copy


def test_the_untouched_copy_audits_clean(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(run_copy), "--quiet"]) == 0
    assert "AUDIT PASSED" in capsys.readouterr().out


def _json_edit(edit: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))

    return apply


def _truncate(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])


def _not_utf8(path: Path) -> None:
    path.write_bytes(b"\xff\xfe" + path.read_bytes())


SPEC_EDITS: dict[str, tuple[Callable[[Path], None], str]] = {
    "not-utf8": (_not_utf8, "is not UTF-8"),
    "truncated": (_truncate, "is not valid JSON"),
    "rounds-a-word": (_json_edit(lambda d: d.update(rounds="many")), "rounds"),
    "trainers-a-list": (_json_edit(lambda d: d.update(trainers=[3])), "trainers"),
    "data-schema-a-number": (_json_edit(lambda d: d.update(data_schema=5)), "data_schema"),
    "a-list": (lambda p: p.write_text("[1, 2]"), "must hold an object"),
    "missing": (lambda p: p.unlink(), "spec.json is missing"),
}


@pytest.mark.parametrize("case", list(SPEC_EDITS))
def test_an_unreadable_spec_is_one_line_and_exit_2(
    case: str, run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, words = SPEC_EDITS[case]
    edit(run_copy / "spec.json")
    assert main(["audit", str(run_copy)]) == 2
    line = one_error_line(capsys)
    assert words in line and "spec.json" in line


def _drop_event_key(d: dict[str, Any]) -> None:
    del d["events"][3]["log_index"]


def _drop_tx_key(d: dict[str, Any]) -> None:
    del d["transactions"][2]["input"]


CHAIN_EDITS: dict[str, tuple[Callable[[Path], None], str]] = {
    "not-utf8": (_not_utf8, "is not UTF-8"),
    "truncated": (_truncate, "is not valid JSON"),
    "event-without-log-index": (_json_edit(_drop_event_key), "event #3 has no 'log_index'"),
    "event-args-a-string": (
        _json_edit(lambda d: d["events"][0].update(args="x")),
        "event #0 'args' is a string, not an object",
    ),
    "transactions-an-object": (
        _json_edit(lambda d: d.update(transactions={})),
        "'transactions' is an object, not a list",
    ),
    "transaction-without-input": (_json_edit(_drop_tx_key), "transaction #2 has no 'input'"),
    "transaction-a-number": (
        _json_edit(lambda d: d["transactions"].__setitem__(1, 7)),
        "transaction #1 is an integer, not an object",
    ),
    "job-id-a-string": (_json_edit(lambda d: d.update(job_id="1")), "'job_id' is a string"),
    "no-coordinator": (
        _json_edit(lambda d: d["contracts"].pop("Coordinator")),
        "contracts has no Coordinator address",
    ),
    "not-an-export": (lambda p: p.write_text("[]"), "is not a fedledger chain export"),
    "missing": (lambda p: p.unlink(), "chain.json is missing"),
}


@pytest.mark.parametrize("case", list(CHAIN_EDITS))
def test_an_unreadable_chain_export_is_one_line_and_exit_2(
    case: str, run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, words = CHAIN_EDITS[case]
    edit(run_copy / "chain.json")
    assert main(["audit", str(run_copy)]) == 2
    line = one_error_line(capsys)
    assert words in line and "chain.json" in line


# -- devnet: SIGTERM stops anvil too ---------------------------------------------------------------


def _children(pid: int) -> dict[int, str]:
    """{pid: command name} of the processes whose parent is `pid`, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone while we looked
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid:
            found[int(entry.name)] = name
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie has exited


@pytest.mark.anvil
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_devnet_stops_its_anvil(sig: signal.Signals, tmp_path: Path) -> None:
    from fedledger.chain.anvil import free_port

    out = tmp_path / "devnet.json"
    port = str(free_port())
    cmd = [sys.executable, "-m", "fedledger.cli.main", "devnet", "--port", port, "--out", str(out)]
    with (tmp_path / "stderr").open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    anvil: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            time.sleep(0.2)
        assert json.loads(out.read_text())["chain_id"] == 31337
        anvil = [pid for pid, name in _children(proc.pid).items() if name == "anvil"]
        assert len(anvil) == 1, _children(proc.pid)
        proc.send_signal(sig)
        assert proc.wait(10) == 0, (tmp_path / "stderr").read_text()
        assert not _alive(anvil[0]), f"anvil {anvil[0]} outlived devnet"
        assert "Traceback" not in (tmp_path / "stderr").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in anvil:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_own_data_partition_flags_that_cannot_apply_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    folder = tmp_path / "orgs"
    folder.mkdir()
    for name in ("north", "south"):
        pa_csv.write_csv(pa.table({"x": [1.0, 2.0, 3.0], "region": ["a", "b", "a"], "y": [0, 1, 0]}),
                         folder / f"{name}.csv")  # fmt: skip
    out = tmp_path / "run"
    several = ["--data", str(folder), "--label", "y", "--partition", "key", "--key", "region"]
    assert main(["simulate", *several, "--out", str(out), "--quiet"]) == 2
    assert "--partition key splits one table, but the --data sources are 2 organisations" in one_error_line(
        capsys
    )
    one = ["--data", str(folder / "north.csv"), "--label", "y", "--partition", "key"]
    assert main(["simulate", *one, "--out", str(out), "--quiet"]) == 2
    assert "--partition key needs --key COLUMN" in one_error_line(capsys)
    assert not out.exists()
