"""JobSpec: everything a job's participants must agree on, validated, canonical and hashed.

The spec's keccak256 hash goes on chain at job creation, so every party can check
that it trains, validates and audits against the same spec. The hash is over a
canonical JSON serialisation (sorted keys, no whitespace, every field present
with its default), so two parties that write the same spec with different key
order or omitted defaults still get the same hash.

The fields themselves are `JobFields` (`fields.py`); this class adds the rules that
tie them together and the values every party derives from them the same way.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_utils.crypto import keccak
from pydantic import ValidationError, model_validator

from fedledger.errors import SpecError
from fedledger.spec.fields import DATASETS, SECAGG_RULES
from fedledger.spec.privacy import dp_noise_for, dp_rounds_affordable
from fedledger.spec.verification import VerificationRules


class JobSpec(VerificationRules):
    """A federated training job. Field names are the CLI flag names (`--rounds` …)."""

    @model_validator(mode="after")
    def _check_data(self) -> JobSpec:
        if self.data_schema is None:
            if self.dataset not in DATASETS:
                raise ValueError(
                    f"dataset {self.dataset!r} is not bundled ({', '.join(DATASETS)}); "
                    "own data needs a data_schema"
                )
            if self.partition == "organisation":
                raise ValueError("partition=organisation needs the organisations' own data (data_schema)")
            if self.partition_key:
                raise ValueError("partition_key applies to own data only; bundled datasets carry their key")
            return self
        if self.dataset in DATASETS:
            raise ValueError(
                f"dataset {self.dataset!r} names a bundled dataset; give the own data another name"
            )
        if self.partition == "key" and not self.partition_key:
            raise ValueError("partition=key on own data needs partition_key, the column to split by")
        if self.partition != "key" and self.partition_key:
            raise ValueError("partition_key is only used with partition=key")
        if self.aggregation == "fltrust":
            raise ValueError(
                "fltrust needs the sponsor's root dataset, which only the bundled datasets hold out today"
            )
        if self.scored:
            raise ValueError(
                "contribution scoring needs a validation set every validator holds; own-data jobs "
                "do not have one yet"
            )
        if self.client:
            raise ValueError(
                "a Flower client (client) loads and preprocesses its own data, but an own-data job "
                "needs fedledger to read each organisation's source (schema checks, statistics, the "
                "data commitment), so nothing could vouch that the client trained on the committed "
                'rows: name the client\'s model factory in model = "package.module:build" instead'
            )
        if self.data_schema.federated_stats and (self.dp or self.record_dp):
            raise ValueError(
                "federated standardisation releases feature sums without DP noise; use "
                "standardise='none' in the data_schema for a DP job"
            )
        return self

    @model_validator(mode="after")
    def _check_sampling(self) -> JobSpec:
        """What a drawn sample or committee does not combine with yet, each said in one line."""
        if self.clients_per_round > self.trainers:
            raise ValueError(
                f"clients_per_round ({self.clients_per_round}) exceeds trainers ({self.trainers})"
            )
        if self.validators_per_round > self.trainers:
            raise ValueError(
                f"validators_per_round ({self.validators_per_round}) exceeds trainers ({self.trainers}): "
                "the committee is drawn from the trainers"
            )
        if self.clients_per_round and self.privacy == "secagg":
            raise ValueError(
                "privacy=secagg masks each update against every key in the directory; with "
                "clients_per_round the trainers left out would be dropouts every round"
            )
        if self.clients_per_round and self.federated_stats:
            raise ValueError(
                "federated standardisation needs every organisation's sums; it does not combine "
                "with clients_per_round"
            )
        if self.validators_per_round:
            if self.validators:
                raise ValueError(
                    "validators_per_round draws the committee; leave validators (the fixed one) at 0"
                )
            if self.scored:
                raise ValueError(
                    "contribution scoring settles scores over the fixed committee; it does not combine "
                    "with validators_per_round yet"
                )
            if self.readers:
                raise ValueError(
                    "readers seal updates to a fixed committee; any trainer may be drawn with "
                    "validators_per_round"
                )
        return self

    @model_validator(mode="after")
    def _check_committee(self) -> JobSpec:
        committee = self.validators_per_round or self.committee_size
        if committee > self.trainers:
            raise ValueError(f"validators ({committee}) exceeds trainers ({self.trainers})")
        if self.effective_quorum > committee:
            raise ValueError(f"quorum ({self.effective_quorum}) exceeds committee ({committee})")
        need = self.rule_min_updates
        if need > self.trainers:
            raise ValueError(
                f"{self.aggregation} with byzantine={self.byzantine} needs n >= 2f+3 = {need} updates a "
                f"round, but the job has {self.trainers} trainers: add trainers or lower byzantine"
            )
        if self.min_commits and self.min_commits < need:
            raise ValueError(
                f"{self.aggregation} with byzantine={self.byzantine} needs n >= 2f+3 = {need} updates a "
                f"round; min_commits={self.min_commits} would let rounds finalise with fewer"
            )
        if self.privacy == "secagg":
            if self.aggregation not in SECAGG_RULES:
                raise ValueError(
                    f"privacy=secagg hides individual updates, which {self.aggregation} needs: "
                    f"use {' or '.join(SECAGG_RULES)}"
                )
            if self.aggregation == "clipped_fedavg" and self.clip_norm == 0:
                raise ValueError(
                    "privacy=secagg with clipped_fedavg needs a fixed clip_norm > 0: the median norm "
                    "of masked updates cannot be known"
                )
            if self.trainers < 2:
                raise ValueError("privacy=secagg needs at least 2 trainers")
            if self.scored:
                raise ValueError(
                    "privacy=secagg hides the individual updates that contribution scoring needs"
                )
        if self.dp_level == "record":
            self._check_record_dp()
        if self.dp:
            if self.aggregation != "fedavg":
                raise ValueError(
                    f"dp_epsilon > 0 replaces FedAvg with the clipped, noised, unweighted mean; "
                    f"it does not combine with {self.aggregation}"
                )
            if self.scored:
                raise ValueError("dp_epsilon > 0 does not combine with contribution scoring")
            affordable = self.dp_rounds_affordable
            if affordable < self.rounds:
                raise ValueError(
                    f"the (ε={self.dp_epsilon:g}, δ={self.dp_delta:g}) budget affords {affordable} rounds "
                    f"at noise multiplier {self.noise_multiplier:g}, not {self.rounds}: lower rounds or "
                    "raise the noise"
                )
        if self.readers:
            addresses = [r.address.lower() for r in self.readers]
            if len(set(addresses)) != len(addresses):
                raise ValueError("readers lists an address twice")
            if len(addresses) < committee:
                raise ValueError(
                    f"readers lists {len(addresses)} parties but the committee has {committee}: every "
                    "validator must be a reader to open the updates it validates"
                )
        if self.aggregation == "multikrum" and self.krum_keep > self.trainers:
            raise ValueError(f"krum_keep ({self.krum_keep}) exceeds trainers ({self.trainers})")
        if self.effective_min_commits > self.trainers:
            raise ValueError(f"min_commits ({self.effective_min_commits}) exceeds trainers ({self.trainers})")
        if self.clients_per_round and self.effective_min_commits > self.clients_per_round:
            raise ValueError(
                f"min_commits ({self.effective_min_commits}) exceeds clients_per_round "
                f"({self.clients_per_round})"
            )
        return self

    def _check_record_dp(self) -> None:
        """Record level: DP-SGD runs in fedledger's trainer, so a budget and our training loop are needed.

        No rule, mode or scoring is excluded: no noise is added centrally, so the aggregate is
        an ordinary one over updates that are each already private.
        """
        if self.dp_epsilon == 0:
            raise ValueError("dp_level=record needs a budget: set dp_epsilon > 0")
        if self.client:
            raise ValueError(
                "dp_level=record runs DP-SGD in fedledger's own training loop; an organisation's own "
                "Flower client trains its own way, so leave client empty or use dp_level=organisation"
            )
        affordable = self.dp_rounds_affordable
        if affordable < 1:
            raise ValueError(
                f"the (ε={self.dp_epsilon:g}, δ={self.dp_delta:g}) budget does not afford one round of "
                f"{self.dp_steps_per_round} DP-SGD steps at noise multiplier {self.noise_multiplier:g} "
                f"and sampling rate {self.dp_sample_rate:g}: raise the noise or lower the steps"
            )

    # -- derived values every party computes the same way ---------------------------------

    @property
    def own_data(self) -> bool:
        """Whether each organisation trains on its own source (described by data_schema)."""
        return self.data_schema is not None

    @property
    def federated_stats(self) -> bool:
        """Whether the job opens with a statistics round: standardisation from everyone's sums."""
        return self.data_schema is not None and self.data_schema.federated_stats

    @property
    def chain_rounds(self) -> int:
        """Rounds the contract runs: the training rounds, after a statistics round if there is one."""
        return self.rounds + (1 if self.federated_stats else 0)

    @property
    def committee_size(self) -> int:
        return self.validators or self.trainers

    @property
    def effective_quorum(self) -> int:
        return self.quorum or -(-2 * (self.validators_per_round or self.committee_size) // 3)

    @property
    def sampled(self) -> bool:
        """Whether the contract draws the round's trainers or its committee (issue 15)."""
        return bool(self.clients_per_round or self.validators_per_round)

    @property
    def rule_min_updates(self) -> int:
        """Fewest updates the aggregation rule needs: Krum's n >= 2f + 3, otherwise 1."""
        return 2 * self.byzantine + 3 if self.aggregation in ("krum", "multikrum") else 1

    @property
    def effective_min_commits(self) -> int:
        return self.min_commits or max(
            -(-(self.clients_per_round or self.trainers) // 2), self.rule_min_updates
        )

    @property
    def slash_bps(self) -> int:
        """slash_fraction in basis points, from the decimal text of the float (exact)."""
        return int(Decimal(repr(self.slash_fraction)) * 10_000)

    @property
    def scored(self) -> bool:
        return self.scoring != "none"

    @property
    def validator_fee_bps(self) -> int:
        """Zero unless the job is scored: the fee rewards scores near consensus."""
        return int(Decimal(repr(self.validator_fee)) * 10_000) if self.scored else 0

    @property
    def score_tolerance_units(self) -> int:
        """score_tolerance in the contract's score units (SCORE_ONE = 10,000 is the best)."""
        return int(Decimal(repr(self.score_tolerance)) * 10_000)

    @property
    def min_reputation_units(self) -> int:
        return int(Decimal(repr(self.min_reputation)) * 10_000)

    @property
    def dp(self) -> bool:
        """Organisation-level DP: validators clip the updates and noise the aggregate."""
        return self.dp_epsilon > 0 and self.dp_level == "organisation"

    @property
    def record_dp(self) -> bool:
        """Record-level DP: each trainer runs DP-SGD on its own records; nothing is noised centrally."""
        return self.dp_epsilon > 0 and self.dp_level == "record"

    @property
    def dp_sampling_rate(self) -> float:
        """Each release's sampling rate: 1 for the aggregate (every trainer commits), q for DP-SGD."""
        return self.dp_sample_rate if self.dp_level == "record" else 1.0

    @property
    def dp_steps_per_round(self) -> int:
        """Releases per round a trainer takes part in: 1 aggregate, or its DP-SGD steps.

        At record level 0 steps means local_epochs passes in expectation, ⌈local_epochs / q⌉,
        a number that does not depend on how many rows an organisation has, so anyone can
        recompute every organisation's ε from the spec and its commits alone.
        """
        if self.dp_level != "record":
            return 1
        return self.dp_local_steps or -(-self.local_epochs * 10**9 // round(self.dp_sample_rate * 10**9))

    @property
    def noise_multiplier(self) -> float:
        """The DP noise multiplier z: the spec's, or the smallest whose ε over every round fits."""
        if self.dp_noise_multiplier > 0:
            return self.dp_noise_multiplier
        return dp_noise_for(
            self.dp_epsilon,
            self.dp_delta,
            self.rounds * self.dp_steps_per_round,
            self.dp_accountant,
            self.dp_sampling_rate,
        )

    @property
    def dp_rounds_affordable(self) -> int:
        """Rounds a trainer (record level) or the job (organisation level) can spend within the budget."""
        return dp_rounds_affordable(
            self.dp_epsilon,
            self.dp_delta,
            self.noise_multiplier,
            self.dp_accountant,
            self.dp_sampling_rate,
            self.dp_steps_per_round,
        )

    @property
    def dp_clip_q(self) -> int:
        from fedledger.privacy.dp import clip_bound_q

        return clip_bound_q(self.dp_clip_norm, self.scale_bits)

    @property
    def secure(self) -> bool:
        return self.privacy == "secagg"

    @property
    def scale(self) -> int:
        return 1 << self.scale_bits

    @property
    def max_update_norm_q(self) -> int:
        """The norm bound in fixed-point units, from the decimal text of the float (exact)."""
        return int(Decimal(repr(self.max_update_norm)) * self.scale)

    # -- canonical form --------------------------------------------------------------------

    def canonical_json(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()

    def spec_hash(self) -> bytes:
        return bytes(keccak(self.canonical_json()))

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """Validates `data`, raising `SpecError` naming the first bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "spec"
            # a validator's own message, without the "Value error, " pydantic puts before it
            raise SpecError(field, err["msg"].removeprefix("Value error, ")) from None

    @classmethod
    def load(cls, path: str | Path) -> JobSpec:
        """Reads a spec from a JSON or TOML file; every refusal is one line naming the file."""
        p = Path(path)
        kind = "TOML" if p.suffix == ".toml" else "JSON"
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError("file", f"cannot read {p}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise SpecError("file", f"{p} is not UTF-8 (byte {exc.start}); save the spec as UTF-8") from None
        try:
            if kind == "TOML":
                import tomllib

                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except ValueError as exc:
            raise SpecError("file", f"{p} is not valid {kind}: {' '.join(str(exc).split())}") from None
        if not isinstance(data, dict):
            raise SpecError("file", f"{p} must hold an object of spec fields, not {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except SpecError as exc:
            detail = str(exc).removeprefix(f"job spec: {exc.field}: ")
            raise type(exc)(exc.field, f"{' '.join(detail.split())} (in {p})") from None

    def with_overrides(self, **overrides: Any) -> JobSpec:
        """A copy with some fields replaced (None values ignored), validated again."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return JobSpec.from_dict(data)
