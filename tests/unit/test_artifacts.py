"""The shipped compiled contracts are exactly what the sources compile to."""

from __future__ import annotations

import pytest

from fedledger.chain import artifacts


@pytest.mark.parametrize("name", artifacts.CONTRACTS)
def test_shipped_artifact_matches_a_fresh_compile(name: str) -> None:
    shipped = artifacts._shipped(name)
    assert shipped is not None, f"run `python -m fedledger.chain.artifacts` to build {name}.json"
    fresh = artifacts.compile_contract(name)
    assert shipped.source_hash == fresh.source_hash, (
        "contracts/ changed since the artifacts were built: run `python -m fedledger.chain.artifacts`"
    )
    assert shipped.bytecode == fresh.bytecode
    assert shipped.abi == fresh.abi


def test_stale_artifact_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    artifacts.load_artifact.cache_clear()
    monkeypatch.setattr(artifacts, "sources_hash", lambda root=None: "edited")
    monkeypatch.setattr(
        artifacts, "compile_contract", lambda name: artifacts.Artifact(name, [], b"\x00", "edited")
    )
    try:
        assert artifacts.load_artifact("coordinator").bytecode == b"\x00"
    finally:
        artifacts.load_artifact.cache_clear()
