"""Helpers shared by the contract tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from fedledger.chain.base import Chain, Receipt
from fedledger.chain.contracts import Coordinator, Deployment, JobParams, RewardToken

MAX_UINT256 = 2**256 - 1
ZERO_ADDRESS = "0x" + "00" * 20
ZERO32 = b"\x00" * 32


def h(label: str) -> bytes:
    """A deterministic non-zero 32-byte commitment for a label."""
    return bytes(keccak(text=label))


SPEC = h("spec")
MODEL0 = h("model-0")


def addr_key(a: str) -> int:
    return int(a, 16)


def job_params(token: str, committee: list[str], **overrides: Any) -> JobParams:
    base: dict[str, Any] = dict(
        token=token,
        spec_hash=SPEC,
        initial_model=MODEL0,
        rounds=2,
        min_commits=2,
        quorum=2,
        commit_window=100,
        aggregate_window=50,
        max_failures=1,
        stake=1_000,
        reward_per_round=10_000,
        slash_bps=1_000,
        max_flags=2,
        committee=committee,
        allowlist=[],
    )
    base.update(overrides)
    return JobParams(**base)


def events(d: Deployment, receipt: Receipt) -> list[tuple[str, dict[str, Any]]]:
    """(name, args) of every coordinator and token event in the receipt, in log order."""
    out = []
    for log in receipt.logs:
        for c in (d.coordinator, d.token):
            ev = c.decode(log)
            if ev is not None:
                out.append((ev.name, ev.args))
    return out


def names(d: Deployment, receipt: Receipt) -> list[str]:
    return [n for n, _ in events(d, receipt)]


def only(d: Deployment, receipt: Receipt, name: str) -> dict[str, Any]:
    found = [a for n, a in events(d, receipt) if n == name]
    assert len(found) == 1, f"expected one {name}, got {names(d, receipt)}"
    return found[0]


@dataclass
class World:
    """A deployment with named roles: sponsor (minter), 3 committee validators, 6 trainers."""

    chain: Chain
    d: Deployment
    accounts: list[LocalAccount]
    sponsor: LocalAccount = field(init=False)
    validators: list[LocalAccount] = field(init=False)
    trainers: list[LocalAccount] = field(init=False)
    outsider: LocalAccount = field(init=False)

    def __post_init__(self) -> None:
        self.sponsor = self.accounts[0]
        self.validators = self.accounts[1:4]
        self.trainers = self.accounts[4:10]
        self.outsider = self.accounts[29]

    @property
    def coord(self) -> Coordinator:
        return self.d.coordinator

    @property
    def token(self) -> RewardToken:
        return self.d.token

    def params(self, **overrides: Any) -> JobParams:
        overrides.setdefault("committee", [v.address for v in self.validators])
        token = overrides.pop("token", self.token.address)
        return job_params(token, **overrides)

    def create(self, **overrides: Any) -> int:
        job_id, _ = self.coord.create_job(self.sponsor, self.params(**overrides))
        return job_id

    def job(self, n_trainers: int = 3, n_validators: int = 3, **overrides: Any) -> int:
        """Creates a job and registers the first `n_validators` and `n_trainers`."""
        job_id = self.create(**overrides)
        for v in self.validators[:n_validators]:
            self.coord.register(v, job_id, as_trainer=False)
        for t in self.trainers[:n_trainers]:
            self.coord.register(t, job_id, as_trainer=True)
        return job_id

    def commit(
        self, job_id: int, trainer: LocalAccount, examples: int = 10, label: str | None = None
    ) -> Receipt:
        rnd = self.coord.job_state(job_id).round
        return self.coord.commit(
            trainer, job_id, rnd, h(label or f"u:{job_id}:{rnd}:{trainer.address}"), examples
        )

    def finalize(
        self,
        job_id: int,
        aggregate: bytes | None = None,
        excluded: list[str] | None = None,
        validators: list[LocalAccount] | None = None,
        flagged: list[str] | None = None,
        scores: list[int] | None = None,
    ) -> Receipt:
        """Proposes the same result (and scores) from validators until quorum; returns the last receipt."""
        rnd = self.coord.job_state(job_id).round
        quorum = int(self.coord.job_config(job_id)["quorum"])
        agg = aggregate or h(f"agg:{job_id}:{rnd}")
        receipt = None
        for v in (validators or self.validators)[:quorum]:
            receipt = self.coord.propose(v, job_id, rnd, agg, excluded or [], flagged or [], scores or [])
        assert receipt is not None
        return receipt

    def expire(self, job_id: int) -> None:
        """Moves the clock past the current phase's deadline (the next block lands after it)."""
        deadline = self.coord.job_state(job_id).deadline
        now = self.chain.timestamp()
        if now <= deadline:
            self.chain.increase_time(deadline - now + 1)
