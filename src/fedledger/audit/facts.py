"""The job as its trusted events state it, in the shape the derived files are checked against.

The events are the re-executed ones (an in-process export) or the live node's: whatever a
run directory's model, card and metrics claim is compared with these, never with each other.
"""

from __future__ import annotations

from collections import defaultdict

from fedledger.audit.replay import EventSource
from fedledger.chain.contracts import Event
from fedledger.codec.commitment import commitment_hex


class RunFacts:
    """The job's outcome, rounds, commits, exclusions, slashes, payouts and data commitments.

    `final`: the last finalised aggregate, else the initial model.
    """

    def __init__(self, source: EventSource) -> None:
        self.sponsor, self.outcome, self.spec_hash, self.initial, self.final = "", "aborted", b"", b"", b""
        self.finalized: dict[int, Event] = {}
        self.failed: set[int] = set()
        self.commits: dict[int, list[str]] = defaultdict(list)  # round -> trainers, in commit order
        self.excluded: dict[int, set[str]] = defaultdict(set)
        self.slashed: dict[int, list[tuple[str, int]]] = defaultdict(list)  # (trainer, amount)
        self.ejected: list[str] = []
        self.paid: dict[str, int] = {}  # Withdrawn: reward + fees + stake
        self.data_roots: dict[str, str] = {}  # trainer -> its data commitment's root
        self.data_rows: dict[str, int] = {}  # trainer -> the rows its data commitment covers
        mine = (source.coordinator, source.data_registry)
        for e in (e for e in source.events if e.address in mine and e.args.get("job_id") == source.job_id):
            a, r = e.args, int(e.args.get("round", 0))
            if e.name == "JobCreated":
                self.sponsor, self.spec_hash = str(a["sponsor"]), a["spec_hash"]
                self.initial = self.final = a["initial_model"]
            elif e.name == "RoundFinalized":
                self.finalized[r], self.final = e, a["aggregate"]
            elif e.name == "RoundFailed":
                self.failed.add(r)
            elif e.name == "UpdateCommitted":
                self.commits[r].append(str(a["trainer"]))
            elif e.name == "UpdateExcluded":
                self.excluded[r].add(str(a["trainer"]))
            elif e.name == "TrainerSlashed":
                self.slashed[r].append((str(a["trainer"]), int(a["amount"])))
            elif e.name == "TrainerEjected":
                self.ejected.append(str(a["trainer"]))
            elif e.name == "Withdrawn":
                self.paid[str(a["account"])] = int(a["reward"]) + int(a["fees"]) + int(a["stake"])
            elif e.name == "DataCommitted" and e.address == source.data_registry:
                trainer = str(a["trainer"])
                if trainer not in self.data_roots:
                    self.data_roots[trainer] = commitment_hex(a["root"])
                    self.data_rows[trainer] = int(a["rows"])
            elif e.name == "JobCompleted":
                self.outcome = "completed"
        self.rounds = sorted(set(self.finalized) | self.failed)
        self.contributors = {t for r in self.finalized for t in self.commits[r] if t not in self.excluded[r]}
