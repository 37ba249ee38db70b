"""One organisation's long-running process: its trainer and validator roles, driven by chain state.

The node keeps no state of its own that matters: every pass reads the job from the chain
and does what is missing — register, train and commit if it has not committed this round,
compute and propose if it is a validator that has not proposed, advance an expired phase,
withdraw at the end. So it can be killed and restarted at any moment: it resumes from the
chain with no double commit (the contract would refuse one anyway) and no lost work.
"""

from __future__ import annotations

import contextlib
import logging
import time
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fedledger.chain.contracts import Coordinator, Phase
from fedledger.errors import ChainUnavailable, SpecError, TransactionReverted
from fedledger.roles.job import JobReader
from fedledger.roles.keys import load_key
from fedledger.roles.trainer import Trainer
from fedledger.roles.validator import Validator
from fedledger.spec import JobSpec
from fedledger.store.http import open_store
from fedledger.store.peers import PeerStore
from fedledger.training.consortium import build_consortium

log = logging.getLogger("fedledger.node")


class NodeConfig(BaseModel):
    """A node's TOML file; field names are the keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpc: str = Field(description="JSON-RPC URL of the chain")
    coordinator: str = Field(description="coordinator contract address")
    job: int = Field(ge=1, description="job id")
    key: str = Field(description="dev:N or an encrypted keystore file ($FEDLEDGER_PASSPHRASE)")
    spec: Path = Field(description="the job's spec file; must hash to the job's on-chain spec hash")
    organisation: int = Field(
        ge=1, description="which share of the spec's data split is this node's (1-based)"
    )
    trainer: bool = True
    validator: bool = True
    store: str = Field(description="own blob store: a directory or the URL of its `store serve`")
    peers: list[str] = Field(default_factory=list, description="other organisations' stores to read from")
    poll_seconds: float = Field(0.2, gt=0)

    @classmethod
    def load(cls, path: str | Path) -> NodeConfig:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SpecError("node config", f"cannot read {p}: {exc}") from None
        try:
            cfg = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise SpecError(f"node config: {'.'.join(map(str, err['loc']))}", err["msg"]) from None
        if not cfg.spec.is_absolute():
            cfg = cfg.model_copy(update={"spec": p.parent / cfg.spec})
        return cfg


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.coordinator = Coordinator.connect(config.rpc, config.coordinator)
        self.coordinator.check_job(config.job)
        self.chain = self.coordinator.chain
        self.account = load_key(config.key)
        self.spec = JobSpec.load(config.spec)
        on_chain = bytes(self.coordinator.job_config(config.job)["spec_hash"])
        if self.spec.spec_hash() != on_chain:
            raise SpecError(
                "spec", f"{config.spec} does not hash to job {config.job}'s spec hash 0x{on_chain.hex()}"
            )
        if config.organisation > self.spec.trainers:
            raise SpecError("organisation", f"{config.organisation} is outside 1..{self.spec.trainers}")
        self.name = f"org-{config.organisation:02d}"
        self.store = PeerStore(open_store(config.store, self.account), [open_store(p) for p in config.peers])
        consortium = build_consortium(self.spec)
        self.trainer = Trainer(
            name=self.name,
            account=self.account,
            coordinator=self.coordinator,
            store=self.store,
            client=consortium.clients[config.organisation - 1],
            names=consortium.names,
            spec=self.spec,
            job_id=config.job,
        )
        self.validator = Validator(
            name=self.name,
            account=self.account,
            coordinator=self.coordinator,
            store=self.store,
            spec=self.spec,
            job_id=config.job,
        )
        self.reader = JobReader(self.coordinator, config.job)
        self.proposed: set[int] = set()

    # -- one pass ----------------------------------------------------------------------------

    def ensure_registered(self) -> None:
        job, me = self.config.job, self.account.address
        t = self.coordinator.trainer_state(job, me)
        if t.registered or t.ejected or self.coordinator.is_validator(job, me):
            return
        stake = int(self.coordinator.job_config(job)["stake"])
        if stake:
            from fedledger.chain.contracts import RewardToken

            RewardToken(self.chain, self.coordinator.job_config(job)["token"]).approve(
                self.account, self.coordinator.address, stake
            )
        self.coordinator.register(self.account, job, as_trainer=self.config.trainer)
        log.info("%s: registered for job %d (stake %d)", self.name, job, stake)

    def step(self) -> bool:
        """Does what the job's current state asks of this node; False once the job has ended."""
        job = self.config.job
        s = self.coordinator.job_state(job)
        if s.phase in (Phase.DONE, Phase.ABORTED):
            self.finish()
            return False
        expired = self.chain.timestamp() > s.deadline
        if s.phase == Phase.OPEN:
            last = self.coordinator.trainer_state(job, self.account.address).last_round
            if self.config.trainer and last != s.round and not self.trainer.ejected and not expired:
                result = self.trainer.run_round(s.round, self.coordinator.global_model(job))
                log.info(
                    "%s: round %d: committed %s",
                    self.name,
                    s.round,
                    "nothing" if result.commitment is None else "0x" + result.commitment.hex()[:12],
                )
                return True
        elif (
            s.phase == Phase.AGGREGATING
            and s.round not in self.proposed
            and not expired
            and self.config.validator
            and self.coordinator.is_validator(job, self.account.address)
        ):
            global_q = self.store.get_tensors(self.coordinator.global_model(job))
            try:
                outcome, _ = self.validator.process_round(
                    round=s.round,
                    version=s.version,
                    global_model=global_q,
                    commits=self.reader.commits(s.round),
                    names={},
                )
                log.info("%s: round %d: proposed 0x%s", self.name, s.round, outcome.aggregate.hex()[:12])
            except TransactionReverted as exc:
                now = self.coordinator.job_state(job)
                moved_on = now.phase != Phase.AGGREGATING or now.round != s.round
                if exc.reason != "coordinator: already proposed" and not moved_on:
                    raise
                log.info("%s: round %d: decided before this proposal landed", self.name, s.round)
            self.proposed.add(s.round)
            return True
        if expired:
            with contextlib.suppress(TransactionReverted):  # another node may have advanced it first
                self.coordinator.advance(self.account, job)
        return True

    def finish(self) -> None:
        job, me = self.config.job, self.account.address
        if self.coordinator.claimable(job, me) or self.coordinator.stake_of(job, me):
            self.coordinator.withdraw(self.account, job)
            log.info("%s: job %d ended; rewards and stake withdrawn", self.name, job)

    def run(self, max_seconds: float | None = None) -> None:
        """Steps until the job ends; an unreachable node is retried with backoff, never fatal."""
        start, backoff = time.monotonic(), self.config.poll_seconds
        self.ensure_registered()
        while max_seconds is None or time.monotonic() - start < max_seconds:
            try:
                if not self.step():
                    return
                backoff = self.config.poll_seconds
            except ChainUnavailable as exc:
                log.warning("%s: chain unreachable (%s); retrying in %.1f s", self.name, exc, backoff)
                backoff = min(backoff * 2, 30.0)
            time.sleep(backoff)
