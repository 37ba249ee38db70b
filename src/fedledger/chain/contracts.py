"""Typed clients for the coordinator, the data registry and the reward token, over any `Chain`.

Method names mirror the contract's functions one to one, and event names are
the contract's, so the contract, this client, the CLI and the docs use one
name per concept. This module is the one place callers import them from, and it
deploys the three together; each client lives in the module of its purpose:
`types.py` (values), `contract.py` (the base, token and registry), `coordinator.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from fedledger.chain.base import Chain
from fedledger.chain.contract import Contract, DataRegistry, RewardToken, Sampler
from fedledger.chain.coordinator import Coordinator
from fedledger.chain.optimistic import Disputes, Optimistic
from fedledger.chain.types import (
    SCORE_ONE,
    SCORES_PER_WORD,
    Event,
    JobParams,
    JobState,
    Phase,
    Reputation,
    RoundResult,
    RoundStatus,
    TrainerState,
    flag_mask,
    jsonable,
    pack_scores,
    unpack_scores,
)

__all__ = [
    "SCORES_PER_WORD",
    "SCORE_ONE",
    "Contract",
    "Coordinator",
    "DataRegistry",
    "Deployment",
    "Disputes",
    "Event",
    "JobParams",
    "JobState",
    "Optimistic",
    "Phase",
    "Reputation",
    "RewardToken",
    "RoundResult",
    "RoundStatus",
    "Sampler",
    "TrainerState",
    "deploy_contracts",
    "flag_mask",
    "jsonable",
    "pack_scores",
    "unpack_scores",
]


@dataclass(frozen=True)
class Deployment:
    token: RewardToken
    coordinator: Coordinator
    data_registry: DataRegistry
    sampler: Sampler | None = None  # None: not known here (`Coordinator.sampler()` reads it from storage)
    #: optimistic verification (optimistic.vy) and its proofs (disputes.vy); None: not deployed
    optimistic: Optimistic | None = None
    disputes: Disputes | None = None

    @property
    def contracts(self) -> list[Contract]:
        """Every contract of the deployment, as a chain export lists them."""
        found: list[Contract] = [self.coordinator, self.data_registry, self.token]
        extra = (self.sampler, self.optimistic, self.disputes)
        return found + [c for c in extra if c is not None]


def deploy_contracts(chain: Chain, deployer: LocalAccount) -> Deployment:
    """Deploys a fresh reward token (deployer is minter), data registry, sampler and coordinator,
    then disputes.vy and optimistic.vy for jobs that delegate their verification.

    The registry and the sampler go first: the coordinator's constructor binds them. The two
    optimistic contracts come last, so the coordinator's address is the one it always had.
    """
    token = RewardToken.deploy(chain, deployer, "fedledger reward", "FED")
    registry = DataRegistry.deploy(chain, deployer)
    sampler = Sampler.deploy(chain, deployer)
    assert isinstance(registry, DataRegistry) and isinstance(sampler, Sampler)
    coordinator = Coordinator.deploy(chain, deployer, registry.address, sampler.address)
    assert isinstance(token, RewardToken) and isinstance(coordinator, Coordinator)
    optimistic, disputes = Optimistic.deploy_with_disputes(chain, deployer, coordinator.address)
    return Deployment(
        token=token,
        coordinator=coordinator,
        data_registry=registry,
        sampler=sampler,
        optimistic=optimistic,
        disputes=disputes,
    )
