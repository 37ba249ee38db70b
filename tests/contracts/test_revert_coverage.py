"""Meta-test: every revert string in contracts/*.vy is asserted by some contract test.

A new `assert ..., "module: reason"` without a test that triggers it fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODULES = "coordinator|data_registry|reward_token|packing|disputes|sampler|optimistic"
REVERT = re.compile(r'assert\s[^\n]*?,\s*"((?:' + MODULES + r'): [^"]+)"')


def _revert_strings() -> set[str]:
    found: set[str] = set()
    for src in sorted((ROOT / "contracts").glob("*.vy")):
        found |= set(REVERT.findall(src.read_text()))
    return found


def test_revert_strings_are_found():
    strings = _revert_strings()
    # sanity: the grep works (these two exist today)
    assert "coordinator: already committed" in strings
    assert "reward_token: insufficient balance" in strings
    assert len(strings) >= 40


def test_every_revert_string_is_tested():
    tests = "\n".join(p.read_text() for p in HERE.rglob("*.py") if p.resolve() != Path(__file__).resolve())
    missing = sorted(s for s in _revert_strings() if f'"{s}"' not in tests)
    assert not missing, f"revert strings without a test in tests/contracts: {missing}"
