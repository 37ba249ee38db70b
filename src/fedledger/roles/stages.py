"""The stages every mode draws on: fetch, validate, the spec's aggregation rule, sum and mean.

Mode-specific stages live with their mode: unmasking in `roles/secure.py`, the budget, clip
and noise in `roles/dp.py`, the statistics checks in `roles/stats_round.py`. The arithmetic
is the lower layers' (`aggregation/`); here is only what it is applied to and what a
failure means for each update (left out, flagged, or the round fails).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np

from fedledger.aggregation.base import AggregationRule, Update, apply_delta, get_rule
from fedledger.aggregation.screen import Screen
from fedledger.aggregation.stats import div_half_up, exact_fraction
from fedledger.aggregation.validate import validate_update
from fedledger.errors import InvalidUpdate, UpdateOutOfBounds
from fedledger.roles.job import CommitRecord, fetch_committed
from fedledger.roles.outcome import Rejection, update_metadata
from fedledger.roles.round_types import Candidate, RoundInputs, RoundState, Stage
from fedledger.spec import JobSpec

#: reads one commit's blob: the candidate, or InvalidUpdate saying why the commit is unusable
Reader = Callable[[RoundInputs, CommitRecord], Candidate]
#: checks one candidate: returns, or raises InvalidUpdate with the reason
Check = Callable[[RoundInputs, Candidate], None]


def read_update(inputs: RoundInputs, c: CommitRecord) -> Candidate:
    """A committed update whose blob metadata names exactly this job, round and trainer."""
    tensors, meta = fetch_committed(inputs.store, c)
    expected = update_metadata(inputs.job_id, c.round, c.trainer)
    if meta != expected:
        raise InvalidUpdate(f"blob metadata {meta} does not match the commit {expected}")
    return Candidate(c, tensors)


def check_bounds(inputs: RoundInputs, candidate: Candidate) -> None:
    """The global model's names, dtypes and shapes, and the spec's norm bound."""
    bound, bits = inputs.spec.max_update_norm_q, inputs.spec.scale_bits
    validate_update(candidate.tensors, inputs.global_model, bound, scale_bits=bits)


@dataclass(frozen=True)
class Fetch(Stage):
    """Reads every commit's blob; one that is missing, corrupt or mislabelled is flagged."""

    name = "fetch"
    read: Reader = read_update
    prefix: str = ""  # put before every reason, naming the kind of round

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        valid = list(state.valid)
        rejected = list(state.rejected)
        for c in inputs.commits:
            try:
                valid.append(self.read(inputs, c))
            except InvalidUpdate as exc:
                rejected.append(Rejection(c.trainer, c.commitment, f"{self.prefix}{exc}"))
        return replace(state, valid=tuple(valid), rejected=tuple(rejected))


@dataclass(frozen=True)
class Validate(Stage):
    """Checks every fetched update; one that fails is flagged, provably from the store."""

    name = "validate"
    check: Check = check_bounds
    prefix: str = ""

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        valid: list[Candidate] = []
        failed: list[tuple[Rejection, bool]] = []  # in trainer order; True: well formed, over the bound
        for v in state.valid:
            try:
                self.check(inputs, v)
            except InvalidUpdate as exc:
                r = Rejection(v.trainer, v.commit.commitment, f"{self.prefix}{exc}")
                failed.append((r, isinstance(exc, UpdateOutOfBounds)))
            else:
                valid.append(v)
        too_large = sum(large for _, large in failed)
        if 2 * too_large <= len(inputs.commits):
            return replace(state, valid=tuple(valid), rejected=state.rejected + tuple(r for r, _ in failed))
        # Most of the round is over the bound: under an honest majority that says the global
        # model is out of range (a poisoned round before made it diverge), not that the trainers
        # cheated. None of them is flagged, nothing is aggregated, the round fails.
        why = f"{too_large} of {len(inputs.commits)} updates exceed the bound, so none is flagged"
        rejected = tuple(
            replace(r, flagged=False, reason=f"{r.reason} ({why})") if large else r for r, large in failed
        )
        dropped = replace(state, valid=tuple(valid), rejected=state.rejected + rejected)
        return dropped.drop_all(f"{self.prefix}{why}; the round changes nothing")


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


