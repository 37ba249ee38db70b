"""One flipped byte anywhere in a run directory: the audit names it, refuses it, or admits it is blind.

The bar of issue 12. One small run (digits, three organisations, two rounds) is made once
through the command line and audited honestly, which must pass and lists in audit.json the
files no check reads (`not_covered`). Then, for each kind of file the run leaves, a copy of
the directory gets one byte XOR 0x01 at a seeded position and `fedledger audit COPY` runs
in-process. Each flip must end one of three ways:

- exit 1, and an error finding whose artefact or message names the flipped file (a store
  blob: its commitment; chain.json: also any `chain-export` or `tx-decoding` finding);
- exit 2, refused as unreadable input in exactly one line on stderr;
- the file is one the honest audit listed as not covered.

Positions: in text files mostly digits (XOR 0x01 maps a digit to another digit, so the value
changes and stays well-formed), plus raw bytes anywhere (which may break the syntax: exit 2);
in safetensors files (store blobs, the final model) digits of the JSON header (offsets,
shapes) plus raw bytes of the tensor data; in other binary files raw bytes spread evenly.
Every position is drawn from `random.Random` seeded by the case's id, so a case names the
same byte each run (the run is seeded, and made with a relative --out so MODEL_CARD.md holds
no temporary path). Aimed cases add one flip in each field the seeds may miss. audit.json is
not flipped: it is the audit's own output, rewritten by it.

A flip the audit accepts silently, or blames on another file, is a gap: it stays here as a
strict xfail whose reason says what is unchecked and where the check belongs, so closing the
gap turns it into a failure that asks for the mark to go.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fedledger.cli.main import main

DIGITS = frozenset(b"0123456789")
TEXT = (
    "spec.json",
    "chain.json",
    "model_card.json",
    "MODEL_CARD.md",
    "metrics.json",
    "metrics.csv",
    "run.log",
)
SAFETENSORS = ("store:final", "store:update", "final_model.safetensors")
BINARY = ("accuracy.png",)


@dataclass(frozen=True)
class Clean:
    run: Path
    not_covered: list[str]
    final_blob: str  # hex of the final model's commitment (its store file's stem)
    update_blob: str  # hex of the first committed update


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clean]:
    root = tmp_path_factory.mktemp("bitflips")
    with pytest.MonkeyPatch.context() as mp:  # a relative --out: MODEL_CARD.md's bytes do not hold tmp paths
        mp.chdir(root)
        argv = ["simulate", "--dataset", "digits", "--trainers", "3", "--rounds", "2", "--out", "run"]
        assert main([*argv, "--quiet"]) == 0
    run = root / "run"
    assert main(["audit", str(run), "--quiet"]) == 0
    audit = json.loads((run / "audit.json").read_text())
    assert audit["ok"] is True and audit["findings"] == []
    assert {"run.log", "accuracy.png"} <= set(audit["not_covered"])
    (run / "audit.json").unlink()  # each copy's audit writes its own
    card = json.loads((run / "model_card.json").read_text())
    events = json.loads((run / "chain.json").read_text())["events"]
    update = next(e["args"]["commitment"] for e in events if e["name"] == "UpdateCommitted")
    yield Clean(run, audit["not_covered"], card["final_model_commitment"][2:], update[2:])


def target(clean: Clean, kind: str) -> Path:
    """The file a case flips: a store blob by role, else the run directory's file of that name."""
    if kind.startswith("store:"):
        stem = clean.final_blob if kind == "store:final" else clean.update_blob
        return next((clean.run / "store").glob(f"{stem}.*"))
    return clean.run / kind


def seeded(data: bytes, kind: str, mode: str, i: int, n: int) -> int:
    """The byte of case `i` of `n` in `mode`: 'digit' (text), 'header' (safetensors) or 'raw'.

    Case i draws from the i-th of n equal slices, so the cases spread over the file. A digit is
    drawn by line first (slice of the lines holding one), then within the line, so which line
    a case hits does not depend on which hex characters a run's hashes happen to contain.
    """
    rng = random.Random(f"{kind}/{mode}/{i}")

    def pick(where: list[int]) -> int:
        assert where, f"{kind} has no {mode} byte"
        lo, hi = len(where) * i // n, len(where) * (i + 1) // n
        return where[rng.randrange(lo, max(hi, lo + 1))]

    if mode == "raw":
        start = 8 + struct.unpack("<Q", data[:8])[0] if kind in SAFETENSORS else 0  # tensor data
        return pick(list(range(start, len(data))))
    if mode == "header":  # the safetensors JSON header, after its 8-byte little-endian length
        (size,) = struct.unpack("<Q", data[:8])
        return pick([p for p in range(8, 8 + size) if data[p] in DIGITS])
    starts = [0, *(p + 1 for p, b in enumerate(data) if b == ord("\n"))]
    lines = [(a, b) for a, b in zip(starts, [*starts[1:], len(data)], strict=True) if DIGITS & set(data[a:b])]
    a, b = lines[pick(list(range(len(lines))))]
    return rng.choice([p for p in range(a, b) if data[p] in DIGITS])


