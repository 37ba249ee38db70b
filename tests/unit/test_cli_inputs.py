"""Command-line inputs refused or accepted before anything runs: `job create --committee` in both
forms, and the run directory `simulate` prepares and, when a job is refused, leaves as it found."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from fedledger.cli.main import build_parser
from fedledger.cli.simulate import check_flags, prepare_out
from fedledger.errors import SpecError
from fedledger.sim.faults import Fault

A, B, C = ("0x" + ch * 40 for ch in "abc")
JOB = ["job", "create", "--rpc", "http://x", "--coordinator", "0x1", "--spec", "j.json", "--token", "0x2"]
JOB += ["--key", "dev:0", "--store", "s"]


def test_committee_takes_several_after_one_flag_or_one_per_flag() -> None:
    parse = build_parser().parse_args
    together = parse([*JOB, "--committee", A, B, C])
    repeated = parse([*JOB, "--committee", A, "--committee", B, "--committee", C])
    mixed = parse([*JOB, "--committee", A, B, "--committee", C])
    assert together.committee == repeated.committee == mixed.committee == [A, B, C]


def test_committee_is_still_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(JOB)
    assert exit_.value.code == 2 and "--committee" in capsys.readouterr().err


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["simulate", *argv])


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--key", "state"], "--key applies to own data only"),
        (["--label", "y"], "--label applies to own data only"),
        (["--test-data", "t.csv"], "--test-data applies to own data only"),
        (["--fault", "corrupt-blob@1:0"], "rounds count from 1"),
        (["--fault", "huge-norm@2:-3"], "rounds count from 1"),
    ],
)
def test_flags_a_job_cannot_use_are_refused(argv: list[str], words: str) -> None:
    args = _args(*argv)
    with pytest.raises(SpecError, match=words):
        check_flags(args, [Fault.parse(f) for f in args.fault])


def test_own_data_flags_with_data_and_faults_from_round_one_pass() -> None:
    args = _args("--data", "a.csv", "--key", "state", "--label", "y", "--fault", "corrupt-blob@1:1")
    check_flags(args, [Fault.parse(f) for f in args.fault])


def test_a_refused_run_removes_the_directories_it_made(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "job-1"
    run = prepare_out(out, force=False)
    (out / "store").mkdir()
    (out / "spec.json").write_text("{}")
    run.refuse()
    assert not (tmp_path / "runs").exists() and tmp_path.is_dir()


def test_a_refused_run_leaves_an_empty_directory_the_user_made_empty(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    run = prepare_out(out, force=False)
    (out / "run.log").write_text("x")
    run.refuse()
    assert out.is_dir() and not any(out.iterdir())


def test_force_keeps_the_previous_run_until_the_new_one_is_under_way(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "chain.json").write_text("old")
    refused = prepare_out(out, force=True)
    assert not any(out.iterdir())  # the new run starts empty
    (out / "chain.json").write_text("new")
    refused.refuse()
    assert (out / "chain.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]

    accepted = prepare_out(out, force=True)
    accepted.accept()
    assert not any(out.iterdir()) and [p.name for p in tmp_path.iterdir()] == ["run"]


def test_a_run_directory_is_never_mixed_without_force(tmp_path: Path) -> None:
    (tmp_path / "chain.json").write_text("old")
    with pytest.raises(SpecError, match="not empty; choose another --out or pass --force"):
        prepare_out(tmp_path, force=False)
    assert (tmp_path / "chain.json").read_text() == "old"


def test_a_refusal_closes_a_run_log_left_open_in_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = prepare_out(out, force=False)
    handler = logging.FileHandler(out / "run.log")
    log = logging.getLogger("fedledger")
    log.addHandler(handler)
    try:
        run.refuse()
        assert handler not in log.handlers and handler.stream is None
    finally:
        log.removeHandler(handler)
        handler.close()
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["simulate", "--aggregation", "mean"], "argument --aggregation: invalid choice: 'mean'"),
        (["simulate", "--rounds", "three"], "argument --rounds: invalid int value: 'three'"),
        (["bogus"], "invalid choice: 'bogus'"),
    ],
)
def test_a_usage_mistake_is_one_line(argv: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and words in err and "--help" in err
    assert err.count("\n") == 1 and "usage:" not in err