def _is_root(trainer: str, root_trainer: str) -> bool:
    return trainer.lower() == root_trainer.lower()


@dataclass(frozen=True)
class RootGuard(Stage):
    """FLTrust without its root update has no reference: the round changes nothing and fails.

    (The sponsor's node was late or down.) Rather than pay for updates it cannot weigh, every
    valid update is left out, unflagged.
    """

    name = "root"

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if any(_is_root(v.trainer, inputs.root_trainer) for v in state.valid):
            return state
        return state.drop_all("fltrust: no root update from the sponsor this round; nothing can be weighed")


@dataclass(frozen=True)
class AggregateRule(Stage):
    """The spec's rule (`aggregation/`) over the valid updates, which it may flag.

    Every other valid update is accepted (and paid), used by the rule or not: Krum picks one
    update; the others did nothing wrong. FLTrust's root update is its reference, neither
    aggregated nor paid.
    """

    name = "aggregate"

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if not state.valid:
            return state
        updates = [
            Update(
                trainer=v.trainer,
                commitment=v.commit.commitment,
                num_examples=v.commit.num_examples,
                delta=v.tensors,
                order=(v.commit.block_number << 32) | v.commit.log_index,
            )
            for v in state.valid
        ]
        rule = rule_for(inputs.spec, root_trainer=inputs.root_trainer)
        result = rule.aggregate(inputs.global_model, updates)
        by_trainer = {v.trainer: v for v in state.valid}
        rejected = list(state.rejected)
        accepted: list[CommitRecord] = []
        for trainer, v in by_trainer.items():
            c = v.commit
            if trainer in result.flagged:
                reason = f"{inputs.spec.aggregation}: {result.flagged[trainer]}"
                rejected.append(Rejection(trainer, c.commitment, reason))
            elif inputs.root_trainer and _is_root(trainer, inputs.root_trainer):
                reason = "the root update: FLTrust's reference, not aggregated or paid"
                rejected.append(Rejection(trainer, c.commitment, reason, flagged=False))
            else:
                accepted.append(c)
        return replace(
            state,
            model=result.model,
            rejected=tuple(rejected),
            accepted=tuple(accepted),
            deltas={c.trainer: by_trainer[c.trainer].tensors for c in accepted},
        )


@dataclass(frozen=True)
class Sum(Stage):
    """The exact int64 sum of the valid updates, unweighted (DP's sensitivity is per update)."""

    name = "sum"

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if not state.valid:
            return state
        parts = [v.tensors for v in state.valid]
        total = {n: np.asarray(np.sum([p[n] for p in parts], axis=0, dtype=np.int64)) for n in parts[0]}
        return replace(state, total=total)


@dataclass(frozen=True)
class Mean(Stage):
    """global + ⌊(2·total + W) / 2W⌉ per coordinate: FedAvg's rounding (`aggregation/fedavg.py`).

    W is the valid updates' example count, or their number when `unweighted` (DP rounds: one
    trainer's influence is bounded by the clip norm, not by what it claims). Every valid
    update is accepted.
    """

    name = "mean"
    unweighted: bool = False

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        if state.total is None:
            return state
        total = state.total
        weight = len(state.valid) if self.unweighted else sum(v.commit.num_examples for v in state.valid)
        if weight <= 0:
            raise InvalidUpdate("weights sum to 0; nothing to average")
        mean = {
            n: div_half_up(np.asarray(total[n], dtype=np.int64).reshape(-1), weight).reshape(np.shape(g))
            for n, g in inputs.global_model.items()
        }
        return replace(
            state,
            model=apply_delta(inputs.global_model, mean),
            accepted=tuple(v.commit for v in state.valid),
        )
