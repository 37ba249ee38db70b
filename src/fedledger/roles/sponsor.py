"""The sponsor: funds the reward pool and opens the job on chain."""

from __future__ import annotations

from collections.abc import Sequence

from eth_account.signers.local import LocalAccount

from fedledger.chain.base import Receipt
from fedledger.chain.contracts import Deployment, JobParams
from fedledger.spec import JobSpec


def job_params(
    spec: JobSpec,
    *,
    token: str,
    initial_model: bytes,
    committee: Sequence[str],
    allowlist: Sequence[str] = (),
) -> JobParams:
    """The on-chain half of a spec; the rest is bound by `spec_hash`."""
    return JobParams(
        token=token,
        spec_hash=spec.spec_hash(),
        initial_model=initial_model,
        rounds=spec.chain_rounds,
        min_commits=spec.effective_min_commits,
        quorum=spec.effective_quorum,
        commit_window=spec.commit_window_s,
        aggregate_window=spec.aggregate_window_s,
        max_failures=spec.max_failures,
        stake=spec.stake,
        reward_per_round=spec.reward_per_round,
        slash_bps=spec.slash_bps,
        max_flags=spec.max_flags,
        scored=spec.scored,
        validator_fee_bps=spec.validator_fee_bps,
        score_tolerance=spec.score_tolerance_units,
        min_reputation=spec.min_reputation_units,
        committee=[] if spec.validators_per_round else list(committee),
        allowlist=list(allowlist),
        clients_per_round=spec.clients_per_round,
        validators_per_round=spec.validators_per_round,
    )


def create_job(
    *,
    deployment: Deployment,
    sponsor: LocalAccount,
    spec: JobSpec,
    initial_model: bytes,
    committee: Sequence[str],
    allowlist: Sequence[str] = (),
) -> tuple[int, Receipt]:
    """Approves the pool and creates the job; returns (job id, receipt)."""
    pool = spec.reward_per_round * spec.chain_rounds
    if pool:
        deployment.token.approve(sponsor, deployment.coordinator.address, pool)
    params = job_params(
        spec,
        token=deployment.token.address,
        initial_model=initial_model,
        committee=committee,
        allowlist=allowlist,
    )
    return deployment.coordinator.create_job(sponsor, params)
