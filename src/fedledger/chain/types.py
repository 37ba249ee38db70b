"""The values the contracts take and return, as Python sees them: phases, states, events.

Kept apart from the clients that read and write them (`contract.py`, `coordinator.py`)
because the roles, the audit and the exports handle these values without ever talking
to a chain. Field names are the contract's, one name per concept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Phase(IntEnum):
    NONE = 0
    OPEN = 1
    AGGREGATING = 2
    DONE = 3
    ABORTED = 4


class RoundStatus(IntEnum):
    PENDING = 0
    FINALIZED = 1
    FAILED = 2


@dataclass(frozen=True)
class Event:
    """A decoded contract event with its place in the chain."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: str
    log_index: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "args": {k: jsonable(v) for k, v in self.args.items()},
            "address": self.address,
            "block_number": self.block_number,
            "tx_hash": self.tx_hash,
            "log_index": self.log_index,
        }


def jsonable(v: Any) -> Any:
    """Decoded ABI values as JSON: bytes as 0x-hex, tuples as lists."""
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    return v


@dataclass(frozen=True)
class JobParams:
    """Arguments of `create_job` (the contract's JobParams struct)."""

    token: str
    spec_hash: bytes
    initial_model: bytes
    rounds: int
    min_commits: int
    quorum: int
    commit_window: int
    aggregate_window: int
    max_failures: int
    stake: int
    reward_per_round: int
    slash_bps: int
    max_flags: int
    committee: list[str]
    allowlist: list[str]
    scored: bool = False
    validator_fee_bps: int = 0
    score_tolerance: int = 0
    min_reputation: int = 0
    clients_per_round: int = 0  # 0: every registered trainer trains each round
    validators_per_round: int = 0  # 0: the fixed committee votes each round


@dataclass(frozen=True)
class JobState:
    phase: Phase
    round: int
    deadline: int
    commits: int
    trainers: int
    examples: int
    version: int

    @property
    def running(self) -> bool:
        """The job still has rounds to run: its round is open for commits or aggregating."""
        return self.phase in (Phase.OPEN, Phase.AGGREGATING)


@dataclass(frozen=True)
class TrainerState:
    registered: bool
    excluded: bool
    settled: bool
    last_round: int
    examples: int
    slot: int
    accrued: int
    flags: int
    score: int
    rounds: int
    ejected: bool
    folded: bool
    sampled: bool = False


@dataclass(frozen=True)
class RoundResult:
    """A round's outcome as the contract keeps it for settlement."""

    status: RoundStatus
    accepted_commits: int
    accepted_weight: int  # examples, or the sum of consensus scores in a scored job
    reward: int  # what the round's trainers share
    scored: bool
    aggregate: bytes


@dataclass(frozen=True)
class Reputation:
    """An account's record over the jobs it has withdrawn from after they ended."""

    score: int  # 0..SCORE_ONE, mean of per-job score EMAs weighted by scored rounds
    rounds: int
    scored_rounds: int
    flags: int
    jobs: int


SCORE_ONE = 10_000  # the contract's full score: the round's best contribution
SCORES_PER_WORD = 16


def pack_scores(scores: Sequence[int]) -> list[int]:
    """Scores in commit order, 16 bits each and 16 to a word, as `propose` takes them."""
    words = [0] * (-(-len(scores) // SCORES_PER_WORD))
    for slot, score in enumerate(scores):
        if not 0 <= score <= SCORE_ONE:
            raise ValueError(f"score {score} for slot {slot} is outside 0..{SCORE_ONE}")
        words[slot // SCORES_PER_WORD] |= score << (16 * (slot % SCORES_PER_WORD))
    return words


def unpack_scores(words: Sequence[int], count: int) -> list[int]:
    """The first `count` scores of packed words (inverse of `pack_scores`)."""
    return [(words[s // SCORES_PER_WORD] >> (16 * (s % SCORES_PER_WORD))) & 0xFFFF for s in range(count)]


def flag_mask(excluded: Sequence[str], flagged: Sequence[str]) -> int:
    """Bit i set iff excluded[i] is flagged: how `propose` carries flags on chain."""
    position = {a.lower(): i for i, a in enumerate(excluded)}
    mask = 0
    for a in flagged:
        if a.lower() not in position:
            raise ValueError(f"flagged trainer {a} is not in the excluded list")
        mask |= 1 << position[a.lower()]
    return mask
