"""Secure-aggregation rounds for the roles: what a trainer uploads and reveals, what validators compute.

The pure protocol lives in `privacy/secagg.py`; this module wires it to the chain and the
store, as the roles do for plain rounds:

    trainer     X25519 key derived from its signing key, registered on chain at join time;
                per round: (clip,) weight by its example count, mask, deal shares; uploads
                the share bundle and the masked update blob (whose metadata names the
                bundle's commitment) and commits the blob; once the chain has closed the
                commit phase it reveals what the committers C require and posts the
                reveal's commitment (`reveal`)
    validator   the stages `FetchMasked` and `Unmask`, which replace a plain round's fetch
                and validate in `roles/pipeline.py`: the round stays a pure function of
                (store, spec, chain events) that every honest validator and the audit
                evaluate to identical bytes, but it sees only the committers' sum

The pipeline's `Mean` then commits `global + floor((2·Σ wᵢxᵢ + W) / 2W)`: exactly
`aggregation/fedavg.py`'s rounding applied to the exact integer sum, so a secure round
commits the same bytes a plain FedAvg round over the same updates would. `SecureInputs`
(the key directory and reveals) lives in `roles/round_types.py`, below every stage; it is
importable from here as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from fedledger.aggregation.clipped import clip
from fedledger.aggregation.stats import squared_norm
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
from fedledger.privacy.recovery import recover, unmask
from fedledger.privacy.secagg import RoundSetup, SecAggTrainer
from fedledger.roles.job import CommitRecord, fetch_committed
from fedledger.roles.outcome import Rejection, update_metadata
from fedledger.roles.round_types import Candidate, RoundInputs, RoundState, SecureInputs, Stage
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore

__all__ = ["SecureInputs"]  # re-exported: the node, the simulator and the audit import it from here

log = logging.getLogger("fedledger.secagg")

#: metadata key of a masked update blob that names its share bundle's commitment
SHARES = "shares"


def x25519_key(signing_key: bytes) -> X25519PrivateKey:
    """The organisation's X25519 key, derived from its signing key: one secret to keep."""
    return keys.private_key_from_seed(b"fedledger x25519 " + bytes(signing_key))


def domain_of(coordinator_address: str) -> bytes:
    """The deployment's bytes in every HKDF label: a job id is unique only per coordinator."""
    return bytes.fromhex(coordinator_address[2:])


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


# -- validator side: the stages a secure round runs (`roles/pipeline.py` orders them) -----------

#: why a committer without a registered key is flagged
KEYLESS = "no X25519 key in the job's key directory: cannot be aggregated securely"

#: the tensors a round's masks cover: the layout its trainers flattened their updates in
Layout = Callable[[RoundInputs], Mapping[str, np.ndarray]]


def model_layout(inputs: RoundInputs) -> Mapping[str, np.ndarray]:
    return inputs.global_model


def _secure(inputs: RoundInputs) -> SecureInputs:
    if inputs.secure is None:
        raise ValueError("a secure-aggregation round needs its key directory and reveals (secure=)")
    return inputs.secure


@dataclass(frozen=True)
class FetchMasked(Stage):
    """Reads every keyed committer's masked update and share bundle; never unmasks part of a round.

    A committer without a registered key is flagged and left out (it masked nothing we can
    remove). If the key directory cannot form a round, or any keyed committer's masked update
    or bundle is unusable (flagged, provable from the store like any bad blob), nothing is
    unmasked: every other keyed update is left out unflagged and the round fails.
    """

    name = "fetch"
    layout: Layout = model_layout

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        secure = _secure(inputs)
        keyless = [c for c in inputs.commits if c.trainer not in secure.directory]
        keyed = [c for c in inputs.commits if c.trainer in secure.directory]
        rejected = state.reject(keyless, KEYLESS)
        try:
            round_setup(inputs.spec, secure, inputs.job_id, inputs.round)
        except PrivacyError as exc:  # fewer than two keys: nothing can be aggregated securely
            failed = replace(state, rejected=rejected)
            return replace(failed, rejected=failed.reject(keyed, _failed(exc), flagged=False))
        layout = self.layout(inputs)
        valid: list[Candidate] = []
        invalid: list[Rejection] = []
        for c in keyed:
            expected = update_metadata(inputs.job_id, inputs.round, c.trainer)
            try:
                tensors, bundle = fetch_masked(inputs.store, inputs.spec, layout, expected, c)
            except InvalidUpdate as exc:
                invalid.append(Rejection(c.trainer, c.commitment, str(exc)))
                continue
            valid.append(Candidate(c, tensors, bundle))
        fetched = replace(state, valid=tuple(valid), rejected=rejected + tuple(invalid))
        return fetched.drop_all(_failed("a committer's masked update is unusable")) if invalid else fetched


@dataclass(frozen=True)
class Unmask(Stage):
    """The committers' exact integer sum Σ wᵢxᵢ, their masks removed with the revealed shares.

    Too few shares revealed: nothing is unmasked and the round fails. A committer that withheld
    its reveal is a recorded fault, not a flag: the round recovers from its neighbours' shares,
    and an honest node may simply have crashed.
    """

    name = "unmask"
    layout: Layout = model_layout

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if not state.valid:
            return state
        secure = _secure(inputs)
        setup = round_setup(inputs.spec, secure, inputs.job_id, inputs.round)
        layout = self.layout(inputs)
        names = sorted(layout)  # masks cover the tensors flattened in sorted-name order
        acc = np.zeros(sum(int(np.asarray(layout[n]).size) for n in names), dtype=np.uint64)
        for v in state.valid:
            np.add(acc, flatten(v.tensors, names).view(np.uint64), out=acc)
        reveals: dict[str, bytes | None] = {}
        for trainer, commitment in secure.reveals.items():
            try:
                reveals[trainer] = inputs.store.get(commitment)
            except (BlobNotFound, BlobIntegrityError):
                reveals[trainer] = None
        bundles: dict[str, bytes | None] = {v.trainer: v.extra for v in state.valid}
        try:
            recovery = recover(setup, secure.directory, bundles, [v.trainer for v in state.valid], reveals)
        except (RecoveryFailed, PrivacyError) as exc:
            return state.drop_all(_failed(exc))
        shapes = {n: tuple(np.asarray(layout[n]).shape) for n in names}
        total = unflatten(unmask(acc, recovery), shapes)
        return replace(state, total=total, faults=dict(recovery.faults))


def _failed(why: object) -> str:
    return f"round not unmasked: {why}"
