"""A simulated round's vote in quorum mode: the committee's proposals sent in a row.

One by one, each member would compute the round, ask the chain whether it is still open,
propose, and wait for its receipt before the next member starts: for the default committee,
seven round trips a round, each waiting for the chain to execute the proposal before it. In a
deployment the members propose at the same time from their own machines. Here the simulation
predicts, as it sends, which proposal decides the round — the coordinator finalises as soon as
`quorum` members have proposed the identical result (aggregate, exclusions, flags), and fails
the round once every member has proposed without that — sends the proposals up to that one
without waiting, and reads every receipt afterwards. Meanwhile the caller may evaluate the
predicted model (`predicted`), on the core the chain's process leaves to it.

While the prediction holds, the chain sees exactly the transactions, in the order, that proposing
one by one sends; the receipts are checked against it. Where they disagree (the chain has not
decided where the count said it would), the remaining members go on one by one, each asking the
chain first, as before; a proposal that reverts raises its error as it did one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from fedledger.chain.base import PendingReceipt, Receipt
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import RoundOutcome
from fedledger.roles.sampling import RoundSeats
from fedledger.roles.secure import SecureInputs

if TYPE_CHECKING:
    from fedledger.sim.setup import Organisation, SimulationSetup

log = logging.getLogger("fedledger.sim")

_DECIDING = ("RoundFinalized", "RoundFailed")


class QuorumRound:
    """Sends one round's proposals (`send`), then reads their receipts and finishes it (`finish`)."""

    def __init__(self, sim: SimulationSetup, seats: RoundSeats) -> None:
        self.sim = sim
        self.seats = seats
        self.round = 0
        #: proposals of one result that decide the round: the coordinator's quorum
        self.quorum = sim.spec.effective_quorum
        self.predicted: bytes | None = None  # the aggregate the count says the chain will finalise
        self._sent: list[PendingReceipt] = []
        self._rest: list[Organisation] = []
        self._inputs: dict[str, object] = {}

    def members(self) -> list[Organisation]:
        """The round's committee members in the order they propose."""
        return [
            org
            for org in self.sim.orgs
            if org.validator is not None
            and self.seats.validates(str(org.trainer.account.address), fixed_member=True)
        ]

    def send(
        self,
        *,
        round: int,
        version: int,
        global_model: Mapping[str, np.ndarray],
        commits: Sequence[CommitRecord],
        secure: SecureInputs | None,
        releases_before: int,
        on_computed: Callable[[bytes], None] | None = None,
    ) -> None:
        """Every member computes and proposes, without waiting, up to the one predicted to decide.

        `on_computed(aggregate)` hears the round's aggregate as soon as the first member has
        computed it, before the other members propose (sim/round_close.py starts on it)."""
        self.round = round
        self._inputs = dict(
            round=round,
            version=version,
            global_model=global_model,
            commits=commits,
            names=self.sim.participants,
            secure=secure,
            releases_before=releases_before,
        )
        with self.sim.committee.deferring():  # the second computation is compared in `finish`
            self._send(self.quorum, on_computed)

    def _send(self, quorum: int, on_computed: Callable[[bytes], None] | None) -> None:
        members = self.members()
        counts: dict[tuple[bytes, tuple[str, ...], tuple[str, ...]], int] = {}
        for k, org in enumerate(members):
            assert org.validator is not None
            address = str(org.trainer.account.address)
            outcome, pending, proposed = org.validator.send_proposal(
                **self._inputs,  # type: ignore[arg-type]
                seat=self.seats.committee_seat(address),
                known_open=True,  # the phase was read before the vote, and nothing sent since decided it
            )
            if k == 0:
                self.report(outcome)
                if on_computed is not None:
                    on_computed(outcome.aggregate)
            assert pending is not None
            self._sent.append(pending)
            key = (proposed, tuple(sorted(outcome.excluded)), tuple(sorted(outcome.flagged)))
            counts[key] = counts.get(key, 0) + 1
            if counts[key] >= quorum:
                self.predicted = proposed
                self._rest = members[k + 1 :]
                return
        self._rest = []  # every member proposed without a quorum: the round fails

    def finish(self) -> None:
        """Reads every receipt; if the chain has not decided, the rest propose one by one."""
        self.sim.committee.confirm()
        coordinator = self.sim.deployment.coordinator
        decided = False
        for pending in self._sent:
            receipt: Receipt = pending.result()
            decided = decided or any(e.name in _DECIDING for e in coordinator.events_in(receipt))
        if not decided and self._rest:
            log.info("round %d: undecided where the proposals' count said", self.round)
            self.predicted = None
        for org in [] if decided else self._rest:
            assert org.validator is not None
            address = str(org.trainer.account.address)
            _, receipt_or_none = org.validator.process_round(
                **self._inputs,  # type: ignore[arg-type]
                seat=self.seats.committee_seat(address),
            )
            if receipt_or_none is None or any(
                e.name in _DECIDING for e in coordinator.events_in(receipt_or_none)
            ):
                break

    def report(self, outcome: RoundOutcome) -> None:
        """What every honest member finds, said once: secure-aggregation faults, rejected updates."""
        sim, round = self.sim, self.round
        for who, why in outcome.faults.items():
            name = sim.participants.get(who, who)
            log.warning("round %d: secure aggregation fault of %s: %s", round, name, why)
            sim.secagg_faults.append((round, name, why))
        for rej in outcome.rejected:
            log.warning(
                "round %d: validators reject the update of %s: %s",
                round,
                sim.participants.get(rej.trainer, rej.trainer),
                rej.reason,
            )
