"""The sponsor: funds the reward pool and opens the job on chain."""

from __future__ import annotations

import time
from collections.abc import Sequence

from eth_account.signers.local import LocalAccount

from fedledger.chain.base import Receipt
from fedledger.chain.contracts import Coordinator, Deployment, JobParams, Phase
from fedledger.errors import ChainError, TransactionReverted
from fedledger.spec import JobSpec


def job_params(
    spec: JobSpec,
    *,
    token: str,
    initial_model: bytes,
    committee: Sequence[str],
    allowlist: Sequence[str] = (),
) -> JobParams:
    """The on-chain half of a spec; the rest is bound by `spec_hash`.

    In optimistic mode `committee` is the optimistic contract alone and the quorum is 1: the
    coordinator finalises what that contract proposes (roles/optimistic.py).
    """
    return JobParams(
        token=token,
        spec_hash=spec.spec_hash(),
        initial_model=initial_model,
        rounds=spec.chain_rounds,
        min_commits=spec.effective_min_commits,
        quorum=1 if spec.optimistic else spec.effective_quorum,
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
    """Approves the pool and creates the job; returns (job id, receipt).

    An optimistic-mode job's committee is the deployment's optimistic contract, whatever
    `committee` says; the sponsor then delegates it (`roles.optimistic.delegate_job`).
    """
    if spec.optimistic:
        if deployment.optimistic is None:
            raise ChainError(
                "verification=optimistic needs the optimistic contract, and this deployment has none"
            )
        committee = [deployment.optimistic.address]
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


def start_draw(
    coordinator: Coordinator,
    sponsor: LocalAccount,
    job: int,
    *,
    enrolled: int,
    timeout: float,
    poll: float = 0.2,
) -> tuple[int, bool]:
    """Draws a sampling job's first round once `enrolled` trainers have enrolled: (round, drawn now).

    Round 1 opens as the job is created, before any node could enrol, so the sampler draws
    it only when the sponsor says the consortium is in (`sampler.start`); enrolments after
    that count from round 2. Waiting for the whole consortium gives every organisation a
    chance in round 1; without the start, round 1 fails on its window. False: the open
    round was already drawn (a second call is harmless).
    """
    sampler = coordinator.sampler()
    if sampler is None:
        raise ChainError(f"coordinator {coordinator.address} has no sampler bound")
    config = coordinator.job_config(job)
    if not (int(config["clients_per_round"]) or int(config["validators_per_round"])):
        raise ChainError(f"job {job} samples nobody: there is no draw to start")
    deadline = time.monotonic() + timeout
    while sampler.enrolled(job) < enrolled:
        if time.monotonic() > deadline:
            raise ChainError(
                f"only {sampler.enrolled(job)} of {enrolled} trainers enrolled in job {job} "
                f"within {timeout:g} s: start their nodes, or give --enrolled fewer"
            )
        time.sleep(poll)
    state = coordinator.job_state(job)
    if state.phase != Phase.OPEN:
        raise ChainError(f"job {job} is {state.phase.name}, not OPEN: there is no round to draw")
    try:
        sampler.start(sponsor, job)
    except TransactionReverted as exc:
        if exc.reason == "sampler: round already drawn":
            return state.round, False
        raise ChainError(f"cannot draw job {job}'s round {state.round}: {exc.reason}") from None
    return state.round, True
