"""Forged run directories the audit must refuse by name, never by crashing.

Importing the EVM raises Python's recursion limit far past what the C stack holds, so a
forged JSON file of many thousand nested brackets once crashed the audit with a segfault
(no message, exit 139). Each case here tampers with a copy of the shared honest run and
expects exit 1 naming the file, or exit 2 with one line on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fedledger.audit.export_file import JSON_DEPTH, parse_json
from fedledger.cli.main import main

DEEP = "[" * 200_000 + "]" * 200_000


def test_parse_json_refuses_deep_nesting_and_keeps_the_limit() -> None:
    limit = sys.getrecursionlimit()
    with pytest.raises(ValueError, match="nested deeper"):
        parse_json(DEEP)
    assert sys.getrecursionlimit() == limit
    shallow = "[" * (JSON_DEPTH // 2) + "]" * (JSON_DEPTH // 2)
    assert parse_json(shallow) is not None


def test_deeply_nested_model_card_is_named(run_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run_copy / "model_card.json").write_text(DEEP)
    capsys.readouterr()
    assert main(["audit", str(run_copy), "--quiet"]) == 1
    found = json.loads((run_copy / "audit.json").read_text())
    text = json.dumps(found)
    assert "model_card.json" in text and "nested deeper" in text


def test_deeply_nested_chain_export_is_refused_in_one_line(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = run_copy / "chain.json"
    path.write_text(path.read_text().replace('"events": [', f'"deep": {DEEP}, "events": [', 1))
    capsys.readouterr()
    assert main(["audit", str(run_copy), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chain.json" in err[0] and "nested deeper" in err[0]


@pytest.mark.parametrize("section", [None, "privacy"])
def test_a_field_no_card_has_is_blamed_on_the_card(
    run_copy: Path, capsys: pytest.CaptureFixture[str], section: str | None
) -> None:
    """An added claim was once compared with the model file's metadata (blaming the model file)
    or, inside a section, not read at all (a silent pass)."""
    path = run_copy / "model_card.json"
    card = json.loads(path.read_text())
    (card[section] if section else card)["certified_by"] = "a regulator"
    path.write_text(json.dumps(card, indent=2))
    capsys.readouterr()
    assert main(["audit", str(run_copy), "--quiet"]) == 1
    errors = [
        f for f in json.loads((run_copy / "audit.json").read_text())["findings"] if f["severity"] == "error"
    ]
    assert errors and all(f["artefact"] == "model_card.json" for f in errors)
    assert "certified_by" in errors[0]["message"]


def test_a_unicode_line_separator_in_the_prose_card_is_named(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """U+2028 for a newline: str.splitlines() read the same lines, Markdown does not."""
    path = run_copy / "MODEL_CARD.md"
    path.write_text(path.read_text(encoding="utf-8").replace("\n", "\u2028", 1), encoding="utf-8")
    capsys.readouterr()
    assert main(["audit", str(run_copy), "--quiet"]) == 1
    errors = [
        f for f in json.loads((run_copy / "audit.json").read_text())["findings"] if f["severity"] == "error"
    ]
    assert errors and all(f["artefact"] == "MODEL_CARD.md" for f in errors)
