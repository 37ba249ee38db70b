"""Shared fixtures: chains (in-process and anvil), dev accounts, fresh deployments.

The `chain` fixture is parametrised over both backends, so any test that takes
it runs once in-process and once against a real anvil node. The Chain interface
has no snapshot/revert, so every test gets a fresh deployment (cheap) and, on
anvil, a fresh `RpcChain` client on the one session-wide node.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account.signers.local import LocalAccount

from fedledger.chain.anvil import AnvilNode, find_anvil
from fedledger.chain.base import Chain, dev_accounts
from fedledger.chain.contracts import Deployment, deploy_contracts
from fedledger.chain.inprocess import InProcessChain
from fedledger.chain.rpc import RpcChain

#: modules whose tests take 20 s to 2 min each, longest first: started before the many short tests,
#: so that two workers finish together instead of one idling while the other runs a long tail
LONG_FIRST = (
    "test_coordinator_properties.py",
    "test_robustness_grid.py",
    "test_node_faults.py",
    "test_node_privacy.py",
    "test_nodes.py",
)

N_ACCOUNTS = 30
#: tokens minted to every dev account by the `deployed` fixture
INITIAL_BALANCE = 10**24
MAX_UINT256 = 2**256 - 1


@pytest.fixture(scope="session")
def anvil() -> Iterator[AnvilNode]:
    """One anvil node for the whole session (CI installs it with `npm ci`: never skipped)."""
    if find_anvil() is None:
        pytest.fail("anvil not installed: run `npm ci`", pytrace=False)
    node = AnvilNode(accounts=N_ACCOUNTS)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def accounts() -> list[LocalAccount]:
    """The 30 standard dev accounts; accounts[0] deploys and mints."""
    return dev_accounts(N_ACCOUNTS)


@pytest.fixture(params=["inprocess", pytest.param("anvil", marks=pytest.mark.anvil)])
def chain(request: pytest.FixtureRequest) -> Chain:
    """A chain per test: a fresh in-process EVM, or a fresh client on the session's anvil."""
    if request.param == "inprocess":
        return InProcessChain()
    node: AnvilNode = request.getfixturevalue("anvil")
    return RpcChain(node.url)


def fund(
    deployment: Deployment,
    minter: LocalAccount,
    holders: list[LocalAccount],
    amount: int = INITIAL_BALANCE,
) -> None:
    """Mints `amount` to every holder and approves the coordinator for all of it (max allowance)."""
    for a in holders:
        deployment.token.mint(minter, a.address, amount)
        deployment.token.approve(a, deployment.coordinator.address, MAX_UINT256)


@pytest.fixture
def deployed(chain: Chain, accounts: list[LocalAccount]) -> Deployment:
    """Fresh token + coordinator; every account holds INITIAL_BALANCE, coordinator approved."""
    deployment = deploy_contracts(chain, accounts[0])
    fund(deployment, accounts[0], accounts)
    return deployment


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)

    items.sort(key=rank)  # stable: the order within a module and among the rest is kept
