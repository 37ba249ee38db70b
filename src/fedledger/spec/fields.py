"""Every field of a job spec: its type, its bounds, its default and what it means.

The CLI's flags are these fields (`--rounds` …), so this is the one list a user reads to
write a spec. What the fields mean together — the cross-field rules, the derived values,
the canonical form that is hashed — is `JobSpec` (`job.py`), which adds no field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fedledger.data.schema import DataSchema

DATASETS = ("mnist", "digits", "breast_cancer", "fashion_mnist", "lending_club")
PARTITIONS = ("iid", "dirichlet", "key", "organisation")
AGGREGATIONS = ("fedavg", "median", "trimmed_mean", "krum", "multikrum", "clipped_fedavg", "fltrust")
MODELS = ("cnn", "mlp", "logreg")
#: Rules that need only the sum of the updates, so they run under secure aggregation: the
#: trainer clips its own update for clipped_fedavg (validators cannot see it to clip it).
SECAGG_RULES = ("fedavg", "clipped_fedavg")


class Reader(BaseModel):
    """One party that may read individual updates: its address signs read requests, its key opens them.

    `key` is the X25519 public key derived from the party's Ethereum key; `fedledger store
    reader-key --key …` prints both for a spec.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="the reader's Ethereum address")
    key: str = Field(pattern=r"^0x[0-9a-f]{64}$", description="its X25519 read key (32 bytes, hex)")


class JobFields(BaseModel):
    """A job spec's fields, validated one by one (`JobSpec` checks them together)."""

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
    trainers: int = Field(10, ge=1, le=10_000, description="organisations training")
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
    dp_level: Literal["organisation", "record"] = Field(
        "organisation",
        description="DP: the unit protected: a whole organisation (noise on the aggregate) or one "
        "record (DP-SGD inside each trainer)",
    )
    dp_epsilon: float = Field(
        0.0,
        ge=0,
        description="differential privacy: the ε budget, the job's (organisation level) or each "
        "organisation's over its own records (record level); 0 means no DP",
    )
    dp_delta: float = Field(1e-5, gt=0, lt=1, description="differential privacy: δ of the (ε, δ) budget")
    dp_clip_norm: float = Field(
        1.0, gt=0, description="differential privacy: L2 bound each update is clipped to"
    )
    dp_noise_multiplier: float = Field(
        0.0, ge=0, description="DP: noise σ / clip norm; 0 means the smallest that affords every round"
    )
    dp_accountant: Literal["rdp", "pld"] = Field("rdp", description="DP accountant (dp-accounting library)")
    dp_max_grad_norm: float = Field(
        1.0, gt=0, description="record-level DP: L2 bound each example's gradient is clipped to (DP-SGD)"
    )
    dp_sample_rate: float = Field(
        0.01, gt=0, le=1, description="record-level DP: Poisson sampling rate, each record's chance per step"
    )
    dp_local_steps: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="record-level DP: DP-SGD steps per round; 0 means local_epochs passes in expectation",
    )
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
    # sampling on chain (issue 15): the contract draws who trains and who validates each round
    clients_per_round: int = Field(
        0, ge=0, le=65_535, description="trainers the contract draws each round; 0 means every trainer"
    )
    validators_per_round: int = Field(
        0,
        ge=0,
        le=65_535,
        description="committee seats the contract draws each round from the trainers, replacing the "
        "fixed committee; 0 keeps the fixed committee (validators)",
    )
    # optimistic verification (issue 13): one bonded proposer a round instead of a quorum
    verification: Literal["quorum", "optimistic"] = Field(
        "quorum",
        description="quorum: a round is final when a quorum of the committee proposes it; optimistic: "
        "one drawn, bonded proposer states it and it is final unless proven wrong within "
        "challenge_window_s (chunk-local rules only)",
    )
    challenge_window_s: int = Field(
        600, ge=1, description="optimistic: seconds anyone may prove a proposal wrong before it is final"
    )
    proposal_window_s: int = Field(
        60, ge=0, description="optimistic: seconds the drawn proposer has the round to itself"
    )
    proposer_bond: int = Field(
        10**18, ge=1, description="optimistic: token units each proposer, and anyone escalating, bonds"
    )
    challenge_bounty: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="optimistic: share of a slashed bond paid to whoever proved it wrong (below 1, or a "
        "liar that proves its own claim wrong would lose nothing)",
    )
    commit_window_s: int = Field(3600, ge=1, description="seconds trainers have to commit")
    aggregate_window_s: int = Field(3600, ge=1, description="seconds validators have to reach quorum")
    max_failures: int = Field(
        3, ge=0, description="failed rounds in a row tolerated; one more aborts the job"
    )
    stake: int = Field(10**18, ge=0, description="token units each participant stakes")
    reward_per_round: int = Field(100 * 10**18, ge=0, description="token units paid per round")
    seed: int = Field(0, ge=0, lt=2**32, description="seed for split, init and shuffling")
    # who may read individual updates (issue 18)
    readers: tuple[Reader, ...] = Field(
        (),
        max_length=64,
        description="parties who may read individual updates: every committee member plus any "
        "auditors; non-empty seals each update to them and blob servers serve updates only to them",
    )
