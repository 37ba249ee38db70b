"""Compiled contracts: ABI and bytecode, compiled from the Vyper sources on first use.

Compiling at run time (about 0.2 s a contract, cached for the process) instead of
shipping bytecode means the bytes deployed are always the sources in
`contracts/`; the pinned compiler version (vyper 0.4.3) makes them identical on
every machine, which the audit's re-execution relies on.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

CONTRACTS = ("coordinator", "reward_token")


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


@functools.cache
def load_artifact(name: str) -> Artifact:
    """Compiles `contracts/<name>.vy` (with its imported modules) once per process."""
    if name not in CONTRACTS:
        raise KeyError(f"unknown contract {name!r}; known: {', '.join(CONTRACTS)}")
    from vyper.compiler import compile_from_file_input
    from vyper.compiler.input_bundle import FileInput, FilesystemInputBundle

    root = contracts_dir()
    path = root / f"{name}.vy"
    source = path.read_text()
    file_input = FileInput(source_id=0, contents=source, path=path, resolved_path=path)
    out = compile_from_file_input(
        file_input,
        input_bundle=FilesystemInputBundle([root]),
        output_formats=["abi", "bytecode"],
    )
    digest = hashlib.sha256()
    for src in sorted(root.glob("*.vy")):
        digest.update(src.read_bytes())
    return Artifact(
        name=name,
        abi=out["abi"],
        bytecode=bytes.fromhex(out["bytecode"].removeprefix("0x")),
        source_hash=digest.hexdigest(),
    )
