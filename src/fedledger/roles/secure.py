"""Secure-aggregation rounds for the roles: what a trainer uploads and reveals, what validators compute.

The pure protocol lives in `privacy/secagg.py`; this module wires it to the chain and the
store, as the roles do for plain rounds:

    trainer     X25519 key derived from its signing key, registered on chain at join time;
                per round: (clip,) weight by its example count, mask, deal shares; uploads
                the share bundle and the masked update blob (whose metadata names the
                bundle's commitment) and commits the blob; once the chain has closed the
                commit phase it reveals what the committers C require and posts the
                reveal's commitment (`reveal`)
    validator   `compute_secure_round`: the same contract as `compute_round` — a pure
                function of (store, spec, chain events) that every honest validator and the
                audit evaluate to identical bytes — but it sees only the committers' sum

The new model is `global + floor((2·Σ wᵢxᵢ + W) / 2W)`: exactly `aggregation/fedavg.py`'s
rounding applied to the exact integer sum, so a secure round commits the same bytes a plain
FedAvg round over the same updates would.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fedledger.aggregation.base import apply_delta
from fedledger.aggregation.clipped import clip
from fedledger.aggregation.stats import div_half_up, squared_norm
from fedledger.chain.contracts import Event
from fedledger.codec.blob import encode_tensors
from fedledger.codec.commitment import commitment_hex, merkle_root, parse_commitment
from fedledger.errors import (
    BlobIntegrityError,
    BlobNotFound,
    CodecError,
    InvalidUpdate,
    PrivacyError,
    RecoveryFailed,
)
from fedledger.privacy import keys
from fedledger.privacy.masking import flatten, unflatten, weighted
from fedledger.privacy.recovery import Recovery, recover, unmask
from fedledger.privacy.secagg import RoundSetup, SecAggTrainer
from fedledger.roles.job import CommitRecord, fetch_committed
from fedledger.roles.outcome import Rejection, RoundOutcome, update_metadata
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore

log = logging.getLogger("fedledger.secagg")

#: metadata key of a masked update blob that names its share bundle's commitment
SHARES = "shares"


def x25519_key(signing_key: bytes) -> X25519PrivateKey:
    """The organisation's X25519 key, derived from its signing key: one secret to keep."""
    return keys.private_key_from_seed(b"fedledger x25519 " + bytes(signing_key))


def domain_of(coordinator_address: str) -> bytes:
    """The deployment's bytes in every HKDF label: a job id is unique only per coordinator."""
    return bytes.fromhex(coordinator_address[2:])


@dataclass(frozen=True)
class SecureInputs:
    """What a secure round needs from the chain besides the commits."""

    coordinator: str  # address: the derivations' domain
    global_commitment: bytes  # the model the round trains from: seeds the neighbour graph
    directory: Mapping[str, bytes]  # trainer -> X25519 key (KeyRegistered)
    reveals: Mapping[str, bytes]  # committer -> commitment of its reveal (SharesRevealed)

    @classmethod
    def from_events(
        cls, coordinator: str, events: Sequence[Event], job_id: int, round: int, global_commitment: bytes
    ) -> SecureInputs:
        directory: dict[str, bytes] = {}
        reveals: dict[str, bytes] = {}
        for e in events:
            a = e.args
            if a.get("job_id") != job_id:
                continue
            if e.name == "KeyRegistered":
                directory[a["trainer"]] = bytes(a["public_key"])
            elif e.name == "SharesRevealed" and a["round"] == round:
                reveals.setdefault(a["trainer"], bytes(a["commitment"]))
        return cls(coordinator, global_commitment, directory, reveals)


def round_setup(spec: JobSpec, inputs: SecureInputs, job_id: int, round: int) -> RoundSetup:
    """The round's graph and threshold over every trainer in the key directory."""
    ctx = keys.RoundContext(job_id, round, domain_of(inputs.coordinator))
    return RoundSetup.create(
        ctx,
        list(inputs.directory),
        inputs.global_commitment,
        degree=spec.secagg_degree,
        threshold_fraction=spec.secagg_threshold,
    )


# -- trainer side -------------------------------------------------------------------------------


def masked_upload(
    *,
    spec: JobSpec,
    setup: RoundSetup,
    me: str,
    key: X25519PrivateKey,
    directory: Mapping[str, bytes],
    delta: Mapping[str, np.ndarray],
    num_examples: int,
    metadata: Mapping[str, str],
    statistics: bool = False,
) -> tuple[bytes, bytes]:
    """(masked update blob, share bundle): what an honest trainer uploads in a secure round.

    The validators cannot check a masked update, so the trainer checks its own: it clips it
    to the job's bound under clipped_fedavg, and refuses one over the norm bound (raises
    InvalidUpdate) as a validator would have. A statistics round's update (`statistics`)
    is already a sum: it is masked unweighted, and checked as a whole once unmasked.
    """
    if statistics:
        return _mask(setup, me, key, directory, delta, 1, metadata)
    if spec.aggregation == "clipped_fedavg":
        from decimal import Decimal

        delta = clip(delta, int(Decimal(repr(spec.clip_norm)) * spec.scale))
    if not spec.dp and squared_norm(delta) > spec.max_update_norm_q**2:
        # (a DP update carries its noise share already; its clip bound is what limits it)
        raise InvalidUpdate("update over the norm bound; an honest trainer does not send it")
    weight = 1 if spec.dp else num_examples  # DP rounds average unweighted
    return _mask(setup, me, key, directory, delta, weight, metadata)


