"""The trainer: train locally from the committed global model, commit the update.

Raw data never leaves the organisation: what leaves is the quantised delta,
as a canonical blob in the store, and its Merkle root on chain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from eth_account.signers.local import LocalAccount

from fedledger.chain.base import PendingReceipt, Receipt
from fedledger.chain.contracts import Coordinator, Phase
from fedledger.codec.blob import encode_tensors
from fedledger.codec.commitment import merkle_root
from fedledger.data.stats import LocalFeatures, split_stats
from fedledger.errors import CodecError, InvalidUpdate, PrivacyError, TransactionReverted
from fedledger.privacy import keys
from fedledger.roles import secure
from fedledger.roles.dp import private_update
from fedledger.roles.job import CommitRecord
from fedledger.roles.model import GlobalModels, quantized_delta
from fedledger.roles.outcome import update_metadata
from fedledger.roles.record_dp import RecordBudget
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore
from fedledger.training.client import NumPyClient

log = logging.getLogger("fedledger.trainer")

#: a hook that may rewrite an update blob before upload (used by the simulator's faults)
BlobHook = Callable[[bytes, int], bytes | None]


@dataclass(frozen=True)
class PreparedUpdate:
    """A trained, encoded update not yet uploaded or committed."""

    round: int
    global_commitment: bytes  # the model it was trained from
    blob: bytes
    num_examples: int
    loss: float
    train_seconds: float
    #: secure aggregation: the share bundle uploaded beside the masked update
    bundle: bytes | None = None


@dataclass(frozen=True)
class TrainedUpdate:
    """Trained weights not yet quantised or encoded (`Trainer.encode`)."""

    round: int
    global_commitment: bytes
    weights: list[np.ndarray]
    global_q: Mapping[str, np.ndarray]  # the global model it was trained from, as committed
    num_examples: int
    loss: float
    train_seconds: float


@dataclass(frozen=True)
class SentUpdate:
    """An update uploaded and its commit sent, the receipt not yet looked at (`Trainer.complete`)."""

    update: PreparedUpdate
    commitment: bytes
    pending: PendingReceipt

    @property
    def loss(self) -> float:
        return self.update.loss

    @property
    def train_seconds(self) -> float:
        return self.update.train_seconds


@dataclass(frozen=True)
class TrainerRound:
    round: int
    commitment: bytes | None
    num_examples: int
    loss: float
    train_seconds: float
    receipt: Receipt | None


class Trainer:
    """One organisation's trainer role."""

    def __init__(
        self,
        *,
        name: str,
        account: LocalAccount,
        coordinator: Coordinator,
        store: BlobStore,
        client: NumPyClient,
        names: Sequence[str],
        spec: JobSpec,
        job_id: int,
        blob_hook: BlobHook | None = None,
        features: LocalFeatures | None = None,
        models: GlobalModels | None = None,
    ) -> None:
        """`models`: where the global model is decoded (a simulation's trainers share one)."""
        if spec.federated_stats and features is None:
            raise ValueError(f"{name}: job standardises federatedly but the trainer has no local features")
        self.name = name
        # own data: the statistics round's update, and z-scoring once the job's sums are final
        self.features = features
        self.account = account
        self.coordinator = coordinator
        self.store = store
        self.client = client
        self.names = list(names)
        self.spec = spec
        self.job_id = job_id
        self.blob_hook = blob_hook
        self.models = models or GlobalModels(store, names, spec.scale_bits)
        self.ejected = False
        # secure aggregation: an X25519 key derived from the signing key, and the job's key
        # directory, read once it can no longer change (after this trainer's first commit)
        self.x25519 = secure.x25519_key(bytes(account.key)) if spec.secure else None
        self._directory: dict[str, bytes] | None = None
        # record-level DP: this organisation's own ε budget over its records
        self.record_budget = (
            RecordBudget(name=name, spec=spec, coordinator=coordinator, job_id=job_id, account=account)
            if spec.record_dp
            else None
        )

    @property
    def stopped(self) -> bool:
        """Trains no more in this job: ejected, or its records' ε budget affords no further round."""
        return self.ejected or (self.record_budget is not None and self.record_budget.exhausted)

    def register(self) -> Receipt:
        return self.register_later().result()

    def register_later(self) -> PendingReceipt:
        """`register` without waiting for the receipt: a simulation registers everyone in a row."""
        if self.x25519 is not None:  # secure aggregation: publish the key at join time
            public = keys.public_key_bytes(self.x25519)
            return self.coordinator.transact_later(self.account, "register_with_key", self.job_id, public)
        return self.coordinator.transact_later(self.account, "register", self.job_id, True)

    def secure_inputs(self, round: int, global_commitment: bytes) -> secure.SecureInputs:
        """The round's key directory (from KeyRegistered events) with no reveals: a trainer's view."""
        if self._directory is None:
            inputs = secure.SecureInputs.from_events(
                self.coordinator.address, self.coordinator.events(), self.job_id, round, global_commitment
            )
            directory = dict(inputs.directory)
        else:
            directory = self._directory
        return secure.SecureInputs(self.coordinator.address, global_commitment, directory, {})

    def run_round(self, round: int, global_commitment: bytes, *, seat: int = 0) -> TrainerRound:
        """Trains one round and commits; a trainer that cannot produce a valid update skips.

        `seat`: its seat in the round's draw (`roles/sampling.py`) in a job that samples trainers.
        """
        prepared = self.prepare(round, global_commitment)
        return prepared if isinstance(prepared, TrainerRound) else self.submit(prepared, seat=seat)

    def prepare(self, round: int, global_commitment: bytes) -> PreparedUpdate | TrainerRound:
        """Trains from the global model and encodes the update: everything before the store and chain.

        Kept apart from `submit` so a node that loses its chain or store after training
        retries the upload and commit of the same update instead of training again. A
        finished `TrainerRound` (nothing to commit) comes back when the trainer is ejected
        or its update cannot be quantised.
        """
        trained = self.train(round, global_commitment)
        return self.encode(trained) if isinstance(trained, TrainedUpdate) else trained

    def train(self, round: int, global_commitment: bytes) -> TrainedUpdate | PreparedUpdate | TrainerRound:
        """`prepare` up to the trained weights (a statistics round's update is ready at once)."""
        if self.ejected:
            log.info("%s: round %d: ejected from job %d, not training", self.name, round, self.job_id)
            return TrainerRound(round, None, 0, float("nan"), 0.0, None)
        if self.record_budget is not None and not self.record_budget.allows(round):
            return TrainerRound(round, None, 0, float("nan"), 0.0, None)
        global_q, stats_q, params = self.models.read(global_commitment)
        if self.spec.federated_stats and not stats_q:
            return self._prepare_statistics(round, global_commitment)
        if stats_q and self.features is not None:
            self.features.standardise(stats_q)
        t0 = time.perf_counter()
        new, num_examples, metrics = self.client.fit(params, {"round": round})
        train_s = time.perf_counter() - t0
        loss = float(metrics.get("loss", float("nan")))
        return TrainedUpdate(round, global_commitment, list(new), global_q, num_examples, loss, train_s)

    def encode(self, t: TrainedUpdate) -> PreparedUpdate | TrainerRound:
        """The rest of `prepare`: the quantised delta, clipped in a DP job, as the update's blob."""
        try:
            delta = quantized_delta(self.names, t.weights, t.global_q, self.spec.scale_bits)
        except CodecError as exc:
            log.warning("%s: round %d: not committing: %s", self.name, t.round, exc)
            return TrainerRound(t.round, None, t.num_examples, t.loss, t.train_seconds, None)
        metadata = update_metadata(self.job_id, t.round, self.account.address)
        if self.spec.dp:  # clip; then a secret nonce (plain mode) or a noise share (secure mode)
            delta, metadata = private_update(self.spec, delta, metadata)
        return self._package(
            t.round, t.global_commitment, delta, t.num_examples, metadata, t.loss, t.train_seconds
        )

    def _prepare_statistics(self, round: int, global_commitment: bytes) -> PreparedUpdate | TrainerRound:
        """The statistics round: this organisation's integer feature sums instead of an update."""
        assert self.features is not None
        t0 = time.perf_counter()
        tensors, rows = self.features.update, self.features.rows
        metadata = update_metadata(self.job_id, round, self.account.address)
        seconds = time.perf_counter() - t0
        return self._package(
            round, global_commitment, tensors, rows, metadata, float("nan"), seconds, statistics=True
        )

    def _package(
        self,
        round: int,
        global_commitment: bytes,
        tensors: dict[str, np.ndarray],
        num_examples: int,
        metadata: dict[str, str],
        loss: float,
        train_s: float,
        *,
        statistics: bool = False,
    ) -> PreparedUpdate | TrainerRound:
        """The update's blob, masked with its share bundle in a secure job; a refusal skips the round."""
        if self.x25519 is None:
            blob = encode_tensors(tensors, metadata=metadata)
            return PreparedUpdate(round, global_commitment, blob, num_examples, loss, train_s)
        inputs = self.secure_inputs(round, global_commitment)
        try:
            blob, bundle = secure.masked_upload(
                spec=self.spec,
                setup=secure.round_setup(self.spec, inputs, self.job_id, round),
                me=self.account.address,
                key=self.x25519,
                directory=inputs.directory,
                delta=tensors,
                num_examples=num_examples,
                metadata=metadata,
                statistics=statistics,
            )
        except (InvalidUpdate, PrivacyError) as exc:
            what = "statistics" if statistics else "update"
            log.warning("%s: round %d: not committing its %s: %s", self.name, round, what, exc)
            return TrainerRound(round, None, num_examples, loss, train_s, None)
        return PreparedUpdate(round, global_commitment, blob, num_examples, loss, train_s, bundle)

    def submit(self, u: PreparedUpdate, *, seat: int = 0) -> TrainerRound:
        """Uploads the update and commits its Merkle root; idempotent up to the commit itself."""
        return self.complete(self.send(u, seat=seat))

    def send(self, u: PreparedUpdate, *, seat: int = 0, root: bytes | None = None) -> SentUpdate:
        """Uploads the update and sends its commit without waiting for the receipt.

        A simulation trains the next organisation while the commit executes (chain/pipelined.py)
        and calls `complete` before that organisation sends anything, so the chain sees the
        same transactions in the same order as with `submit`. `root`: the blob's Merkle root,
        where the caller computed it already (`BlobStore.put`).
        """
        if u.bundle is not None:
            self.store.put(u.bundle)
        if self.blob_hook is not None:
            hooked = self.blob_hook(u.blob, u.round)
            # None means withheld: committed on chain but never uploaded
            commitment = merkle_root(u.blob) if hooked is None else self.store.put(hooked)
        else:
            commitment = self.store.put(u.blob, root=root)
        if self.record_budget is not None:  # readable from here on: its records' ε is spent
            self.record_budget.released_one(u.round)
        coordinator, account = self.coordinator, self.account
        pending = coordinator.commit_later(account, self.job_id, u.round, commitment, u.num_examples, seat)
        return SentUpdate(u, commitment, pending)

    def complete(self, sent: SentUpdate) -> TrainerRound:
        """The commit's outcome: a revert is met here, as `submit` met it.

        A trainer the chain has ejected stops training; one whose round closed while it
        trained (the others all committed first) keeps its update and says so. Ejection is
        learnt from a refused commit, so the common path costs no extra chain read.
        """
        u, commitment = sent.update, sent.commitment
        round, num_examples, loss, train_s = u.round, u.num_examples, u.loss, u.train_seconds
        try:
            receipt = sent.pending.result()
        except TransactionReverted as exc:
            late = exc.reason in (
                "coordinator: round not open",
                "coordinator: commit window closed",
                "coordinator: wrong round",  # the round was decided and the next one opened
            )
            if not late and exc.reason == "reverted":
                # a node that packs racing transactions into one block cannot always replay the
                # reason (nor one whose deadline passed between the parent block and ours); if the
                # round moved on or its window closed meanwhile, that is what happened
                state = self.coordinator.job_state(self.job_id)
                expired = self.coordinator.chain.now() > state.deadline
                late = state.round != round or state.phase != Phase.OPEN or expired
            if exc.reason == "coordinator: trainer ejected" or (
                late and self.coordinator.trainer_state(self.job_id, self.account.address).ejected
            ):
                self.ejected = True
                log.warning("%s: round %d: ejected from job %d", self.name, round, self.job_id)
                return TrainerRound(round, None, num_examples, loss, train_s, None)
            if not late:
                raise
            log.warning("%s: round %d: too late to commit (%s)", self.name, round, exc.reason)
            return TrainerRound(round, None, num_examples, loss, train_s, None)
        if self.record_budget is not None:
            self.record_budget.post(round)
        if self.x25519 is not None and self._directory is None:
            # our commit closed the key directory: what we masked against is now final
            self._directory = dict(self.secure_inputs(round, u.global_commitment).directory)
        return TrainerRound(round, commitment, num_examples, loss, train_s, receipt)

    def reveal(
        self, round: int, global_commitment: bytes, commits: Sequence[CommitRecord]
    ) -> tuple[Receipt | None, dict[str, str]]:
        """Secure aggregation, once the commit phase has closed: reveal what the committers need.

        Opens the shares its neighbours dealt it, keeps exactly those the chain's committers
        require, uploads the reveal and posts its commitment. Returns the receipt (None if this
        trainer did not commit) and the neighbours whose shares it could not use.
        """
        pending, faults = self.send_reveal(round, global_commitment, commits)
        return (None if pending is None else pending.result()), faults

    def send_reveal(
        self, round: int, global_commitment: bytes, commits: Sequence[CommitRecord]
    ) -> tuple[PendingReceipt | None, dict[str, str]]:
        """`reveal` without waiting for the receipt; a revert is raised by its `result()`."""
        if self.x25519 is None:
            raise ValueError(f"{self.name}: job {self.job_id} does not use secure aggregation")
        if self.account.address not in {c.trainer for c in commits}:
            return None, {}
        inputs = self.secure_inputs(round, global_commitment)
        global_q, stats_q = split_stats(self.store.get_tensors(global_commitment))
        if self.spec.federated_stats and not stats_q:  # the statistics round's masking layout
            from fedledger.roles.stats_round import stats_layout

            global_q = stats_layout(self.spec)
        doc, faults = secure.make_reveal(
            store=self.store,
            setup=secure.round_setup(self.spec, inputs, self.job_id, round),
            me=self.account.address,
            key=self.x25519,
            directory=inputs.directory,
            commits=commits,
            metadata_for={c.trainer: update_metadata(self.job_id, round, c.trainer) for c in commits},
            global_model=global_q,
            spec=self.spec,
        )
        for dealer, why in faults.items():
            log.warning("%s: round %d: shares from %s unusable: %s", self.name, round, dealer, why)
        commitment = self.store.put(doc)
        return self.coordinator.reveal_later(self.account, self.job_id, round, commitment), faults
