"""`audit` and `report` name a job the same way, and refuse the same mistakes in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedledger.cli.main import main


@pytest.mark.parametrize("command", ["audit", "report"])
@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--key", "dev:5"], "--key apply to a live chain only: add --rpc URL, or drop them"),
        (["--job", "1", "--ca-bundle", "ca.pem"], "--job, --ca-bundle apply to a live chain only"),
    ],
)
def test_live_only_flags_with_a_run_directory_are_refused(
    command: str, extra: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["audit", "report"])
def test_key_and_ca_bundle_reach_the_live_reader(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both commands take the reader's key and the CA bundle; an unreachable https node is named."""
    spec = tmp_path / "spec.json"
    spec.write_text("{}")
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    argv = [command, "--rpc", "https://127.0.0.1:9", "--coordinator", "0x" + "11" * 20, "--job", "1"]
    argv += ["--store", str(tmp_path), "--spec", str(spec), "--key", "dev:5", "--ca-bundle", str(ca)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot reach the EVM node at https://127.0.0.1:9" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
