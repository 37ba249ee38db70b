"""What a simulation yields: one row per round, and the whole run's result.

These types sit below both the run loop (`simulate.py`) and the run writer (`outputs.py`), so
the writer can read a result without importing the loop that produced it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from fedledger.roles.scorer import RoundScores


@dataclass
class RoundMetrics:
    """One row of the per-round table, metrics.json and metrics.csv."""

    round: int
    version: int
    status: str  # "finalized" | "failed"
    commits: int
    accepted: int
    rejected: int
    flagged: int
    test_accuracy: float
    test_loss: float
    train_loss: float
    gas_used: int
    transactions: int
    chain_seconds: float
    train_seconds: float
    round_seconds: float
    model_commitment: str
    backdoor_success: float = float("nan")  # only computed under the backdoor attack
    scoring_seconds: float = 0.0  # contribution scoring of the round (one validator's)
    epsilon: float = 0.0  # differential privacy: the job's ε on chain after this round


@dataclass(frozen=True)
class Earnings:
    """One organisation's withdrawal at the end of the job, from its Withdrawn event."""

    reward: int  # as a trainer: its shares of the round rewards
    fees: int  # as a validator: fees for scores near consensus
    stake: int  # its deposit back, less slashes
    reputation: int  # its reputation score after this job (0..SCORE_ONE)


@dataclass(frozen=True)
class Challenge:
    """Optimistic mode: a claim a watcher proved wrong (or escalated to the committee's vote)."""

    round: int
    proposer: str  # organisation
    reason: str  # what was wrong, as the watcher judged it
    by: str  # the organisation that proved or escalated it
    escalated: bool = False


@dataclass
class OptimisticLedger:
    """What optimistic verification did over a run, for the summary and the metrics."""

    #: every claim a watcher proved wrong or escalated
    challenges: list[Challenge] = field(default_factory=list)
    proposals: int = 0
    settled: int = 0


@dataclass
class SimulationResult:
    out_dir: Path
    job_id: int
    rounds: list[RoundMetrics]
    final_accuracy: float
    final_commitment: bytes
    wall_seconds: float
    chain_seconds: float
    outcome: str = "completed"  # "completed" (every round finalised) or "aborted" (too many failures)
    participants: dict[str, str] = field(default_factory=dict)
    payouts: dict[str, int] = field(default_factory=dict)
    malicious: list[str] = field(default_factory=list)  # organisation names
    flags: dict[str, int] = field(default_factory=dict)  # organisation -> times flagged
    slashed: dict[str, int] = field(default_factory=dict)  # organisation -> stake units slashed
    ejected: list[str] = field(default_factory=list)
    #: measures the final model's backdoor success (whatever the attack), called on first read
    measure_backdoor: Callable[[], float] | None = field(default=None, repr=False, compare=False)
    scores: list[RoundScores] = field(default_factory=list)  # per finalised round, if scoring
    earnings: dict[str, Earnings] = field(default_factory=dict)  # organisation -> what it withdrew
    #: differential privacy: ε recorded on chain (PrivacySpent; at record level the largest organisation's)
    epsilon_spent: float = 0.0
    #: record-level DP: each organisation's ε over its own records, as recorded on chain
    epsilon_by_organisation: dict[str, float] = field(default_factory=dict)
    secagg_faults: list[tuple[int, str, str]] = field(default_factory=list)  # (round, org, fault)
    #: optimistic mode: every claim a watcher proved wrong or escalated
    challenges: list[Challenge] = field(default_factory=list)

    @cached_property
    def backdoor_success(self) -> float:
        """Share of triggered test images the final model gives the backdoor's label; NaN for own data.

        Measured when first read, not at the end of every run: it is a pass over the whole test
        set that a run without the backdoor attack only reports in the robustness grid.
        """
        return float("nan") if self.measure_backdoor is None else self.measure_backdoor()
