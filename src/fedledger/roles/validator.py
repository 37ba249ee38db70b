"""The validator: fetch every committed update, check it, aggregate, propose.

`compute_round` is a pure function of (store contents, spec, global model,
commits): every honest validator gets identical bytes from it, and the auditor
re-runs it verbatim to check each finalised round. Everything else here is the
small amount of I/O around it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
from eth_account.signers.local import LocalAccount

from fedledger.aggregation.base import AggregationRule, Update, get_rule
from fedledger.aggregation.screen import Screen
from fedledger.aggregation.stats import exact_fraction
from fedledger.aggregation.validate import validate_update
from fedledger.chain.base import Receipt
from fedledger.chain.contracts import Coordinator, Phase
from fedledger.codec.commitment import commitment_hex
from fedledger.data.stats import split_stats
from fedledger.errors import InvalidUpdate
from fedledger.roles.job import CommitRecord, fetch_committed
from fedledger.roles.outcome import Rejection, RoundOutcome, update_metadata
from fedledger.roles.scorer import PostedScores, RoundScorer
from fedledger.roles.stats_round import compute_stats_round, is_stats_round
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore

if TYPE_CHECKING:
    from fedledger.roles.secure import SecureInputs

log = logging.getLogger("fedledger.validator")


def check_update(
    store: BlobStore,
    spec: JobSpec,
    global_model: Mapping[str, np.ndarray],
    job_id: int,
    c: CommitRecord,
) -> dict[str, np.ndarray]:
    """Fetches and validates one committed update; raises InvalidUpdate with the reason."""
    delta, meta = fetch_committed(store, c)
    expected = update_metadata(job_id, c.round, c.trainer)
    if meta != expected:
        raise InvalidUpdate(f"blob metadata {meta} does not match the commit {expected}")
    validate_update(delta, global_model, spec.max_update_norm_q, scale_bits=spec.scale_bits)
    return delta


def rule_for(spec: JobSpec, *, root_trainer: str = "") -> AggregationRule:
    """The spec's aggregation rule with its parameters and flagging thresholds.

    `root_trainer` is the account whose committed update FLTrust trusts: the sponsor.
    """
    if spec.aggregation == "fedavg":
        return get_rule("fedavg")
    screen = Screen(
        # FLTrust already ignores updates at an angle to its root update (trust 0); on
        # non-IID data honest updates often are, so that alone is no proof of malice
        min_cosine=None if spec.aggregation == "fltrust" else exact_fraction(spec.flag_cosine),
        max_norm_ratio=exact_fraction(spec.flag_norm_ratio) or None,
    )
    params: dict[str, dict[str, object]] = {
        "median": {},
        "trimmed_mean": {"trim_fraction": spec.trim_fraction},
        "krum": {"byzantine": spec.byzantine},
        "multikrum": {"byzantine": spec.byzantine, "keep": spec.krum_keep},
        "clipped_fedavg": {"clip_norm_q": int(Decimal(repr(spec.clip_norm)) * spec.scale)},
        "fltrust": {"root_trainer": root_trainer},
    }
    return get_rule(spec.aggregation, screen=screen, **params[spec.aggregation])


def compute_round(
    *,
    store: BlobStore,
    spec: JobSpec,
    job_id: int,
    round: int,
    version: int,
    global_model: Mapping[str, np.ndarray],
    commits: Sequence[CommitRecord],
    root_trainer: str = "",
    secure: SecureInputs | None = None,
    releases_before: int = 0,
) -> RoundOutcome:
    """Validates every commit of `round` and aggregates the accepted ones into version+1.

    Updates that fail validation are flagged; of the valid ones the rule flags what it
    can justify. Every other valid update is accepted (and paid), used by the rule or not.
    A secure-aggregation job's rounds (`secure`: its key directory and reveals) are
    computed from the committers' masked sum instead (`roles/secure.py`), a differentially
    private job's from clipped updates plus noise (`roles/dp.py`; `releases_before`: the
    job's earlier noisy releases, for its budget). A job that standardises federatedly
    opens with a statistics round (`roles/stats_round.py`) and carries its statistics
    tensors unchanged through every later version.
    """
    if is_stats_round(spec, version):
        return compute_stats_round(
            store=store, spec=spec, job_id=job_id, round=round, version=version,
            global_model=global_model, commits=commits, secure=secure,
        )  # fmt: skip
    weights, carried = split_stats(global_model)
    outcome = _compute_model_round(
        store=store, spec=spec, job_id=job_id, round=round, version=version, global_model=weights,
        commits=commits, root_trainer=root_trainer, secure=secure, releases_before=releases_before,
    )  # fmt: skip
    return outcome.carrying(carried, job_id=job_id, version=version) if carried else outcome


def _compute_model_round(
    *,
    store: BlobStore,
    spec: JobSpec,
    job_id: int,
    round: int,
    version: int,
    global_model: Mapping[str, np.ndarray],
    commits: Sequence[CommitRecord],
    root_trainer: str,
    secure: SecureInputs | None,
    releases_before: int,
) -> RoundOutcome:
    if spec.secure:
        from fedledger.roles.secure import compute_secure_round

        if secure is None:
            raise ValueError("a secure-aggregation round needs its key directory and reveals (secure=)")
        return compute_secure_round(
            store=store,
            spec=spec,
            job_id=job_id,
            round=round,
            version=version,
            global_model=global_model,
            commits=commits,
            secure=secure,
            releases_before=releases_before,
        )
    if spec.dp:
        from fedledger.roles.dp import compute_dp_round

        return compute_dp_round(
            store=store,
            spec=spec,
            job_id=job_id,
            round=round,
            version=version,
            global_model=global_model,
            commits=commits,
            releases_before=releases_before,
        )
    rejected: list[Rejection] = []
    updates: list[Update] = []
    by_trainer: dict[str, CommitRecord] = {}
    deltas: dict[str, dict[str, np.ndarray]] = {}
    for c in sorted(commits, key=lambda c: int(c.trainer, 16)):
        try:
            delta = check_update(store, spec, global_model, job_id, c)
        except InvalidUpdate as exc:
            rejected.append(Rejection(c.trainer, c.commitment, str(exc)))
            continue
        by_trainer[c.trainer] = c
        deltas[c.trainer] = delta
        updates.append(
            Update(
                trainer=c.trainer,
                commitment=c.commitment,
                num_examples=c.num_examples,
                delta=delta,
                order=(c.block_number << 32) | c.log_index,
            )
        )
    accepted: list[CommitRecord] = []
    if spec.aggregation == "fltrust" and not any(u.trainer.lower() == root_trainer.lower() for u in updates):
        # no valid root update (the sponsor's node was late or down): FLTrust has no reference,
        # so the round changes nothing and fails rather than paying for updates it cannot weigh
        reason = "fltrust: no root update from the sponsor this round; nothing can be weighed"
        rejected += [Rejection(u.trainer, u.commitment, reason, flagged=False) for u in updates]
        rejected.sort(key=lambda r: int(r.trainer, 16))
        updates = []
    if updates:
        result = rule_for(spec, root_trainer=root_trainer).aggregate(global_model, updates)
        model = result.model
        for trainer, c in by_trainer.items():
            if trainer in result.flagged:
                reason = f"{spec.aggregation}: {result.flagged[trainer]}"
                rejected.append(Rejection(trainer, c.commitment, reason))
            elif root_trainer and trainer.lower() == root_trainer.lower():
                reason = "the root update: FLTrust's reference, not aggregated or paid"
                rejected.append(Rejection(trainer, c.commitment, reason, flagged=False))
            else:
                # valid and unflagged: paid, whether or not this rule's statistic used it
                # (Krum picks one update; the others did nothing wrong)
                accepted.append(c)
        rejected.sort(key=lambda r: int(r.trainer, 16))
    else:
        model = {k: np.asarray(v, dtype=np.int64) for k, v in global_model.items()}
    return RoundOutcome.of(
        model,
        job_id=job_id,
        round=round,
        version=version,
        accepted=accepted,
        rejected=rejected,
        deltas={c.trainer: deltas[c.trainer] for c in accepted},
    )


class Validator:
    """One committee member: computes each round independently and proposes it."""

    def __init__(
        self,
        *,
        name: str,
        account: LocalAccount,
        coordinator: Coordinator,
        store: BlobStore,
        spec: JobSpec,
        job_id: int,
        root_trainer: str = "",
        aggregate_hook: Callable[[bytes], bytes] | None = None,
        scorer: RoundScorer | None = None,
        score_hook: Callable[[list[int]], list[int]] | None = None,
    ) -> None:
        self.name = name
        self.root_trainer = root_trainer
        # the simulator's lying validator: proposes hook(aggregate) instead of the aggregate
        self.aggregate_hook = aggregate_hook
        # a scored job's contribution scores; the simulator's biased validator edits them
        self.scorer = scorer
        self.score_hook = score_hook
        self.last_scores: PostedScores | None = None
        self.account = account
        self.coordinator = coordinator
        self.store = store
        self.spec = spec
        self.job_id = job_id

    def register(self) -> Receipt:
        return self.coordinator.register(self.account, self.job_id, as_trainer=False)

    def process_round(
        self,
        *,
        round: int,
        version: int,
        global_model: Mapping[str, np.ndarray],
        commits: Sequence[CommitRecord],
        names: Mapping[str, str],
        secure: SecureInputs | None = None,
        releases_before: int = 0,
    ) -> tuple[RoundOutcome, Receipt | None]:
        """Computes the round and proposes it unless the round has already been decided.

        In a DP job `releases_before` counts the job's earlier noisy releases (PrivacySpent
        events); the proposal carries the job's ε once this round's is released too.
        """
        outcome = compute_round(
            secure=secure,
            releases_before=releases_before,
            store=self.store,
            spec=self.spec,
            job_id=self.job_id,
            round=round,
            version=version,
            global_model=global_model,
            commits=commits,
            root_trainer=self.root_trainer,
        )
        for r in outcome.rejected:
            log.debug(
                "%s: round %d: rejected update %s from %s: %s",
                self.name,
                round,
                commitment_hex(r.commitment)[:18],
                names.get(r.trainer, r.trainer),
                r.reason,
            )
        if not self.store.has(outcome.aggregate):  # another validator may have stored it
            self.store.put(outcome.blob)
        state = self.coordinator.job_state(self.job_id)
        if state.phase != Phase.AGGREGATING or state.round != round:
            return outcome, None
        aggregate = (
            outcome.aggregate if self.aggregate_hook is None else self.aggregate_hook(outcome.aggregate)
        )
        posted: list[int] = []
        if self.spec.scored:
            posted = self.post_scores(outcome, commits, split_stats(global_model)[0], names)
        micro_epsilon = 0
        if self.spec.dp and outcome.accepted:
            from fedledger.roles.dp import micro_epsilon_after

            micro_epsilon = micro_epsilon_after(self.spec, releases_before + 1)
        receipt = self.coordinator.propose(
            self.account,
            self.job_id,
            round,
            aggregate,
            outcome.excluded,
            outcome.flagged,
            posted,
            micro_epsilon=micro_epsilon,
        )
        return outcome, receipt

    def post_scores(
        self,
        outcome: RoundOutcome,
        commits: Sequence[CommitRecord],
        global_model: Mapping[str, np.ndarray],
        names: Mapping[str, str],
    ) -> list[int]:
        """This validator's scores for every committer of the round, in commit order."""
        if self.scorer is None:
            raise ValueError(f"{self.name}: the job is scored ({self.spec.scoring}) but has no scorer")
        self.last_scores = self.scorer.score(
            round=outcome.round,
            aggregate=outcome.aggregate,
            accepted=[(c.trainer, c.num_examples, outcome.deltas[c.trainer]) for c in outcome.accepted],
            commits=[(c.trainer, c.block_number, c.log_index) for c in commits],
            global_model=global_model,
            labels=names,
        )
        posted = list(self.last_scores.posted)
        return posted if self.score_hook is None else self.score_hook(posted)