def _mask(
    setup: RoundSetup,
    me: str,
    key: X25519PrivateKey,
    directory: Mapping[str, bytes],
    delta: Mapping[str, np.ndarray],
    weight: int,
    metadata: Mapping[str, str],
) -> tuple[bytes, bytes]:
    names = sorted(delta)  # the canonical blob's order, which the validators flatten in
    shapes = {n: tuple(np.asarray(delta[n]).shape) for n in names}
    trainer = SecAggTrainer(setup, me, key, directory)
    masked = trainer.mask(weighted(flatten(delta, names), weight, len(setup.participants)))
    bundle = trainer.deal()
    meta = {**metadata, SHARES: commitment_hex(merkle_root(bundle))}
    blob = encode_tensors(unflatten(masked.view(np.int64), shapes), metadata=meta)
    return blob, bundle


def fetch_masked(
    store: BlobStore,
    spec: JobSpec,
    global_model: Mapping[str, np.ndarray],
    expected: Mapping[str, str],
    c: CommitRecord,
) -> tuple[dict[str, np.ndarray], bytes]:
    """A committer's masked tensors and share bundle, or InvalidUpdate with the reason."""
    tensors, meta = fetch_committed(store, c, what="masked update")
    shares = meta.get(SHARES, "")
    if {k: v for k, v in meta.items() if k != SHARES} != dict(expected) or not shares:
        raise InvalidUpdate(f"masked update metadata {meta} does not match the commit {dict(expected)}")
    if list(tensors) != list(global_model) or any(
        tensors[n].shape != global_model[n].shape for n in global_model
    ):
        raise InvalidUpdate("masked update does not have the global model's tensors and shapes")
    try:
        bundle = store.get(parse_commitment(shares))
    except (BlobNotFound, BlobIntegrityError, ValueError, CodecError):
        raise InvalidUpdate(f"share bundle {shares[:18]}… not available or fails its hash") from None
    return tensors, bundle


def make_reveal(
    *,
    store: BlobStore,
    setup: RoundSetup,
    me: str,
    key: X25519PrivateKey,
    directory: Mapping[str, bytes],
    commits: Sequence[CommitRecord],
    metadata_for: Mapping[str, Mapping[str, str]],
    global_model: Mapping[str, np.ndarray],
    spec: JobSpec,
) -> tuple[bytes, dict[str, str]]:
    """This committer's reveal for the chain's committers, and the neighbours it found at fault."""
    committers = [c.trainer for c in commits if c.trainer in directory]
    bundles: dict[str, bytes | None] = {}
    by_trainer = {c.trainer: c for c in commits}
    for d in setup.neighbours[me]:
        c = by_trainer.get(d)
        if c is None:
            continue
        try:
            _, bundles[d] = fetch_masked(store, spec, global_model, metadata_for[d], c)
        except InvalidUpdate:
            bundles[d] = None
    return SecAggTrainer(setup, me, key, directory).reveal(bundles, committers)


# -- validator side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SecureSum:
    """The committers' exact integer sum, or why there is none."""

    total: dict[str, np.ndarray] | None  # Σ wᵢxᵢ per tensor (int64)
    invalid: dict[str, str]  # committer -> why its masked update is unusable (flagged)
    keyless: list[str]  # committers with no key in the directory (flagged, left out)
    failure: str  # why the sum could not be unmasked ("" if it was)
    recovery: Recovery | None


def secure_sum(
    *,
    store: BlobStore,
    spec: JobSpec,
    job_id: int,
    round: int,
    global_model: Mapping[str, np.ndarray],
    commits: Sequence[CommitRecord],
    inputs: SecureInputs,
    metadata_for: Mapping[str, Mapping[str, str]],
) -> SecureSum:
    """Sums and unmasks the committers' updates; never unmasks part of a round.

    A committer without a registered key is left out (it masked nothing we can remove).
    If any keyed committer's masked update or bundle is unusable, or too few shares were
    revealed, there is no sum: the caller fails the round.
    """
    keyless = [c.trainer for c in commits if c.trainer not in inputs.directory]
    keyed = [c for c in commits if c.trainer in inputs.directory]
    try:
        setup = round_setup(spec, inputs, job_id, round)
    except PrivacyError as exc:  # fewer than two keys: nothing can be aggregated securely
        return SecureSum(None, {}, keyless, str(exc), None)
    names = sorted(global_model)  # masks cover the tensors flattened in sorted-name order
    size = sum(int(np.asarray(global_model[n]).size) for n in names)
    acc = np.zeros(size, dtype=np.uint64)
    bundles: dict[str, bytes | None] = {}
    invalid: dict[str, str] = {}
    for c in keyed:
        try:
            tensors, bundles[c.trainer] = fetch_masked(store, spec, global_model, metadata_for[c.trainer], c)
        except InvalidUpdate as exc:
            invalid[c.trainer] = str(exc)
            continue
        np.add(acc, flatten(tensors, names).view(np.uint64), out=acc)
    if invalid:
        return SecureSum(None, invalid, keyless, "a committer's masked update is unusable", None)
    reveals: dict[str, bytes | None] = {}
    for trainer, commitment in inputs.reveals.items():
        try:
            reveals[trainer] = store.get(commitment)
        except (BlobNotFound, BlobIntegrityError):
            reveals[trainer] = None
    try:
        recovery = recover(setup, inputs.directory, bundles, [c.trainer for c in keyed], reveals)
    except (RecoveryFailed, PrivacyError) as exc:
        return SecureSum(None, {}, keyless, str(exc), None)
    total = unmask(acc, recovery)
    shapes = {n: tuple(np.asarray(global_model[n]).shape) for n in names}
    return SecureSum(unflatten(total, shapes), {}, keyless, "", recovery)


