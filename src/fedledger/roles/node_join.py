"""Before a node's first round: the startup checks, in the order a user fixes them, and joining.

Each check refuses with one line that says what to change (the `rpc` URL, the key, the
spec file, `organisation`, the store), and all of them run before the deep-learning
stack is imported, so a mistake in the config is reported in a second. Joining the job
(`join_job`) happens on the event loop's first pass, so a chain outage then is retried.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount

from fedledger.chain.contracts import Coordinator, RewardToken, Sampler
from fedledger.chain.rpc import RpcChain
from fedledger.chain.wakeup import FilterWakeup, PollWakeup, PushWakeup, WsWakeup, ws_url_for
from fedledger.errors import ChainError, SpecError, StoreError, TransactionReverted
from fedledger.roles.keys import reader_entry, reader_secret
from fedledger.roles.node_config import NodeConfig
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore
from fedledger.store.cached import VerifiedCache
from fedledger.store.http import open_store
from fedledger.store.peers import PeerStore
from fedledger.store.sealed import OpeningStore, ReaderKey, SealingStore

if TYPE_CHECKING:
    from fedledger.roles.trainer import Trainer

log = logging.getLogger("fedledger.node")


def connect(config: NodeConfig) -> Coordinator:
    """The job's coordinator, on the chain the config expects, holding the config's job."""
    ca = str(config.ca_bundle) if config.ca_bundle else None
    coordinator = Coordinator.connect(config.rpc, config.coordinator, ca_bundle=ca)
    chain = coordinator.chain
    if config.chain_id is not None and chain.chain_id != config.chain_id:
        raise ChainError(
            f"the node at {config.rpc} serves chain id {chain.chain_id}, but the config "
            f"expects {config.chain_id}: wrong `rpc` URL, or fix `chain_id`"
        )
    coordinator.check_job(config.job)
    return coordinator


def open_wakeup(config: NodeConfig, coordinator: Coordinator) -> PollWakeup:
    """What ends the node's wait between passes (`chain/wakeup.py`): the coordinator's pushed
    events, or the poll timer alone (`events = "poll"`, or a chain that is not JSON-RPC)."""
    chain = coordinator.chain
    if config.events == "poll" or not isinstance(chain, RpcChain):
        return PollWakeup(config.poll_seconds)
    # `confirmations` deep: an event is actionable only blocks later, so wake on every block
    address = None if config.confirmations else coordinator.address
    params: list[Any] = ["newHeads"] if address is None else ["logs", {"address": address}]
    ca = str(config.ca_bundle) if config.ca_bundle else None
    ws = WsWakeup(
        config.ws or ws_url_for(config.rpc), params, config.poll_seconds, config.recheck_seconds, ca_bundle=ca
    )
    return PushWakeup(
        ws,
        lambda: FilterWakeup(
            lambda: chain.new_event_filter(address),
            chain.filter_changes,
            config.poll_seconds,
            config.recheck_seconds,
            errors=(ChainError,),
        ),
    )


def check_spec(config: NodeConfig, spec: JobSpec, job_config: dict[str, Any]) -> None:
    """SpecError unless the spec file is the one the job was created with (by its hash)."""
    on_chain = bytes(job_config["spec_hash"])
    if spec.spec_hash() != on_chain:
        raise SpecError(
            "spec", f"{config.spec} does not hash to job {config.job}'s spec hash 0x{on_chain.hex()}"
        )


def identify(
    config: NodeConfig, spec: JobSpec, job_config: dict[str, Any], account: LocalAccount
) -> tuple[str, str]:
    """(this node's name in the logs, the FLTrust sponsor whose root update is trusted or "")."""
    fltrust = spec.aggregation == "fltrust"
    # FLTrust trusts the update its sponsor commits from the root dataset
    sponsor = str(job_config["sponsor"]) if fltrust else ""
    if config.root:
        if not fltrust:
            raise SpecError(
                "root",
                f"only an FLTrust job has a root update; job {config.job} aggregates with {spec.aggregation}",
            )
        if sponsor.lower() != account.address.lower():
            raise ChainError(
                f"FLTrust trusts only the root update of job {config.job}'s sponsor {sponsor}; "
                f"this node's key is {account.address}: use the sponsor's key"
            )
        return "sponsor", sponsor
    if not 1 <= config.organisation <= spec.trainers:
        raise SpecError(
            "organisation",
            f"{config.organisation or 'missing'}: give this node's share of the data split, "
            f"1..{spec.trainers} (or `root = true` on an FLTrust sponsor's node)",
        )
    return f"org-{config.organisation:02d}", sponsor


def open_stores(config: NodeConfig, account: LocalAccount, spec: JobSpec) -> VerifiedCache:
    """This organisation's store (which must answer now) in front of its peers', hash-checked.

    Reads are signed with this node's key (servers with reader lists refuse unsigned ones),
    and sealed updates are opened with its read key when it is one of the spec's readers.
    """
    ca = config.ca_bundle
    own = open_store(config.store, account, ca_bundle=ca)
    try:
        own.has(b"\0" * 32)
    except StoreError as exc:
        raise StoreError(
            f"this organisation's own store is unusable ({exc}); start its "
            "`fedledger store serve` or fix `store` in the node config"
        ) from None
    # every read is hash-checked once; the cache keeps the verified bytes for the round
    peers = PeerStore(own, [open_store(p, account, ca_bundle=ca) for p in config.peers])
    me = account.address.lower()
    entry = next((r for r in spec.readers if r.address.lower() == me), None)
    if entry is None:
        if spec.readers and config.validator:
            log.warning(
                "%s is not among the job spec's readers: it cannot open individual updates, "
                "so it cannot validate",
                account.address,
            )
        return VerifiedCache(OpeningStore(peers))
    if entry.key != reader_entry(account)["key"]:
        raise SpecError(
            "readers",
            f"the read key listed for {account.address} is not this key's "
            f"({reader_entry(account)['key']}; `fedledger store reader-key` prints it)",
        )
    return VerifiedCache(OpeningStore(peers, account.address, reader_secret(account)))


def sealed_to_readers(store: BlobStore, spec: JobSpec) -> BlobStore:
    """The store a trainer writes through: every update sealed to the spec's readers, if any."""
    if not spec.readers:
        return store
    keys = [ReaderKey(r.address, bytes.fromhex(r.key[2:])) for r in spec.readers]
    return SealingStore(store, keys)


def join_job(
    coordinator: Coordinator,
    account: LocalAccount,
    trainer: Trainer,
    config: NodeConfig,
    spec: JobSpec,
    name: str,
) -> bool:
    """Registers (and stakes) once; whether this node may still train in the job.

    False when it is on the job as a validator only: by config, or because a secure job's
    key directory had closed before it arrived.
    """
    job, me = config.job, account.address
    t = coordinator.trainer_state(job, me)
    if t.registered or t.ejected:
        return True
    if coordinator.is_validator(job, me):
        return False  # joined as a validator only (by config, or turned away as a trainer)
    cfg = coordinator.job_config(job)
    stake = int(cfg["stake"])
    trains = True
    try:
        if stake:
            token = RewardToken(coordinator.chain, cfg["token"])
            balance = token.balance_of(me)
            if balance < stake:
                raise ChainError(
                    f"{me} cannot stake for job {job}: it holds {balance} of the {stake} token units "
                    f"needed at {cfg['token']}; fund the account first"
                )
            token.approve(account, coordinator.address, stake)
        if config.trainer and spec.secure:
            trains = register_with_key(coordinator, account, trainer, job, name)
        else:
            coordinator.register(account, job, as_trainer=config.trainer)
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
    log.info("%s: registered for job %d (stake %d)", name, job, stake)
    return trains


def find_sampler(coordinator: Coordinator, spec: JobSpec) -> Sampler | None:
    """The sampler a sampling job draws from (None for a job that samples nothing).

    Read from the coordinator's own storage (`Coordinator.sampler`): no config key to get wrong.
    """
    if not spec.sampled:
        return None
    sampler = coordinator.sampler()
    if sampler is None:
        raise ChainError(
            f"the job samples its trainers or committee, but coordinator {coordinator.address} has no "
            "sampler bound: deploy the contracts with this fedledger version"
        )
    return sampler


def enrol(sampler: Sampler, account: LocalAccount, job: int, name: str) -> None:
    """Enrols this registered trainer in the job's draws, once (a restart finds it enrolled)."""
    try:
        sampler.enrol(account, job)
    except TransactionReverted as exc:
        if exc.reason != "sampler: already enrolled":
            raise ChainError(f"{account.address} cannot enrol in job {job}'s draws: {exc.reason}") from None
        return
    log.info("%s: enrolled in job %d's draws", name, job)


def register_with_key(
    coordinator: Coordinator, account: LocalAccount, trainer: Trainer, job: int, name: str
) -> bool:
    """Joins a secure-aggregation job with this trainer's X25519 key, or as a validator only.

    The key directory closes at the job's first commit. A node that arrives later cannot
    train in this job (returns False); if it is on the committee it still validates,
    otherwise it says why.
    """
    try:
        trainer.register()
    except TransactionReverted as exc:
        if exc.reason != "coordinator: key directory closed":
            raise
        try:
            coordinator.register(account, job, as_trainer=False)
        except TransactionReverted:
            raise ChainError(
                f"job {job} uses secure aggregation and its key directory closed at the "
                "first commit: its trainers must join before the job's first commit"
            ) from None
        log.warning(
            "%s: job %d's key directory closed at its first commit: joined as a validator only",
            name,
            job,
        )
        return False
    return True
