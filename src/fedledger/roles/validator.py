"""The validator: fetch every committed update, check it, aggregate, propose.

`compute_round` (the round pipeline, `roles/pipeline.py`) is a pure function of
(store contents, spec, global model, commits): every honest validator gets identical
bytes from it, and the auditor re-runs it verbatim to check each finalised round.
Everything else here is the small amount of I/O around it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount

from fedledger.chain.base import PendingReceipt, Receipt
from fedledger.chain.contracts import Coordinator, Phase
from fedledger.codec.commitment import commitment_hex
from fedledger.data.stats import split_stats
from fedledger.roles.dp import micro_epsilon_after
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import RoundOutcome
from fedledger.roles.pipeline import compute_round
from fedledger.roles.round_types import RoundInputs, SecureInputs
from fedledger.roles.scorer import PostedScores, RoundScorer
from fedledger.roles.stages import check_bounds, read_update, rule_for
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore

__all__ = ["Validator", "check_update", "compute_round", "rule_for"]

log = logging.getLogger("fedledger.validator")


def check_update(
    store: BlobStore,
    spec: JobSpec,
    global_model: Mapping[str, np.ndarray],
    job_id: int,
    c: CommitRecord,
) -> dict[str, np.ndarray]:
    """Fetches and validates one committed update; raises InvalidUpdate with the reason.

    A plain round's fetch and validate stages (`roles/stages.py`) for a single commit.
    """
    inputs = RoundInputs(store, spec, job_id, c.round, 0, global_model, (c,))
    candidate = read_update(inputs, c)
    check_bounds(inputs, candidate)
    return dict(candidate.tensors)


class Validator:
    """One committee member: computes each round independently and proposes it."""

    def __init__(
        self,
        *,
        name: str,
        account: LocalAccount,
        coordinator: Coordinator,
        store: BlobStore,
        spec: JobSpec,
        job_id: int,
        root_trainer: str = "",
        aggregate_hook: Callable[[bytes], bytes] | None = None,
        scorer: RoundScorer | None = None,
        score_hook: Callable[[list[int]], list[int]] | None = None,
        compute: Callable[..., RoundOutcome] = compute_round,
    ) -> None:
        self.name = name
        # how this member computes a round: `compute_round`, or a simulated committee's
        # shared computation (sim/committee.py), which still computes each round twice
        self.compute = compute
        self.root_trainer = root_trainer
        # the simulator's lying validator: proposes hook(aggregate) instead of the aggregate
        self.aggregate_hook = aggregate_hook
        # a scored job's contribution scores; the simulator's biased validator edits them
        self.scorer = scorer
        self.score_hook = score_hook
        self.last_scores: PostedScores | None = None
        self.account = account
        self.coordinator = coordinator
        self.store = store
        self.spec = spec
        self.job_id = job_id

    def outcome(self, **inputs: Any) -> RoundOutcome:
        """This member's computation of a round (`round`, `version`, `global_model`, `commits`, …)
        from its own store, spec, job and root trainer, without proposing anything."""
        return self.compute(
            store=self.store, spec=self.spec, job_id=self.job_id, root_trainer=self.root_trainer, **inputs
        )

    def register(self) -> Receipt:
        return self.coordinator.register(self.account, self.job_id, as_trainer=False)

    def process_round(
        self,
        *,
        round: int,
        version: int,
        global_model: Mapping[str, np.ndarray],
        commits: Sequence[CommitRecord],
        names: Mapping[str, str],
        secure: SecureInputs | None = None,
        releases_before: int = 0,
        seat: int = 0,
    ) -> tuple[RoundOutcome, Receipt | None]:
        """Computes the round and proposes it unless the round has already been decided.

        `seat`: its seat in the round's drawn committee (`roles/sampling.py`), if the job draws one.

        In a DP job `releases_before` counts the job's earlier noisy releases (PrivacySpent
        events); the proposal carries the job's ε once this round's is released too.
        """
        outcome, pending, _ = self.send_proposal(
            round=round,
            version=version,
            global_model=global_model,
            commits=commits,
            names=names,
            secure=secure,
            releases_before=releases_before,
            seat=seat,
        )
        return outcome, None if pending is None else pending.result()

    def send_proposal(
        self,
        *,
        round: int,
        version: int,
        global_model: Mapping[str, np.ndarray],
        commits: Sequence[CommitRecord],
        names: Mapping[str, str],
        secure: SecureInputs | None = None,
        releases_before: int = 0,
        seat: int = 0,
        known_open: bool = False,
    ) -> tuple[RoundOutcome, PendingReceipt | None, bytes]:
        """`process_round` without waiting for the proposal's receipt (None: nothing sent), and
        the aggregate it proposed (a lying validator's differs from the outcome's).

        `known_open`: the caller knows the round is still aggregating (it saw the receipts of
        every proposal before this one), so the chain is not asked again.
        """
        outcome = self.compute(
            secure=secure,
            releases_before=releases_before,
            store=self.store,
            spec=self.spec,
            job_id=self.job_id,
            round=round,
            version=version,
            global_model=global_model,
            commits=commits,
            root_trainer=self.root_trainer,
        )
        pending, aggregate = self.propose_outcome(
            outcome,
            round=round,
            global_model=global_model,
            commits=commits,
            names=names,
            releases_before=releases_before,
            seat=seat,
            known_open=known_open,
        )
        return outcome, pending, aggregate

    def propose_outcome(
        self,
        outcome: RoundOutcome,
        *,
        round: int,
        global_model: Mapping[str, np.ndarray],
        commits: Sequence[CommitRecord],
        names: Mapping[str, str],
        releases_before: int = 0,
        seat: int = 0,
        known_open: bool = False,
    ) -> tuple[PendingReceipt | None, bytes]:
        """The second half of `send_proposal`, for a round already computed: a node computes on
        its main thread, trains ahead on the result, and proposes it beside that training."""
        for r in outcome.rejected:
            log.debug(
                "%s: round %d: rejected update %s from %s: %s",
                self.name,
                round,
                commitment_hex(r.commitment)[:18],
                names.get(r.trainer, r.trainer),
                r.reason,
            )
        if not self.store.has(outcome.aggregate):  # another validator may have stored it
            self.store.put(outcome.blob)
        if not known_open:
            state = self.coordinator.job_state(self.job_id)
            if state.phase != Phase.AGGREGATING or state.round != round:
                return None, outcome.aggregate
        aggregate = (
            outcome.aggregate if self.aggregate_hook is None else self.aggregate_hook(outcome.aggregate)
        )
        posted: list[int] = []
        if self.spec.scored:
            posted = self.post_scores(outcome, commits, split_stats(global_model)[0], names)
        micro_epsilon = 0
        if self.spec.dp and outcome.accepted:
            micro_epsilon = micro_epsilon_after(self.spec, releases_before + 1)
        pending = self.coordinator.propose_later(
            self.account,
            self.job_id,
            round,
            aggregate,
            outcome.excluded,
            outcome.flagged,
            posted,
            micro_epsilon=micro_epsilon,
            seat=seat,
        )
        return pending, aggregate

    def post_scores(
        self,
        outcome: RoundOutcome,
        commits: Sequence[CommitRecord],
        global_model: Mapping[str, np.ndarray],
        names: Mapping[str, str],
    ) -> list[int]:
        """This validator's scores for every committer of the round, in commit order."""
        if self.scorer is None:
            raise ValueError(f"{self.name}: the job is scored ({self.spec.scoring}) but has no scorer")
        self.last_scores = self.scorer.score(
            round=outcome.round,
            aggregate=outcome.aggregate,
            accepted=[(c.trainer, c.num_examples, outcome.deltas[c.trainer]) for c in outcome.accepted],
            commits=[(c.trainer, c.block_number, c.log_index) for c in commits],
            global_model=global_model,
            labels=names,
        )
        posted = list(self.last_scores.posted)
        return posted if self.score_hook is None else self.score_hook(posted)
