"""A node's trainer side across rounds: train and commit, hold the first secure commit, reveal.

What it keeps in memory only saves work: an update trained but not yet committed when the
chain or its store went away (`pending`) is committed as it is once they are back, not
trained again, and an update trained ahead on this validator's own aggregate
(`speculate`) is committed only if the next round opens on exactly that model.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from fedledger.chain.base import Chain
from fedledger.chain.contracts import Coordinator, JobState
from fedledger.codec.commitment import commitment_hex
from fedledger.errors import StoreError, TransactionReverted
from fedledger.roles.job import JobReader
from fedledger.roles.node_trace import NodeTrace
from fedledger.spec import JobSpec

if TYPE_CHECKING:
    from fedledger.roles.trainer import PreparedUpdate, Trainer

log = logging.getLogger("fedledger.node")


class NodeTraining:
    def __init__(
        self,
        *,
        name: str,
        job: int,
        spec: JobSpec,
        chain: Chain,
        trainer: Trainer,
        reader: JobReader,
        trace: NodeTrace | None = None,
        join_wait_s: float = 0.0,
    ) -> None:
        self.name, self.job, self.spec = name, job, spec
        self.join_wait_s = join_wait_s
        self.first_seen: dict[int, float] = {}  # round -> when this node first held its commit
        self.trace = trace or NodeTrace(None, name)
        self.chain, self.trainer, self.reader = chain, trainer, reader
        self.pending: PreparedUpdate | None = None  # trained, not yet committed
        self.committed = 0  # the last round this process committed to
        self.revealed: set[int] = set()  # secure aggregation: rounds this trainer revealed for
        self.holding: set[int] = set()  # secure aggregation: rounds whose first commit it held back
        self.unfetchable: set[bytes] = set()  # optimistic claims' aggregates no store would serve

    def train_and_commit(self, s: JobState, global_model: bytes, *, seat: int = 0) -> None:
        """`seat`: this trainer's seat in the round's draw, in a job that samples trainers."""
        p = self.pending
        if p is None or p.round != s.round or p.global_commitment != global_model:
            from fedledger.roles.trainer import PreparedUpdate

            if p is not None and p.round == s.round:  # trained ahead on a model the round did not open on
                self.discard(p, "the round opened on another model")
            self.trace.mark("train_start", s.round, on=commitment_hex(global_model))
            prepared = self.trainer.prepare(s.round, global_model)
            self.trace.mark("trained", s.round)
            if not isinstance(prepared, PreparedUpdate):
                return
            self.pending = p = prepared
        try:
            result = self.trainer.submit(p, seat=seat)
        except TransactionReverted as exc:
            if exc.reason != "coordinator: already committed":
                raise
            # a commit that landed before the chain went away, seen before it was confirmed
            log.info("%s: round %d: already committed", self.name, s.round)
            self.pending = None
            return
        self.pending = None
        self.committed = s.round
        self.trace.mark("committed", s.round)
        what = "nothing" if result.commitment is None else commitment_hex(result.commitment)[:14]
        log.info(
            "%s: round %d: trained on %d examples in %.2f s (loss %.4f), committed %s",
            self.name,
            s.round,
            result.num_examples,
            result.train_seconds,
            result.loss,
            what,
        )

    def holds_first_commit(self, s: JobState) -> bool:
        """Whether this trainer waits before the job's first commit (keys, or organisations, to come)."""
        return self.awaiting_keys(s) or self.awaiting_trainers(s)

    def awaiting_trainers(self, s: JobState) -> bool:
        """Holds the job's first commit while organisations are still joining: round 1 only, for
        at most `join_wait_s` and at most half its commit window.

        A round closes once every trainer registered so far has committed, so an organisation
        whose node starts a moment after the others' would miss round 1, and with short rounds
        the whole job. Once every trainer the spec counts has registered, or the wait is over,
        the first commit goes. Half the window leaves the others time to commit after it; a
        round 1 that failed is not waited for again. (A secure job holds it longer, for its key
        directory; a sampled job's draw decides who trains.)
        """
        if self.spec.secure or self.spec.clients_per_round or s.round != 1 or s.commits > 0:
            return False
        # FLTrust's root node registers as a trainer too, beside the spec's organisations
        expected = self.spec.trainers + (self.spec.aggregation == "fltrust")
        if s.trainers >= expected:
            return False
        if s.round not in self.first_seen:
            self.first_seen[s.round] = time.monotonic()
            log.info(
                "%s: round %d: %d of %d trainers have registered; holding the first commit up to %.0f s "
                "for the rest",
                self.name,
                s.round,
                s.trainers,
                expected,
                min(self.join_wait_s, self.spec.commit_window_s / 2),
            )
        if time.monotonic() - self.first_seen[s.round] >= self.join_wait_s:
            return False
        opened = s.deadline - self.spec.commit_window_s
        return self.chain.now() - opened < self.spec.commit_window_s / 2

    def awaiting_keys(self, s: JobState) -> bool:
        """Secure aggregation: holds the job's first commit while the key directory fills.

        The first commit closes the directory that every mask is computed against, so a
        trainer that committed as soon as it started would shut out the organisations whose
        nodes start a little later. It waits until every trainer the spec counts has
        registered its key, or half the commit window has passed with enough keys registered
        for a round to finalise (`min_commits`, and at least two).
        """
        if not self.spec.secure or s.version > 0 or s.commits > 0 or s.trainers >= self.spec.trainers:
            return False
        opened = s.deadline - self.spec.commit_window_s
        enough = s.trainers >= max(2, self.spec.effective_min_commits)  # a round could finalise
        if enough and self.chain.now() - opened >= self.spec.commit_window_s / 2:
            return False
        if s.round not in self.holding:
            self.holding.add(s.round)
            log.info(
                "%s: round %d: %d of %d trainers have registered keys; holding the first commit "
                "(it closes the key directory)",
                self.name,
                s.round,
                s.trainers,
                self.spec.trainers,
            )
        return True

    def reveal(self, s: JobState, view: Coordinator, me: str) -> bool:
        """Secure aggregation: once the commit phase closed, reveal the shares the validators need.

        Returns whether it posted a reveal (False: this trainer did not commit to the round).
        """
        self.revealed.add(s.round)
        if view.trainer_state(self.job, me).last_round != s.round:
            return False
        commits = self.reader.commits(s.round)
        try:
            receipt, _ = self.trainer.reveal(s.round, view.global_model(self.job), commits)
        except TransactionReverted as exc:
            if exc.reason not in ("coordinator: already revealed", "coordinator: round not aggregating"):
                self.revealed.discard(s.round)
                raise
            return False
        except BaseException:
            self.revealed.discard(s.round)  # a chain or store outage: try again on the next pass
            raise
        if receipt is not None:
            log.info("%s: round %d: revealed its shares for %d committers", self.name, s.round, len(commits))
        return receipt is not None

    def speculate(self, s: JobState, aggregate: bytes | None) -> bool:
        """Trains the next round on the aggregate this validator just proposed, while the quorum forms.

        Honest validators compute identical bytes, so the model the quorum finalises is almost
        always the one this node computed; training on it now takes the quorum's transactions
        and the wait for them off the round's critical path. The update is committed only if the
        next round opens on exactly that model (`train_and_commit` checks), so a round that
        fails or finalises something else costs one discarded training, nothing on chain.

        Optimistic mode: the aggregate is this node's own computation (a committee member) or
        the posted claim's (a trainer only, `node_speculation.py`), trained on during the
        challenge window. A claim struck, or replaced by a later attempt's, leaves an update
        trained on a model the round never opens on: it is discarded, here or at the commit.
        """
        p = self.pending
        if aggregate is None or self.trainer.stopped or aggregate in self.unfetchable:
            return False
        if p is not None and p.round == s.round + 1:
            if p.global_commitment == aggregate:
                return False  # trained on it already
            self.discard(p, "another claim replaced the one it trained on")
        from fedledger.roles.trainer import PreparedUpdate

        self.trace.mark("spec_start", s.round + 1, on=commitment_hex(aggregate))
        try:
            prepared = self.trainer.prepare(s.round + 1, aggregate)
        except StoreError as exc:
            # an optimistic claim whose blob its proposer never published (it goes to a vote):
            # nothing to train on; the node waits for the round like any other
            self.unfetchable.add(aggregate)
            log.info("%s: round %d: not training ahead: %s", self.name, s.round + 1, exc)
            return False
        self.trace.mark("spec_done", s.round + 1)
        if isinstance(prepared, PreparedUpdate):
            self.pending = prepared
        return True

    def discard(self, p: PreparedUpdate, why: str) -> None:
        """Drops an update trained ahead: it was trained on a model the round will not open on."""
        self.pending = None
        self.trace.mark("spec_discarded", p.round, on=commitment_hex(p.global_commitment))
        log.info("%s: round %d: discarded the update trained ahead (%s)", self.name, p.round, why)
