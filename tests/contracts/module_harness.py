"""Loads a test contract that initializes some of the coordinator's modules on its own.

The modules import one another by bare name (`import jobs`), as coordinator.vy compiles
them from contracts/; a harness in tests/contracts compiles with contracts/ on boa's search
path, which is restored afterwards so other tests resolve their imports as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boa
from boa import interpret

from fedledger.chain.artifacts import contracts_dir

HERE = Path(__file__).resolve().parent


def load(harness: str, *args: Any) -> Any:
    """Deploys tests/contracts/<harness>.vy with the coordinator's modules importable."""
    previous = interpret._search_path
    interpret.set_search_paths([str(contracts_dir()), str(HERE)])
    try:
        return boa.load(str(HERE / f"{harness}.vy"), *args)
    finally:
        interpret._search_path = previous