def secure_fedavg(
    global_model: Mapping[str, np.ndarray], total: Mapping[str, np.ndarray], weight: int
) -> dict[str, np.ndarray]:
    """global + FedAvg from the exact sum: fedavg.py's rounding, so the bytes match plain FedAvg."""
    if weight <= 0:
        raise InvalidUpdate("weights sum to 0; nothing to average")
    mean = {
        n: div_half_up(np.asarray(total[n], dtype=np.int64).reshape(-1), weight).reshape(
            np.asarray(global_model[n]).shape
        )
        for n in global_model
    }
    return apply_delta(global_model, mean)


def compute_secure_round(
    *,
    store: BlobStore,
    spec: JobSpec,
    job_id: int,
    round: int,
    version: int,
    global_model: Mapping[str, np.ndarray],
    commits: Sequence[CommitRecord],
    secure: SecureInputs,
    releases_before: int = 0,
) -> RoundOutcome:
    """`compute_round` for a secure-aggregation job (it dispatches here): same inputs, same bytes.

    Flagged: committers with no registered key, and committers whose masked update or share
    bundle is unusable (provable from the store, like any bad blob). If any keyed
    committer's update is unusable or too few shares were revealed, every update is left
    out (the others unflagged), so the round fails: a partial sum is never unmasked. A
    committer that withheld its reveal is a recorded fault, not a flag: the round recovers
    from its neighbours' shares, and an honest node may simply have crashed.
    """
    ordered = sorted(commits, key=lambda c: int(c.trainer, 16))
    meta = {c.trainer: update_metadata(job_id, round, c.trainer) for c in ordered}
    s = secure_sum(
        store=store,
        spec=spec,
        job_id=job_id,
        round=round,
        global_model=global_model,
        commits=ordered,
        inputs=secure,
        metadata_for=meta,
    )
    rejected, keyed = sum_rejections(s, ordered)
    accepted: list[CommitRecord] = []
    if s.total is None:
        model = {k: np.asarray(v, dtype=np.int64) for k, v in global_model.items()}
    elif spec.dp and releases_before + 1 > _releases_affordable(spec):
        reason = "the job's (ε, δ) budget is spent: nothing more is released"
        rejected += [Rejection(c.trainer, c.commitment, reason, flagged=False) for c in keyed]
        model = {k: np.asarray(v, dtype=np.int64) for k, v in global_model.items()}
    else:
        accepted = keyed
        # DP rounds average unweighted (each update's influence is bounded by the clip norm)
        weight = len(keyed) if spec.dp else sum(c.num_examples for c in keyed)
        model = secure_fedavg(global_model, s.total, weight)
    rejected.sort(key=lambda r: int(r.trainer, 16))
    return RoundOutcome.of(
        model,
        job_id=job_id,
        round=round,
        version=version,
        accepted=accepted,
        rejected=rejected,
        faults=dict(s.recovery.faults) if s.recovery is not None else {},
    )


def sum_rejections(
    s: SecureSum, ordered: Sequence[CommitRecord]
) -> tuple[list[Rejection], list[CommitRecord]]:
    """(rejections, keyed committers) of a secure sum: keyless committers are flagged, and when
    nothing was unmasked every keyed one is left out (flagged only if its own blob is at fault)."""
    why = "no X25519 key in the job's key directory: cannot be aggregated securely"
    rejected = [Rejection(c.trainer, c.commitment, why) for c in ordered if c.trainer in s.keyless]
    keyed = [c for c in ordered if c.trainer not in s.keyless]
    if s.total is None:
        for c in keyed:
            if c.trainer in s.invalid:
                rejected.append(Rejection(c.trainer, c.commitment, s.invalid[c.trainer]))
            else:
                reason = f"round not unmasked: {s.failure}"
                rejected.append(Rejection(c.trainer, c.commitment, reason, flagged=False))
    return rejected, keyed


def _releases_affordable(spec: JobSpec) -> int:
    from fedledger.roles.dp import releases_affordable

    return releases_affordable(spec)
