"""What every role reads from the chain about one job: commits, rounds, results.

Roles never trust each other, only the chain: this reader turns the
coordinator's event log into per-round records, polling new blocks
incrementally so a long job does not re-read its whole history each round.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from fedledger.chain.contracts import Coordinator, Event
from fedledger.codec.blob import decode_blob
from fedledger.errors import BlobIntegrityError, BlobNotFound, CodecError, InvalidUpdate
from fedledger.store.base import BlobStore


@dataclass(frozen=True)
class CommitRecord:
    """One `UpdateCommitted` event."""

    trainer: str
    round: int
    commitment: bytes
    num_examples: int
    block_number: int
    log_index: int = 0


def fetch_committed(
    store: BlobStore, c: CommitRecord, *, what: str = "blob"
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A committed blob's tensors and metadata, or InvalidUpdate saying what is wrong with it.

    Every way of judging a commit (plain, private, secure) starts here, so an unavailable,
    tampered or malformed blob gets the same reason, and the same flag, in every mode.
    """
    try:
        data = store.get(c.commitment)
    except BlobNotFound:
        raise InvalidUpdate(f"{what} not available in the store") from None
    except BlobIntegrityError:
        raise InvalidUpdate(f"{what} does not match its commitment (fails its hash)") from None
    try:
        return decode_blob(data)
    except CodecError as exc:
        raise InvalidUpdate(f"malformed blob: {exc}") from None


@dataclass
class RoundRecord:
    """Everything the chain says about one round of one job."""

    round: int
    version_before: int = 0
    global_model: bytes = b""  # the model this round trained from
    commits: list[CommitRecord] = field(default_factory=list)
    proposals: list[Event] = field(default_factory=list)
    finalized: Event | None = None
    failed: Event | None = None
    excluded: list[str] = field(default_factory=list)
    slashed: list[Event] = field(default_factory=list)
    ejected: list[str] = field(default_factory=list)
    validators_slashed: list[Event] = field(default_factory=list)
    gas_used: int = 0


class JobReader:
    """Incrementally folds a job's events into `RoundRecord`s."""

    def __init__(
        self, coordinator: Coordinator, job_id: int, from_block: int = 0, *, confirmations: int = 0
    ) -> None:
        self.coordinator = coordinator
        self.job_id = job_id
        self.confirmations = confirmations  # read only events at least this many blocks deep
        self.rounds: dict[int, RoundRecord] = {}
        self.events: list[Event] = []
        self._next_block = from_block
        self._polling = threading.Lock()

    def poll(self) -> list[Event]:
        """Reads events mined since the last poll; returns the new ones for this job."""
        with self._polling:  # a node's helper thread prefetches updates while it trains
            return self._poll()

    def _poll(self) -> list[Event]:
        head = self.coordinator.chain.block_number() - self.confirmations
        if head < self._next_block:
            return []
        new = [
            e for e in self.coordinator.events(self._next_block, head) if e.args.get("job_id") == self.job_id
        ]
        self._next_block = head + 1
        for e in new:
            self.apply(e)
        self.events.extend(new)
        return new

    def apply(self, e: Event) -> None:
        a = e.args
        if e.name == "RoundOpened":
            rec = self.rounds.setdefault(a["round"], RoundRecord(round=a["round"]))
            rec.version_before = a["version"]
            rec.global_model = a["global_model"]
        elif e.name == "UpdateCommitted":
            self._round(a["round"]).commits.append(
                CommitRecord(
                    trainer=a["trainer"],
                    round=a["round"],
                    commitment=a["commitment"],
                    num_examples=a["num_examples"],
                    block_number=e.block_number,
                    log_index=e.log_index,
                )
            )
        elif e.name == "AggregateProposed":
            self._round(a["round"]).proposals.append(e)
        elif e.name == "UpdateExcluded":
            self._round(a["round"]).excluded.append(a["trainer"])
        elif e.name == "TrainerSlashed":
            self._round(a["round"]).slashed.append(e)
        elif e.name == "ValidatorSlashed":
            self._round(a["round"]).validators_slashed.append(e)
        elif e.name == "TrainerEjected":
            self._round(a["round"]).ejected.append(a["trainer"])
        elif e.name == "RoundFinalized":
            self._round(a["round"]).finalized = e
        elif e.name == "RoundFailed":
            self._round(a["round"]).failed = e

    def dissenters(self, round: int) -> list[str]:
        """Validators whose proposal for a finalised round lost to the quorum's, not yet slashed."""
        self.poll()
        rec = self._round(round)
        if rec.finalized is None:
            return []
        winner = rec.finalized.args["proposal"]
        done = {e.args["validator"] for e in rec.validators_slashed}
        return [
            p.args["validator"]
            for p in rec.proposals
            if p.args["proposal"] != winner and p.args["validator"] not in done
        ]

    def _round(self, r: int) -> RoundRecord:
        return self.rounds.setdefault(r, RoundRecord(round=r))

    def commits(self, round: int) -> list[CommitRecord]:
        self.poll()
        return list(self._round(round).commits)
