"""One organisation's long-running process: its trainer and validator roles, driven by chain state.

The node keeps no state of its own that matters: every pass reads the job from the chain
and does what is missing — register, train and commit if it has not committed this round,
compute and propose if it is a validator that has not proposed, advance an expired phase,
withdraw at the end. So it can be killed and restarted at any moment: it resumes from the
chain with no double commit (the contract would refuse one anyway). What it does keep in
memory only saves work: an update trained but not yet committed when the chain or its store
went away is committed as it is once they are back, not trained again.

On a chain that can reorganise, `confirmations` makes the node act only on state that many
blocks deep: it reads the contract at `head - confirmations`, so an event that a reorg
drops is never acted on. Transactions still go to the head.
"""

from __future__ import annotations

import contextlib
import logging
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fedledger.chain.contracts import Coordinator, JobState, Phase, RewardToken
from fedledger.codec.commitment import commitment_hex
from fedledger.errors import ChainError, ChainUnavailable, SpecError, StoreError, TransactionReverted
from fedledger.roles.job import JobReader
from fedledger.roles.keys import load_key
from fedledger.spec import JobSpec
from fedledger.store.cached import VerifiedCache
from fedledger.store.http import open_store
from fedledger.store.peers import PeerStore

if TYPE_CHECKING:
    from fedledger.data.commitment import Opening
    from fedledger.roles.secure import SecureInputs
    from fedledger.roles.trainer import PreparedUpdate

log = logging.getLogger("fedledger.node")

#: enough for the costliest `advance` (closing a commit phase or failing a round) with room
#: to spare; sent without estimation, see `Coordinator.advance`
ADVANCE_GAS = 400_000


