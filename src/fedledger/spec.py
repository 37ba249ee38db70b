"""JobSpec: everything a job's participants must agree on, validated, canonical and hashed.

The spec's keccak256 hash goes on chain at job creation, so every party can check
that it trains, validates and audits against the same spec. The hash is over a
canonical JSON serialisation (sorted keys, no whitespace, every field present
with its default), so two parties that write the same spec with different key
order or omitted defaults still get the same hash.
"""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fedledger.data.schema import DataSchema
from fedledger.errors import SpecError

DATASETS = ("mnist", "digits", "breast_cancer", "fashion_mnist")
PARTITIONS = ("iid", "dirichlet", "key", "organisation")
AGGREGATIONS = ("fedavg", "median", "trimmed_mean", "krum", "multikrum", "clipped_fedavg", "fltrust")
MODELS = ("cnn", "mlp", "logreg")
#: Rules that need only the sum of the updates, so they run under secure aggregation: the
#: trainer clips its own update for clipped_fedavg (validators cannot see it to clip it).
SECAGG_RULES = ("fedavg", "clipped_fedavg")


@lru_cache(maxsize=64)
def dp_noise_for(epsilon: float, delta: float, rounds: int, accountant: str) -> float:
    """The accountant's smallest noise multiplier for the budget (cached: specs are re-validated)."""
    from fedledger.errors import PrivacyError
    from fedledger.privacy.accountant import noise_multiplier_for

    try:
        return noise_multiplier_for(epsilon, delta, rounds, 1.0, accountant)
    except PrivacyError as exc:
        raise ValueError(str(exc)) from None


@lru_cache(maxsize=64)
def dp_rounds_affordable(epsilon: float, delta: float, z: float, accountant: str) -> int:
    from fedledger.privacy.accountant import rounds_affordable

    return rounds_affordable(epsilon, delta, z, 1.0, accountant, max_rounds=100_000)


@lru_cache(maxsize=4096)
def dp_micro_epsilon(z: float, releases: int, delta: float, accountant: str) -> int:
    """Micro-ε (rounded up) after `releases` noisy aggregates: what validators post on chain."""
    from fedledger.privacy.accountant import epsilon, micro_epsilon

    return micro_epsilon(epsilon(z, 1.0, releases, delta, accountant)) if releases else 0


