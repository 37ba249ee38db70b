"""Compiled contracts: ABI and bytecode, shipped as JSON beside this file.

Compiling the Vyper sources costs ~3 s per process, which a simulation would
pay on every run; so `python -m fedledger.chain.artifacts` compiles them once
(pinned vyper 0.4.3) into `compiled/*.json`, each recording the sha256 of the
sources it came from. At load time a stale artifact (sources edited since) is
never used: the sources are compiled instead. A test checks that the shipped
JSON equals a fresh compile, so CI catches a forgotten rebuild. Identical
bytecode everywhere is what the audit's re-execution relies on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

CONTRACTS = ("coordinator", "data_registry", "reward_token", "disputes", "sampler", "optimistic")
COMPILED_DIR = Path(__file__).resolve().parent / "compiled"


def contracts_dir() -> Path:
    """Where the Vyper sources are: inside the installed wheel, or the repo's `contracts/`."""
    packaged = Path(str(resources.files("fedledger"))) / "contracts"
    if (packaged / "coordinator.vy").exists():
        return packaged
    return Path(__file__).resolve().parents[3] / "contracts"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    source_hash: str  # sha256 of the concatenated sources, recorded in run exports


def sources_hash(root: Path | None = None) -> str:
    """sha256 over every contract source (a contract's bytecode depends on the modules it imports)."""
    root = root or contracts_dir()
    digest = hashlib.sha256()
    for src in sorted(root.glob("*.vy")):
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
    return digest.hexdigest()


def compile_contract(name: str) -> Artifact:
    """Compiles `contracts/<name>.vy` with the pinned compiler."""
    from vyper.compiler import compile_from_file_input
    from vyper.compiler.input_bundle import FileInput, FilesystemInputBundle

    root = contracts_dir()
    path = root / f"{name}.vy"
    file_input = FileInput(source_id=0, contents=path.read_text(), path=path, resolved_path=path)
    out = compile_from_file_input(
        file_input,
        input_bundle=FilesystemInputBundle([root]),
        output_formats=["abi", "bytecode"],
    )
    return Artifact(
        name=name,
        abi=out["abi"],
        bytecode=bytes.fromhex(out["bytecode"].removeprefix("0x")),
        source_hash=sources_hash(root),
    )


def _shipped(name: str) -> Artifact | None:
    path = COMPILED_DIR / f"{name}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return Artifact(
        name=name, abi=data["abi"], bytecode=bytes.fromhex(data["bytecode"]), source_hash=data["source_hash"]
    )


@functools.cache
def load_artifact(name: str) -> Artifact:
    """The shipped artifact if it matches the sources, else a fresh compile."""
    if name not in CONTRACTS:
        raise KeyError(f"unknown contract {name!r}; known: {', '.join(CONTRACTS)}")
    shipped = _shipped(name)
    root = contracts_dir()
    if shipped is not None and (not root.exists() or shipped.source_hash == sources_hash(root)):
        return shipped
    return compile_contract(name)


def write_artifacts() -> list[Path]:
    """Compiles every contract into `compiled/<name>.json`."""
    import vyper

    COMPILED_DIR.mkdir(exist_ok=True)
    written = []
    for name in CONTRACTS:
        a = compile_contract(name)
        path = COMPILED_DIR / f"{name}.json"
        data = {
            "name": name,
            "vyper": vyper.__version__,
            "source_hash": a.source_hash,
            "abi": a.abi,
            "bytecode": a.bytecode.hex(),
        }
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_artifacts():
        print(f"wrote {p}")
    sys.exit(0)
