"""What a round's stages share: the round's inputs, the state they hand on, and the Stage interface.

A round is one path (`roles/pipeline.py`): fetch → validate → (unmask) → (clip) → aggregate
→ (noise) → outcome. Each stage is a pure function of (inputs, state) to a new state, so
the validator, the node and the audit all evaluate the same stages to the same bytes. These
types (with `SecureInputs`, which the node, the simulator and the audit build from chain
events) sit below every stage (`roles/stages.py`, `roles/dp.py`, `roles/secure.py`,
`roles/stats_round.py`) and the pipeline that orders them, so no stage imports its caller.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import Rejection
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore

if TYPE_CHECKING:
    from fedledger.chain.contracts import Event


def trainer_order(address: str) -> int:
    """Every list a round produces is in this order: the same on every machine."""
    return int(address, 16)


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


@dataclass(frozen=True)
class RoundInputs:
    """Everything a round is a pure function of: the store's contents, the spec, the chain's view."""

    store: BlobStore
    spec: JobSpec
    job_id: int
    round: int
    version: int
    #: what updates are checked against and applied to (a model round: the weights only)
    global_model: Mapping[str, np.ndarray]
    commits: tuple[CommitRecord, ...]  # in trainer order
    root_trainer: str = ""  # FLTrust's trusted root update comes from this account
    secure: SecureInputs | None = None  # a secure round's key directory and reveals
    releases_before: int = 0  # a DP job's earlier noisy releases, for its budget
    #: tensors carried unchanged into the new model (the job's committed feature statistics)
    carried: Mapping[str, np.ndarray] = field(default_factory=dict)

    def unchanged(self) -> dict[str, np.ndarray]:
        """The global model as the new one: what a round that aggregates nothing commits."""
        return {k: np.asarray(v, dtype=np.int64) for k, v in self.global_model.items()}


@dataclass(frozen=True)
class Candidate:
    """A fetched update still in the running: its commit, its tensors and what travelled with them."""

    commit: CommitRecord
    tensors: Mapping[str, np.ndarray]  # the update as committed (masked, in a secure round)
    extra: bytes = b""  # a DP update's secret nonce; a masked update's share bundle

    @property
    def trainer(self) -> str:
        return self.commit.trainer


@dataclass(frozen=True)
class RoundState:
    """What one stage hands the next. Stages return a new state; none edits the one it got."""

    valid: tuple[Candidate, ...] = ()  # fetched, not rejected so far, in trainer order
    rejected: tuple[Rejection, ...] = ()
    #: the sum the round releases once aggregated (secure: unmasked; DP: clipped, then noised)
    total: Mapping[str, np.ndarray] | None = None
    model: dict[str, np.ndarray] | None = None  # the new model; None: the global one unchanged
    accepted: tuple[CommitRecord, ...] = ()  # paid: valid and unflagged
    deltas: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)  # accepted, by trainer
    faults: Mapping[str, str] = field(default_factory=dict)  # at fault without stopping the round

    def reject(
        self, commits: Iterable[CommitRecord], reason: str, *, flagged: bool = True
    ) -> tuple[Rejection, ...]:
        """The rejections so far plus `commits` left out for `reason`."""
        return self.rejected + tuple(Rejection(c.trainer, c.commitment, reason, flagged) for c in commits)

    def drop_all(self, reason: str, *, flagged: bool = False) -> RoundState:
        """Every candidate still in the running left out for `reason`: nothing is aggregated."""
        return replace(
            self,
            valid=(),
            total=None,
            rejected=self.reject((v.commit for v in self.valid), reason, flagged=flagged),
        )


class Stage(ABC):
    """One step of a round: a pure function of (inputs, state) to the next state.

    A mode is a list of stages (`pipeline.stages_for`); adding a mode means adding its stages
    there, not a branch in every caller. The maths a stage applies lives in the lower layers
    (`aggregation/`, `privacy/`, `data/stats.py`); a stage only decides what it applies to.
    """

    name: ClassVar[str]

    @abstractmethod
    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState: ...
