"""What optimistic verification needs of the rest of a spec, and the values it derives.

Optimistic mode finalises a round that nobody proved wrong, and a proof shows one coordinate
of the aggregate: the rule must be chunk-local (FedAvg, clipped FedAvg with a fixed bound,
median, trimmed mean), the aggregate must be the rule's exact integer output (no central DP
noise, no secure-aggregation masks, no statistics carried beside the model), and everything
else the quorum used to settle must be absent (contribution scores, validator fees, a drawn
committee). Escalation is decided by the committee, so it must be able to reach its quorum
with the two disputing parties left out.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import model_validator

from fedledger.spec.fields import JobFields

#: the rules one coordinate can be checked for (aggregation/chunk.py's CHUNK_RULES)
OPTIMISTIC_RULES = ("fedavg", "clipped_fedavg", "median", "trimmed_mean")


class VerificationRules(JobFields):
    """The optimistic-mode rules over `JobFields`; `JobSpec` inherits them."""

    @model_validator(mode="after")
    def _check_verification(self) -> VerificationRules:
        if self.verification != "optimistic":
            return self
        if self.aggregation not in OPTIMISTIC_RULES:
            raise ValueError(
                f"verification=optimistic proves one coordinate of the aggregate, so the rule must be "
                f"chunk-local ({', '.join(OPTIMISTIC_RULES)}); {self.aggregation} is not"
            )
        if self.aggregation == "clipped_fedavg" and self.clip_norm <= 0:
            raise ValueError("verification=optimistic needs a fixed clip_norm (> 0), not the adaptive median")
        conflicts = {
            "privacy=secagg (validators see only a masked sum)": self.privacy == "secagg",
            "differential privacy at organisation level (the aggregate is noised)": self.dp_epsilon > 0
            and self.dp_level == "organisation",
            "contribution scoring (scores are settled by a quorum)": self.scoring != "none",
            "validators_per_round (the proposers are the fixed committee)": self.validators_per_round > 0,
            "federated standardisation (statistics ride beside the model)": self.data_schema is not None
            and self.data_schema.federated_stats,
            "readers (sealed updates: a challenger could not open the chunks it must show)": bool(
                self.readers
            ),
        }
        bad = [name for name, hit in conflicts.items() if hit]
        if bad:
            raise ValueError(f"verification=optimistic does not combine with {'; '.join(bad)}")
        committee = self.validators or self.trainers
        quorum = self.quorum or -(-2 * committee // 3)
        if quorum > committee - 2:
            raise ValueError(
                f"verification=optimistic: an escalated round is decided by {quorum} votes of the "
                f"committee without the proposer and the escalator, but the committee has only "
                f"{committee}: give validators or trainers at least {quorum + 2}, or a lower quorum"
            )
        if self.proposal_window_s + self.challenge_window_s > self.aggregate_window_s:
            raise ValueError(
                f"verification=optimistic: proposal_window_s + challenge_window_s "
                f"({self.proposal_window_s + self.challenge_window_s}) must fit in aggregate_window_s "
                f"({self.aggregate_window_s})"
            )
        return self

    @property
    def optimistic(self) -> bool:
        return self.verification == "optimistic"

    @property
    def bounty_bps(self) -> int:
        """challenge_bounty in basis points, from the decimal text of the float (exact)."""
        return int(Decimal(repr(self.challenge_bounty)) * 10_000)

    @property
    def clip_norm_q(self) -> int:
        """clip_norm in fixed-point units, exact (as roles/stages.py's rule uses it)."""
        return int(Decimal(repr(self.clip_norm)) * (1 << self.scale_bits))