class DataConfig(BaseModel):
    """A node's `[data]` table: this organisation's own source, which never leaves its process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="a CSV / Parquet file, an image folder, or a SQLAlchemy database URL")
    query: str = Field("", description="database sources: the SELECT that yields the rows")
    opening: Path | None = Field(
        None,
        description="where the node keeps its data opening, the salt of its data commitment "
        "(PRIVATE; default: beside the config, <config>.job<N>.opening.json)",
    )


class NodeConfig(BaseModel):
    """A node's TOML file; field names are the keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpc: str = Field(description="JSON-RPC URL of the chain")
    chain_id: int | None = Field(None, description="refuse a node whose chain id differs (recommended)")
    coordinator: str = Field(description="coordinator contract address")
    job: int = Field(ge=1, description="job id")
    key: str = Field(description="dev:N or an encrypted keystore file ($FEDLEDGER_PASSPHRASE)")
    spec: Path = Field(description="the job's spec file; must hash to the job's on-chain spec hash")
    organisation: int = Field(
        0, ge=0, description="which share of the spec's data split is this node's (1-based)"
    )
    root: bool = Field(
        False,
        description="FLTrust: this is the sponsor's node and trains the root update on the root dataset",
    )
    trainer: bool = True
    validator: bool = True
    store: str = Field(description="own blob store: a directory or the URL of its `store serve`")
    peers: list[str] = Field(default_factory=list, description="other organisations' stores to read from")
    data: DataConfig | None = Field(None, description="own-data jobs: this organisation's source")
    poll_seconds: float = Field(0.2, gt=0)
    confirmations: int = Field(0, ge=0, le=1000, description="blocks an event must be deep before acting")
    speculate: bool = Field(
        True, description="train the next round on this validator's own aggregate while the quorum forms"
    )
    availability_wait_s: float = Field(
        30.0, ge=0, description="how long a validator waits for a committed blob before excluding it"
    )

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
        if cfg.data is not None:
            own = cfg.data
            if "://" not in own.source and not Path(own.source).is_absolute():
                own = own.model_copy(update={"source": str(p.parent / own.source)})
            opening = own.opening or Path(f"{p.stem}.job{cfg.job}.opening.json")
            own = own.model_copy(update={"opening": p.parent / opening})
            cfg = cfg.model_copy(update={"data": own})
        return cfg


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.coordinator = Coordinator.connect(config.rpc, config.coordinator)
        self.chain = self.coordinator.chain
        if config.chain_id is not None and self.chain.chain_id != config.chain_id:
            raise ChainError(
                f"the node at {config.rpc} serves chain id {self.chain.chain_id}, but the config "
                f"expects {config.chain_id}: wrong `rpc` URL, or fix `chain_id`"
            )
        self.coordinator.check_job(config.job)
        self.account = load_key(config.key)
        self.spec = JobSpec.load(config.spec)
        job_config = self.coordinator.job_config(config.job)
        on_chain = bytes(job_config["spec_hash"])
        if self.spec.spec_hash() != on_chain:
            raise SpecError(
                "spec", f"{config.spec} does not hash to job {config.job}'s spec hash 0x{on_chain.hex()}"
            )
        fltrust = self.spec.aggregation == "fltrust"
        # FLTrust trusts the update its sponsor commits from the root dataset
        self.sponsor = str(job_config["sponsor"]) if fltrust else ""
        if config.root:
            if not fltrust:
                raise SpecError(
                    "root",
                    f"only an FLTrust job has a root update; job {config.job} aggregates with "
                    f"{self.spec.aggregation}",
                )
            if self.sponsor.lower() != self.account.address.lower():
                raise ChainError(
                    f"FLTrust trusts only the root update of job {config.job}'s sponsor {self.sponsor}; "
                    f"this node's key is {self.account.address}: use the sponsor's key"
                )
            self.name = "sponsor"
        elif not 1 <= config.organisation <= self.spec.trainers:
            raise SpecError(
                "organisation",
                f"{config.organisation or 'missing'}: give this node's share of the data split, "
                f"1..{self.spec.trainers} (or `root = true` on an FLTrust sponsor's node)",
            )
        else:
            self.name = f"org-{config.organisation:02d}"
        own = open_store(config.store, self.account)
        try:
            own.has(b"\0" * 32)
        except StoreError as exc:
            raise StoreError(
                f"this organisation's own store is unusable ({exc}); start its "
                "`fedledger store serve` or fix `store` in the node config"
            ) from None
        # every read is hash-checked once; the cache keeps the verified bytes for the round
        self.store = VerifiedCache(PeerStore(own, [open_store(p) for p in config.peers]))
        # the heavy imports (torch, the datasets) come after the cheap checks, so a mistake in
        # the config is reported in a second, not after loading a deep-learning stack
        from fedledger.data.sources import DataSource
        from fedledger.roles.node_roles import build_roles

        self.trainer, self.validator, self.local = build_roles(
            job=config.job,
            organisation=config.organisation,
            root=config.root,
            data=DataSource(config.data.source, config.data.query) if config.data else None,
            spec=self.spec,
            name=self.name,
            account=self.account,
            coordinator=self.coordinator,
            store=self.store,
            sponsor=self.sponsor,
        )
        self.opening: Opening | None = None
        if self.local is not None and config.trainer and config.data is not None:
            from fedledger.roles.data_commitment import node_opening

            # before registering: a source that changed since its commitment stops the node here
            self.opening = node_opening(
                config.data.opening or Path(f"{self.name}.job{config.job}.opening.json"),
                self.local.data,
                self.spec,
                organisation=self.name,
                source=DataSource(config.data.source, config.data.query),
            )
        self.reader = JobReader(self.coordinator, config.job, confirmations=config.confirmations)
        self.proposed: set[int] = set()
        self.pending: PreparedUpdate | None = None  # trained, not yet committed
        self.committed = 0  # the last round this process committed to
        self.computed: dict[int, bytes] = {}  # round -> the aggregate this validator computed
        self.fetched: set[bytes] = set()  # this round's updates already in the verified cache
        self.worked = False  # whether the last step did something (then the next comes at once)
        self.waiting_since: dict[int, float] = {}  # round -> when this validator first saw it aggregating
        self.reported: set[int] = set()  # rounds whose outcome has been logged
        self.revealed: set[int] = set()  # secure aggregation: rounds this trainer revealed for
        self.holding: set[int] = set()  # secure aggregation: rounds whose first commit it held back
        self.trains = config.trainer  # False once a secure job's key directory turned us away

    # -- the chain as this node may act on it ------------------------------------------------

    def view(self) -> Coordinator:
        """The coordinator as of `confirmations` blocks below the head."""
        if not self.config.confirmations:
            return self.coordinator
        return self.coordinator.at(max(self.chain.block_number() - self.config.confirmations, 0))

    # -- one pass ----------------------------------------------------------------------------

    def ensure_registered(self) -> None:
        job, me = self.config.job, self.account.address
        t = self.coordinator.trainer_state(job, me)
        if t.registered or t.ejected:
            return
        if self.coordinator.is_validator(job, me):
            self.trains = False  # joined as a validator only (by config, or turned away as a trainer)
            return
        cfg = self.coordinator.job_config(job)
        stake = int(cfg["stake"])
        try:
            if stake:
                token = RewardToken(self.chain, cfg["token"])
                balance = token.balance_of(me)
                if balance < stake:
                    raise ChainError(
                        f"{me} cannot stake for job {job}: it holds {balance} of the {stake} token units "
                        f"needed at {cfg['token']}; fund the account first"
                    )
                token.approve(self.account, self.coordinator.address, stake)
            if self.config.trainer and self.spec.secure:
                self.register_with_key()
            else:
                self.coordinator.register(self.account, job, as_trainer=self.config.trainer)
        except TransactionReverted as exc:
            if exc.reason == "coordinator: not a committee member":
                raise ChainError(
                    f"{me} is not on job {job}'s validator committee and the config says `trainer = false`: "
                    "this node would have nothing to do; use a committee member's key or set `trainer = true`"
                ) from None
            raise ChainError(
                f"{me} cannot join job {job}: {exc.reason} (ask the sponsor to add it, or use a key "
                "that may join)"
            ) from None
        log.info("%s: registered for job %d (stake %d)", self.name, job, stake)

    def ensure_data_committed(self) -> None:
        """Own data: posts this trainer's data commitment once, before its first update."""
        if self.opening is None or not self.trains:
            return
        from fedledger.roles.data_commitment import post_data_commitment

        post_data_commitment(
            self.coordinator.data_registry(),
            self.account,
            self.config.job,
            self.opening.commitment,
            name=self.name,
        )

    def register_with_key(self) -> None:
        """Joins a secure-aggregation job with this trainer's X25519 key, or as a validator only.

        The key directory closes at the job's first commit. A node that arrives later cannot
        train in this job; if it is on the committee it still validates, otherwise it says why.
        """
        try:
            self.trainer.register()
        except TransactionReverted as exc:
            if exc.reason != "coordinator: key directory closed":
                raise
            try:
                self.coordinator.register(self.account, self.config.job, as_trainer=False)
            except TransactionReverted:
                raise ChainError(
                    f"job {self.config.job} uses secure aggregation and its key directory closed at the "
                    "first commit: its trainers must join before the job's first commit"
                ) from None
            self.trains = False
            log.warning(
                "%s: job %d's key directory closed at its first commit: joined as a validator only",
                self.name,
                self.config.job,
            )

    def step(self) -> bool:
        """Does what the job's current state asks of this node; False once the job has ended."""
        job, view = self.config.job, self.view()
        s = view.job_state(job)
        self.report_rounds(s)
        if s.phase in (Phase.DONE, Phase.ABORTED):
            self.finish()
            return False
        expired = self.chain.now() > s.deadline
        trains = self.trains and not self.trainer.ejected
        # FLTrust's root update waits for `min_commits` trainers: committed first, it could close
        # a round (every registered trainer committed) that has too few updates to finalise
        root_waits = self.config.root and s.commits < self.spec.effective_min_commits
        if s.phase == Phase.OPEN and trains and not expired and not root_waits and not self.awaiting_keys(s):
            last = view.trainer_state(job, self.account.address).last_round
            # `committed` covers a commit not yet `confirmations` deep
            if last != s.round and self.committed != s.round:
                self.train_and_commit(s, view.global_model(job))
                self.worked = True
                return True
        secure_round = s.phase == Phase.AGGREGATING and self.spec.secure and trains
        if secure_round and s.round not in self.revealed and self.reveal(s, view):
            self.worked = True
            return True
        validator = self.config.validator and view.is_validator(job, self.account.address)
        if s.phase == Phase.OPEN and validator:
            self.prefetch(s.round)
        elif s.phase == Phase.AGGREGATING and s.round not in self.proposed and not expired and validator:
            self.worked = self.validate_and_propose(s, view.global_model(job))
            return True
        elif s.phase == Phase.AGGREGATING and self.speculate_next(s):
            self.worked = True
            return True
        if expired:
            with contextlib.suppress(TransactionReverted):  # another node may have advanced it first
                self.coordinator.advance(self.account, job, gas=ADVANCE_GAS)
                log.info("%s: round %d: advanced the expired %s phase", self.name, s.round, s.phase.name)
        return True

    def train_and_commit(self, s: JobState, global_model: bytes) -> None:
        p = self.pending
        if p is None or p.round != s.round or p.global_commitment != global_model:
            from fedledger.roles.trainer import PreparedUpdate

            prepared = self.trainer.prepare(s.round, global_model)
            if not isinstance(prepared, PreparedUpdate):
                return
            self.pending = p = prepared
        try:
            result = self.trainer.submit(p)
        except TransactionReverted as exc:
            if exc.reason != "coordinator: already committed":
                raise
            # a commit that landed before the chain went away, seen before it was confirmed
            log.info("%s: round %d: already committed", self.name, s.round)
            self.pending = None
            return
        self.pending = None
        self.committed = s.round
        what = "nothing" if result.commitment is None else commitment_hex(result.commitment)[:14]
        log.info(
            "%s: round %d: trained on %d examples in %.2f s (loss %.4f), committed %s",
            self.name,
            s.round,
            result.num_examples,
            result.train_seconds,
            result.loss,
            what,
        )

    def awaiting_keys(self, s: JobState) -> bool:
        """Secure aggregation: holds the job's first commit while the key directory fills.

        The first commit closes the directory that every mask is computed against, so a
        trainer that committed as soon as it started would shut out the organisations whose
        nodes start a little later. It waits until every trainer the spec counts has
        registered its key, or half the commit window has passed with enough keys registered
        for a round to finalise (`min_commits`, and at least two).
        """
        if not self.spec.secure or s.version > 0 or s.commits > 0 or s.trainers >= self.spec.trainers:
            return False
        opened = s.deadline - self.spec.commit_window_s
        enough = s.trainers >= max(2, self.spec.effective_min_commits)  # a round could finalise
        if enough and self.chain.now() - opened >= self.spec.commit_window_s / 2:
            return False
        if s.round not in self.holding:
            self.holding.add(s.round)
            log.info(
                "%s: round %d: %d of %d trainers have registered keys; holding the first commit "
                "(it closes the key directory)",
                self.name,
                s.round,
                s.trainers,
                self.spec.trainers,
            )
        return True

    def reveal(self, s: JobState, view: Coordinator) -> bool:
        """Secure aggregation: once the commit phase closed, reveal the shares the validators need.

        Returns whether it posted a reveal (False: this trainer did not commit to the round).
        """
        self.revealed.add(s.round)
        if view.trainer_state(self.config.job, self.account.address).last_round != s.round:
            return False
        commits = self.reader.commits(s.round)
        try:
            receipt, _ = self.trainer.reveal(s.round, view.global_model(self.config.job), commits)
        except TransactionReverted as exc:
            if exc.reason not in ("coordinator: already revealed", "coordinator: round not aggregating"):
                self.revealed.discard(s.round)
                raise
            return False
        except BaseException:
            self.revealed.discard(s.round)  # a chain or store outage: try again on the next pass
            raise
        if receipt is not None:
            log.info("%s: round %d: revealed its shares for %d committers", self.name, s.round, len(commits))
        return receipt is not None

    def prefetch(self, round: int) -> None:
        """While the round is open, fetches and hash-checks each update as its commit appears.

        A validator has nothing else to do until the phase closes, and then it needs every
        blob at once: fetching them as they come takes the downloads off the round's critical
        path. A blob that cannot be fetched yet is simply tried again later.
        """
        for c in self.reader.commits(round):
            if c.commitment not in self.fetched:
                with contextlib.suppress(StoreError):
                    self.store.get(c.commitment)
                    self.fetched.add(c.commitment)

    def validate_and_propose(self, s: JobState, global_model: bytes) -> bool:
        """Proposes the round's aggregate; False while it still waits for a committed blob."""
        commits = self.reader.commits(s.round)
        missing = [
            c for c in commits if c.commitment not in self.fetched and not self.store.has(c.commitment)
        ]
        since = self.waiting_since.setdefault(s.round, time.monotonic())
        waited = time.monotonic() - since
        if missing and waited < self.config.availability_wait_s:
            return False  # a peer's store may be restarting: wait, up to availability_wait_s
        secure: SecureInputs | None = None
        if self.spec.secure:
            from fedledger.roles.secure import SecureInputs

            secure = SecureInputs.from_events(
                self.coordinator.address, self.reader.events, self.config.job, s.round, global_model
            )
            unrevealed = [c.trainer for c in commits if c.trainer not in secure.reveals]
            if unrevealed and waited < self.config.availability_wait_s:
                return False  # committers reveal once the phase closes; give them the same wait
            for who in unrevealed:
                log.warning(
                    "%s: round %d: %s did not reveal its shares within %.0f s; recovering without them",
                    self.name,
                    s.round,
                    who,
                    waited,
                )
        releases = sum(1 for e in self.reader.events if e.name == "PrivacySpent")
        for c in missing:
            log.warning(
                "%s: round %d: data-availability fault: %s's update %s could not be fetched from any "
                "store for %.0f s; excluding it",
                self.name,
                s.round,
                c.trainer,
                commitment_hex(c.commitment)[:14],
                time.monotonic() - since,
            )
        try:
            outcome, _ = self.validator.process_round(
                round=s.round,
                version=s.version,
                global_model=self.store.get_tensors(global_model),
                commits=commits,
                names={},
                secure=secure,
                releases_before=releases,
            )
            self.computed[s.round] = outcome.aggregate
            for who, why in outcome.faults.items():
                log.warning("%s: round %d: secure aggregation fault of %s: %s", self.name, s.round, who, why)
            for r in outcome.rejected:
                log.warning("%s: round %d: excluded %s: %s", self.name, s.round, r.trainer, r.reason)
            log.info("%s: round %d: proposed %s", self.name, s.round, commitment_hex(outcome.aggregate)[:14])
        except TransactionReverted as exc:
            now = self.coordinator.job_state(self.config.job)
            moved_on = now.phase != Phase.AGGREGATING or now.round != s.round
            if exc.reason != "coordinator: already proposed" and not moved_on:
                raise
            log.info("%s: round %d: decided before this proposal landed", self.name, s.round)
        self.proposed.add(s.round)
        self.fetched.clear()
        return True

    def speculate_next(self, s: JobState) -> bool:
        """Trains the next round on the aggregate this validator just proposed, while the quorum forms.

        Honest validators compute identical bytes, so the model the quorum finalises is almost
        always the one this node computed; training on it now takes the quorum's transactions
        and the wait for them off the round's critical path. The update is committed only if the
        next round opens on exactly that model (`train_and_commit` checks), so a round that
        fails or finalises something else costs one discarded training, nothing on chain.
        """
        aggregate = self.computed.get(s.round)
        if (
            not self.config.speculate
            or aggregate is None
            or not self.trains
            or self.trainer.ejected
            or (self.pending is not None and self.pending.round == s.round + 1)
        ):
            return False
        from fedledger.roles.trainer import PreparedUpdate

        prepared = self.trainer.prepare(s.round + 1, aggregate)
        if isinstance(prepared, PreparedUpdate):
            self.pending = prepared
        return True

    def report_rounds(self, s: JobState) -> None:
        """One status line per decided round: what the chain finalised and where this node stands."""
        self.reader.poll()
        for r, rec in sorted(self.reader.rounds.items()):
            if r in self.reported or (rec.finalized is None and rec.failed is None):
                continue
            self.reported.add(r)
            me = self.account.address
            mine = next((c for c in rec.commits if c.trainer == me), None)
            standing = (
                "did not commit"
                if mine is None
                else "root update committed (FLTrust's reference)"
                if self.config.root
                else "update excluded"
                if me in rec.excluded
                else "update accepted"
            )
            if rec.finalized is not None:
                a = rec.finalized.args
                log.info(
                    "%s: round %d FINALIZED: model v%d %s, %d of %d updates accepted; this organisation: %s; "
                    "job %d of %d rounds done",
                    self.name,
                    r,
                    a["version"],
                    commitment_hex(a["aggregate"])[:14],
                    a["accepted_commits"],
                    len(rec.commits),
                    standing,
                    a["version"],
                    self.spec.chain_rounds,
                )
            else:
                log.warning(
                    "%s: round %d FAILED (%d commits); this organisation: %s",
                    self.name,
                    r,
                    len(rec.commits),
                    standing,
                )

    def finish(self) -> None:
        job, me = self.config.job, self.account.address
        if self.coordinator.claimable(job, me) or self.coordinator.stake_of(job, me):
            claim = self.coordinator.claimable(job, me)
            self.coordinator.withdraw(self.account, job)
            log.info("%s: job %d ended; rewards (%d) and stake withdrawn", self.name, job, claim)

    def run(self, max_seconds: float | None = None) -> None:
        """Steps until the job ends; an unreachable chain or store is retried with backoff, never fatal."""
        start, backoff = time.monotonic(), self.config.poll_seconds
        registered = False
        while max_seconds is None or time.monotonic() - start < max_seconds:
            try:
                if not registered:
                    self.ensure_registered()
                    self.ensure_data_committed()
                    registered = True
                self.worked = False
                if not self.step():
                    return
                backoff = self.config.poll_seconds
                if self.worked:
                    continue  # what it did may have moved the job on: look again at once
            except ChainUnavailable as exc:
                log.warning("%s: chain unreachable (%s); retrying in %.1f s", self.name, exc, backoff)
                backoff = min(backoff * 2, 10.0)
            except StoreError as exc:
                log.warning("%s: blob store failed (%s); retrying in %.1f s", self.name, exc, backoff)
                backoff = min(backoff * 2, 10.0)
            time.sleep(backoff)
