"""Contract tests run on the in-process chain only: fast, deterministic timestamps."""

from __future__ import annotations

import pytest
from coordinator_harness import World
from eth_account.signers.local import LocalAccount

from fedledger.chain.base import Chain
from fedledger.chain.contracts import Deployment
from fedledger.chain.inprocess import InProcessChain


@pytest.fixture
def chain() -> Chain:
    """Overrides the two-backend fixture of tests/conftest.py: in-process only here."""
    return InProcessChain()


@pytest.fixture
def world(chain: Chain, deployed: Deployment, accounts: list[LocalAccount]) -> World:
    return World(chain=chain, d=deployed, accounts=accounts)