class JobSpec(BaseModel):
    """A federated training job. Field names are the CLI flag names (`--rounds` …)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("mnist-fedavg", min_length=1, max_length=64, description="job name")
    # data and model
    dataset: str = Field(
        "mnist",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="a bundled dataset (mnist, digits, breast_cancer, fashion_mnist), or the name of "
        "the organisations' own data, described by data_schema",
    )
    data_schema: DataSchema | None = Field(
        None, description="the organisations' own data: columns, types, label classes, preprocessing"
    )
    partition: Literal["iid", "dirichlet", "key", "organisation"] = Field(
        "dirichlet",
        description="how rows are split among trainers; organisation: each trains on its own source",
    )
    partition_key: str = Field(
        "", max_length=128, description="partition=key on own data: the column whose values stay whole"
    )
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration (partition=dirichlet)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="held-out share no trainer sees")
    model: str = Field(
        "cnn",
        min_length=1,
        max_length=200,
        pattern=r"^(cnn|mlp|logreg|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$",
        description="cnn, mlp, logreg, or a PyTorch module factory 'package.module:build'",
    )
    client: str = Field(
        "",
        max_length=200,
        pattern=r"^([A-Za-z_][\w.]*:[A-Za-z_]\w*)?$",
        description="an organisation's own Flower client: 'module:client_fn' or a NumPyClient subclass",
    )
    code_digest: str = Field(
        "",
        max_length=66,
        pattern=r"^(0x[0-9a-f]{64})?$",
        description="keccak256 of the approved model/client source files (simulate fills it in)",
    )
    # federation
    trainers: int = Field(10, ge=1, le=256, description="organisations training")
    rounds: int = Field(20, ge=1, le=100_000, description="rounds to finalise")
    local_epochs: int = Field(2, ge=1, le=100, description="local epochs per round")
    batch_size: int = Field(32, ge=1, le=65_536, description="local minibatch size")
    learning_rate: float = Field(0.05, gt=0, le=10, description="local SGD learning rate")
    momentum: float = Field(0.9, ge=0, lt=1, description="local SGD momentum")
    aggregation: Literal[
        "fedavg", "median", "trimmed_mean", "krum", "multikrum", "clipped_fedavg", "fltrust"
    ] = Field("fedavg", description="aggregation rule")
    trim_fraction: float = Field(
        0.2, ge=0, lt=0.5, description="trimmed_mean: share of values cut at each end per coordinate"
    )
    byzantine: int = Field(
        2, ge=0, le=100, description="krum, multikrum: trainers assumed Byzantine (f); needs n >= 2f+3"
    )
    krum_keep: int = Field(0, ge=0, description="multikrum: updates averaged (m); 0 means n - f")
    clip_norm: float = Field(
        0.0, ge=0, description="clipped_fedavg: L2 clip bound; 0 means the round's median update norm"
    )
    root_examples: int = Field(
        100, ge=1, le=10_000, description="fltrust: rows of the sponsor's root dataset, held out of the split"
    )
    root_dataset: str = Field(
        "", max_length=66, description="fltrust: keccak256 of the root dataset (simulate fills it in)"
    )
    # privacy
    privacy: Literal["none", "secagg"] = Field(
        "none", description="secagg: SecAgg+ masking, validators learn only the sum (fedavg, clipped_fedavg)"
    )
    secagg_threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="secagg: shares needed to unmask, as a fraction of a trainer's neighbours",
    )
    secagg_degree: int = Field(
        0,
        ge=0,
        le=255,
        description="secagg: neighbours per trainer; 0 means about 3 log2 n (n - 1: complete)",
    )
    dp_epsilon: float = Field(
        0.0, ge=0, description="differential privacy: the job's ε budget (user-level); 0 means no DP"
    )
    dp_delta: float = Field(1e-5, gt=0, lt=1, description="differential privacy: δ of the (ε, δ) budget")
    dp_clip_norm: float = Field(
        1.0, gt=0, description="differential privacy: L2 bound each update is clipped to"
    )
    dp_noise_multiplier: float = Field(
        0.0, ge=0, description="DP: noise σ / clip norm; 0 means the smallest that affords every round"
    )
    dp_accountant: Literal["rdp", "pld"] = Field("rdp", description="DP accountant (dp-accounting library)")
    # contribution scoring
    scoring: Literal["none", "loo", "gtg", "exact"] = Field(
        "none", description="contribution scores per round: leave-one-out, GTG-Shapley or exact Shapley"
    )
    scoring_utility: Literal["linear", "accuracy"] = Field(
        "linear", description="coalition utility: first-order loss decrease (fast) or evaluated accuracy"
    )
    validation_examples: int = Field(
        300, ge=10, le=100_000, description="rows held out of the split as the scoring validation set"
    )
    validation_dataset: str = Field(
        "", max_length=66, description="keccak256 of the scoring validation set (simulate fills it in)"
    )
    validator_fee: float = Field(
        0.1, ge=0, le=1, description="scored jobs: share of each round reward for validators near consensus"
    )
    score_tolerance: float = Field(
        0.05, ge=0, le=1, description="scored jobs: how far (of the best) a validator may be from consensus"
    )
    min_reputation: float = Field(
        0.0, ge=0, le=1, description="reputation (of the best score) needed from earlier jobs to join"
    )
    # flags and penalties
    flag_cosine: float = Field(
        0.0, ge=-1, le=1, description="robust rules flag updates whose cosine with their aggregate is below"
    )
    flag_norm_ratio: float = Field(
        8.0, ge=0, description="robust rules flag updates longer than this times the median norm; 0: off"
    )
    slash_fraction: float = Field(0.1, ge=0, le=1, description="share of the stake slashed per flag")
    max_flags: int = Field(3, ge=0, le=65_535, description="flags that eject a trainer; 0 never ejects")
    # determinism contract
    scale_bits: int = Field(20, ge=4, le=40, description="fixed-point scale 2**scale_bits")
    max_update_norm: float = Field(
        100.0, gt=0, description="L2 bound on a dequantised update; larger ones are rejected"
    )
    # on-chain parameters
    min_commits: int = Field(0, ge=0, description="0 means half the trainers, rounded up")
    validators: int = Field(0, ge=0, description="committee size; 0 means every trainer")
    quorum: int = Field(0, ge=0, description="0 means two thirds of the committee, rounded up")
    commit_window_s: int = Field(3600, ge=1, description="seconds trainers have to commit")
    aggregate_window_s: int = Field(3600, ge=1, description="seconds validators have to reach quorum")
    max_failures: int = Field(
        3, ge=0, description="failed rounds in a row tolerated; one more aborts the job"
    )
    stake: int = Field(10**18, ge=0, description="token units each participant stakes")
    reward_per_round: int = Field(100 * 10**18, ge=0, description="token units paid per round")
    seed: int = Field(0, ge=0, lt=2**32, description="seed for split, init and shuffling")

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
        if self.data_schema.federated_stats and self.dp:
            raise ValueError(
                "federated standardisation releases feature sums without DP noise; use "
                "standardise='none' in the data_schema for a DP job"
            )
        return self

    @model_validator(mode="after")
    def _check_committee(self) -> JobSpec:
        committee = self.committee_size
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
        if self.dp:
            if self.aggregation != "fedavg":
                raise ValueError(
                    f"dp_epsilon > 0 replaces FedAvg with the clipped, noised, unweighted mean; "
                    f"it does not combine with {self.aggregation}"
                )
            if self.scored:
                raise ValueError("dp_epsilon > 0 does not combine with contribution scoring")
            affordable = dp_rounds_affordable(
                self.dp_epsilon, self.dp_delta, self.noise_multiplier, self.dp_accountant
            )
            if affordable < self.rounds:
                raise ValueError(
                    f"the (ε={self.dp_epsilon:g}, δ={self.dp_delta:g}) budget affords {affordable} rounds "
                    f"at noise multiplier {self.noise_multiplier:g}, not {self.rounds}: lower rounds or "
                    "raise the noise"
                )
        if self.aggregation == "multikrum" and self.krum_keep > self.trainers:
            raise ValueError(f"krum_keep ({self.krum_keep}) exceeds trainers ({self.trainers})")
        if self.effective_min_commits > self.trainers:
            raise ValueError(f"min_commits ({self.effective_min_commits}) exceeds trainers ({self.trainers})")
        return self

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
        return self.quorum or -(-2 * self.committee_size // 3)

    @property
    def rule_min_updates(self) -> int:
        """Fewest updates the aggregation rule needs: Krum's n >= 2f + 3, otherwise 1."""
        return 2 * self.byzantine + 3 if self.aggregation in ("krum", "multikrum") else 1

    @property
    def effective_min_commits(self) -> int:
        return self.min_commits or max(-(-self.trainers // 2), self.rule_min_updates)

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
        return self.dp_epsilon > 0

    @property
    def noise_multiplier(self) -> float:
        """The DP noise multiplier z: the spec's, or the smallest whose ε over every round fits."""
        if self.dp_noise_multiplier > 0:
            return self.dp_noise_multiplier
        return dp_noise_for(self.dp_epsilon, self.dp_delta, self.rounds, self.dp_accountant)

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
            raise SpecError(field, err["msg"]) from None

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
