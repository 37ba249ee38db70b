"""`fedledger dashboard` meets bad input with one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.cli.main import main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["dashboard", "/no/such/run"], "/no/such/run is not a directory"),
        (["dashboard"], "give a run directory, or --rpc URL --coordinator ADDRESS"),
        (["dashboard", "--rpc", "http://127.0.0.1:1"], "--rpc needs --coordinator ADDRESS"),
        (
            ["dashboard", "--rpc", "http://127.0.0.1:1", "--coordinator", "0x" + "11" * 20],
            "cannot reach the EVM node at http://127.0.0.1:1",
        ),
    ],
)
def test_bad_input_is_one_line(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_directory_that_is_not_a_run_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboard", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a run directory: spec.json is missing" in err and len(err.strip().splitlines()) == 1
