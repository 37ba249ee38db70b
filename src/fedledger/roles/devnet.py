"""A local development network: a real anvil node with the contracts deployed and accounts funded.

`fedledger devnet` runs this so that organisations' nodes, `fedledger job` and
`fedledger store serve` have a chain to talk to on one machine. The accounts are the
standard development keys (public knowledge: never use them on a real network).
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from fedledger.chain.anvil import AnvilNode
from fedledger.chain.base import dev_accounts
from fedledger.chain.contracts import Deployment, deploy_contracts
from fedledger.chain.rpc import RpcChain


@dataclass
class Devnet:
    node: AnvilNode
    chain: RpcChain
    deployment: Deployment
    accounts: list[LocalAccount]  # accounts[0] deployed the contracts and mints the token
    funds: int  # reward tokens minted to each account

    def stop(self) -> None:
        self.node.stop()

    def describe(self) -> dict[str, object]:
        return {
            "rpc": self.node.url,
            "chain_id": self.chain.chain_id,
            "coordinator": self.deployment.coordinator.address,
            "token": self.deployment.token.address,
            "data_registry": self.deployment.data_registry.address,
            # optimistic-mode jobs: `fedledger job create --optimistic` delegates to it
            "optimistic": self.deployment.optimistic.address if self.deployment.optimistic else None,
            "accounts": [a.address for a in self.accounts],
            "funds_per_account": str(self.funds),
        }


def start_devnet(
    *,
    port: int | None = None,
    accounts: int = 10,
    funds: int = 10**24,
    block_time: int | None = None,
    host: str = "127.0.0.1",
) -> Devnet:
    """Starts anvil, deploys token + coordinator from account 0, and mints `funds` to each account.

    `block_time` mines a block every that many seconds instead of one per transaction, as a
    real chain does; nodes that wait for confirmations need it, since with automine no block
    follows the last transaction. `host` is where anvil listens (0.0.0.0 for other hosts).
    """
    node = AnvilNode(port=port, accounts=max(accounts, 1), block_time=block_time, host=host)
    try:
        chain = RpcChain(node.url)
        keys = dev_accounts(accounts)
        deployment = deploy_contracts(chain, keys[0])
        for acct in keys:
            deployment.token.mint(keys[0], acct.address, funds)
    except BaseException:
        node.stop()
        raise
    return Devnet(node=node, chain=chain, deployment=deployment, accounts=keys, funds=funds)
