"""A trainer's side of record-level DP: its own ε budget, and the spend it posts on chain.

Each organisation's records are protected by DP-SGD in its own trainer
(`training/dpsgd.py`), so each organisation has its own ε, over its own records. ε depends
only on the spec's public parameters and on how many rounds the organisation released an
update in, so the trainer needs no accountant state beyond a count:

- before training a round it asks whether one more round still fits its budget, and if not it
  stops training and committing for the rest of the job, saying so once;
- after each update it releases (uploaded, so readable, whether or not the commit lands in
  time) the count grows, once per round however often a node retries the upload and commit
  of the same update, and after each commit it posts the cumulative micro-ε, rounded up, to
  the data registry beside that commit.

A restarted node counts the rounds it released from its own `UpdateCommitted` events. An
update uploaded but never committed before a crash is then not counted: the chain cannot see
it, and the audit recomputes ε from the commits. Counting in memory while running keeps the
posted figure at or above what the chain shows, never below.
"""

from __future__ import annotations

import logging

from eth_account.signers.local import LocalAccount

from fedledger.chain.contracts import Coordinator, DataRegistry
from fedledger.errors import ChainUnavailable, TransactionReverted
from fedledger.spec import JobSpec, dp_micro_epsilon

log = logging.getLogger("fedledger.trainer")


def micro_epsilon_after(spec: JobSpec, rounds: int) -> int:
    """Micro-ε (rounded up) an organisation has spent after releasing `rounds` updates."""
    return dp_micro_epsilon(
        spec.noise_multiplier,
        rounds * spec.dp_steps_per_round,
        spec.dp_delta,
        spec.dp_accountant,
        spec.dp_sampling_rate,
    )


class RecordBudget:
    """One trainer's record-level ε: what it has released, and whether it may release more."""

    def __init__(
        self, *, name: str, spec: JobSpec, coordinator: Coordinator, job_id: int, account: LocalAccount
    ) -> None:
        self.name = name
        self.spec = spec
        self.coordinator = coordinator
        self.job_id = job_id
        self.account = account
        self._committed: int | None = None  # before this process: read from the chain on first use
        self._rounds: set[int] = set()  # rounds this process released an update in
        self._registry: DataRegistry | None = None
        self.exhausted = False  # the budget affords no further round: this trainer has stopped

    @property
    def released(self) -> int:
        """Rounds this trainer has released an update in.

        The chain's count is read before this process releases anything (`allows` comes
        first), so it never includes a round of `_rounds`.
        """
        if self._committed is None:
            me = self.account.address
            self._committed = sum(
                1
                for e in self.coordinator.events()
                if e.name == "UpdateCommitted"
                and int(e.args["job_id"]) == self.job_id
                and str(e.args["trainer"]) == me
            )
        return self._committed + len(self._rounds)

    @property
    def epsilon(self) -> float:
        """ε spent so far over this organisation's records."""
        return micro_epsilon_after(self.spec, self.released) / 1e6

    def allows(self, round: int) -> bool:
        """Whether one more round stays within the budget; says once when it no longer does."""
        if self.exhausted:
            return False
        after = micro_epsilon_after(self.spec, self.released + 1) / 1e6
        if after <= self.spec.dp_epsilon:
            return True
        self.exhausted = True
        log.warning(
            "%s: round %d: not training: one more round would spend ε = %.4f of its records' budget "
            "%g (ε = %.4f spent over %d rounds); it commits no more updates in job %d",
            self.name,
            round,
            after,
            self.spec.dp_epsilon,
            self.epsilon,
            self.released,
            self.job_id,
        )
        return False

    def released_one(self, round: int) -> None:
        """Counts the round's update as released; a retried upload of the same round counts once."""
        _ = self.released  # the chain's count first, from before this release
        self._rounds.add(round)

    def post(self, round: int) -> None:
        """Posts the cumulative spend after this round's commit; a refusal is logged, not raised.

        The commit is what matters to the round; a spend that does not land (the round moved on
        while it was sent, or the chain went away after the commit) is carried by the next one,
        which is cumulative.
        """
        if self._registry is None:
            self._registry = self.coordinator.data_registry()
        micro = micro_epsilon_after(self.spec, self.released)
        try:
            self._registry.spend_privacy(self.account, self.job_id, round, micro)
        except TransactionReverted as exc:
            log.warning("%s: round %d: ε spend not recorded: %s", self.name, round, exc.reason)
        except ChainUnavailable as exc:
            log.warning("%s: round %d: ε spend not recorded: chain unreachable (%s)", self.name, round, exc)
