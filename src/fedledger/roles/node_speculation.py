"""What a trainer that is not on an optimistic job's committee trains ahead on: the live claim.

In optimistic mode a round is final only `challenge_window_s` after its claim is posted, and
round r+1 opens only then. A committee member trains r+1 during the window on the aggregate it
computed itself to check the claim (`NodeValidation.computed`; an honest claim's is the same
bytes). A node that only trains computes nothing, so it trains on the posted claim's aggregate
blob: the live claim of the round's current attempt, as optimistic.vy's `round_record` names
it, read from the proposer's store like any global model.

Nothing here trusts the claim. The update is committed only if round r+1 opens on exactly the
model it was trained from (`NodeTraining.train_and_commit` compares), and the chain opens r+1
only on a claim that stood its window or a vote's result; a struck claim leaves an update that
is discarded, and the node trains again on what the round finalises. Training on a claim before
any watcher has checked it costs, when the claim is a lie, one discarded training, which the
node would otherwise have spent idle in the window.
"""

from __future__ import annotations

from fedledger.chain.contracts import Coordinator
from fedledger.chain.optimistic import Optimistic
from fedledger.roles.job import JobReader
from fedledger.roles.node_optimistic import find_optimistic
from fedledger.roles.optimistic import Posted


class LiveClaims:
    """The aggregate of each round's live optimistic claim, read from optimistic.vy's events."""

    def __init__(self, coordinator: Coordinator, reader: JobReader, job: int) -> None:
        self.coordinator, self.reader, self.job = coordinator, reader, job
        self.chain = coordinator.chain
        self.contract: Optimistic | None = None
        self.posted: dict[tuple[int, int], bytes] = {}  # (round, attempt) -> the claimed aggregate
        self._next_block = 0

    def aggregate(self, round: int) -> bytes | None:
        """The claimed aggregate of `round`'s live claim; None before one is posted, or while escalated.

        An escalated claim is frozen until a vote decides the round, and the vote's result is
        the claim's only if the claim was right: a trainer has no way to tell which, so it waits.
        """
        if self.contract is None:
            self.contract = find_optimistic(self.coordinator, self.reader, self.job)
            if self.contract is None:
                return None
        rec = self.contract.round_record(self.job, round)
        if not rec.posted or rec.escalated:
            return None
        head = self.chain.block_number()
        if head >= self._next_block:
            for e in self.contract.events(self._next_block, head):
                if e.name == "ProposalPosted" and e.args.get("job_id") == self.job:
                    p = Posted.of(e)
                    self.posted[(p.round, p.attempt)] = p.claim.aggregate_root
            self._next_block = head + 1
        return self.posted.get((round, rec.attempt))