def plan(kind: str) -> list[tuple[str, int, int]]:
    """(mode, i, n) of each seeded case for a kind of file."""
    if kind in SAFETENSORS:
        return [("header", i, 2) for i in range(2)] + [("raw", i, 3) for i in range(3)]
    if kind in TEXT:
        n = 6 if kind == "chain.json" else 3  # chain.json: 99 kB of transactions and events
        return [("digit", i, n) for i in range(n)] + [("raw", i, 2) for i in range(2)]
    return [("raw", i, 5) for i in range(5)]


# What no check reads today: none. A gap found later goes here as a named reason saying where the
# check belongs, marked on its case with `gap(REASON)` (in SEEDED_GAPS for a seeded case).

#: seeded cases that land in one of the gaps above (positions are deterministic: see `seeded`)
SEEDED_GAPS: dict[str, str] = {}


def gap(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=reason)


def case(kind: str, how: str, name: str) -> Any:
    marks = [gap(SEEDED_GAPS[name])] if name in SEEDED_GAPS else []
    return pytest.param(kind, how, marks=marks, id=name)


SEEDED = [
    case(kind, f"{mode}/{i}/{n}", f"{kind}-{mode}{i}")
    for kind in (*TEXT, *SAFETENSORS, *BINARY)
    for mode, i, n in plan(kind)
]


def aimed(kind: str, needle: str, offset: int, reason: str = "") -> Any:
    """A flip aimed at a field the seeded cases may miss: `offset` bytes into `needle`'s first match."""
    marks = [gap(reason)] if reason else []
    return pytest.param(kind, f"at/{offset}/{needle}", marks=marks, id=f"{kind}-at-{needle.strip(':')}")


AIMED = [
    # fields the audit checks, aimed at so that they are hit whatever the seeds draw
    aimed("chain.json", '"function": "<create>"', 14),
    aimed("spec.json", '"alpha"', 2),  # an unknown key: refused
    aimed("spec.json", '"name": "digits', 10),
    aimed("model_card.json", '"final_test_accuracy": 0.9', 26),
    aimed("metrics.json", '"backdoor_success": NaN', 20),
    aimed("final_model.safetensors", '"spec_hash":"0x', 15),
    # fields that once no check read: each aimed at directly
    aimed("chain.json", '"org-01"', 6),
    aimed("chain.json", '"kind": "inprocess"', 9),
    aimed("chain.json", '"description": "in-process', 16),
    aimed("chain.json", '"contract_sources_sha256": "', 28),
    aimed("chain.json", '"tx_hash": "0x', 16),
    aimed("chain.json", '"timestamp": ', 22),
    aimed("chain.json", '"block_number": 2,', 16),
    aimed("model_card.json", '"chain": "in-process', 10),
    aimed("model_card.json", '"final_test_accuracy": 0.', 39),
    aimed("model_card.json", '"epsilon_spent": 0.0', 19),
    aimed("MODEL_CARD.md", "# Model card: digits", 15),
    aimed("MODEL_CARD.md", "- Quorum 2", 9),
    aimed("MODEL_CARD.md", "- Data: digits", 9),
    aimed("MODEL_CARD.md", "(in-process", 2),
    aimed("MODEL_CARD.md", "holds float32", 6),
]


def position(data: bytes, kind: str, how: str) -> int:
    mode, i, rest = how.split("/", 2)
    if mode == "at":
        found = data.find(rest.encode())
        assert found >= 0, f"{rest!r} is not in {kind}"
        return found + int(i)
    return seeded(data, kind, mode, int(i), int(rest))


def names_file(finding: dict[str, Any], kind: str, clean: Clean) -> bool:
    text = f"{finding['artefact']} {finding['message']}"
    if kind.startswith("store:"):
        stem = clean.final_blob if kind == "store:final" else clean.update_blob
        return "blob" in finding["artefact"] and stem[:16] in text
    if kind == "chain.json" and finding["check"] in ("chain-export", "tx-decoding"):
        return True
    return kind in text


@pytest.mark.parametrize(("kind", "how"), SEEDED + AIMED)
def test_a_flipped_byte_is_caught_refused_or_admitted_uncovered(
    clean: Clean, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, how: str
) -> None:
    copy = Path(shutil.copytree(clean.run, tmp_path / "run"))
    path = copy / target(clean, kind).relative_to(clean.run)
    data = bytearray(path.read_bytes())
    p = position(bytes(data), kind, how)
    was = bytes(data[p : p + 1])
    data[p] ^= 0x01
    path.write_bytes(bytes(data))
    flip = f"{kind} byte {p}: {was!r} -> {bytes(data[p : p + 1])!r}"
    capsys.readouterr()
    code = main(["audit", str(copy), "--quiet"])
    err = capsys.readouterr().err
    if code == 2:  # refused as unreadable input
        assert not (copy / "audit.json").exists()
        assert len(err.strip().splitlines()) == 1, f"{flip}: {err}"
        return
    report = json.loads((copy / "audit.json").read_text())
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    if code == 1:  # detected: some error must name the file
        assert any(names_file(f, kind, clean) for f in errors), f"{flip}: no error names it: {errors}"
        return
    assert code == 0 and report["ok"] and errors == [], (flip, code)
    assert kind in report["not_covered"], f"{flip} passed the audit, and {kind} is not listed as not covered"
