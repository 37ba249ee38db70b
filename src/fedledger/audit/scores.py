"""The audit of a scored job: consensus scores, validator fees and score-based payouts.

From the event log alone the auditor re-derives what the contract settled (the
stake-weighted median of the quorum's posted scores, who earned a fee, how the round's
reward splits), with the contract's own integer steps (`incentives/consensus.py`). With
the spec's validation set it also re-scores every round and says where the consensus
lies further from its own measurement than the spec's tolerance allows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedledger.chain.contracts import Event, unpack_scores
from fedledger.incentives.consensus import settle_scores
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import RoundOutcome
from fedledger.roles.scorer import RoundScorer
from fedledger.spec import JobSpec

Report = Callable[..., None]  # (severity, check, artefact, message, round=, org=)


@dataclass(frozen=True)
class SettledRound:
    """One round's consensus scores in commit order, and the trainers they belong to."""

    trainers: list[str]
    consensus: list[int]


def _position(e: Event) -> tuple[int, int]:
    return (e.block_number, e.log_index)


def stakes_at(events: Sequence[Event], accounts: Sequence[str], before: Event) -> list[int]:
    """Each account's stake just before `before`: deposits less every slash logged earlier."""
    out = []
    for a in accounts:
        stake = 0
        for e in events:
            if _position(e) >= _position(before):
                break
            who = e.args.get("account") or e.args.get("trainer") or e.args.get("validator")
            if who != a:
                continue
            if e.name == "Registered":
                stake = int(e.args["stake"])
            elif e.name in ("TrainerSlashed", "ValidatorSlashed"):
                stake -= int(e.args["amount"])
        out.append(stake)
    return out


def check_round_scores(
    *,
    spec: JobSpec,
    r: int,
    fin: Event,
    commits: Sequence[CommitRecord],
    evs: Sequence[Event],
    events: Sequence[Event],
    outcome: RoundOutcome | None,
    model: Mapping[str, np.ndarray] | None,
    scorer: RoundScorer | None,
    report: Report,
    name: Callable[[str], str],
) -> SettledRound:
    """Checks a finalised scored round; returns its consensus for the payout check."""
    ordered = sorted(commits, key=lambda c: (c.block_number, c.log_index))
    n = len(ordered)
    voters = [e for e in evs if e.name == "AggregateProposed" and e.args["proposal"] == fin.args["proposal"]]
    voters.sort(key=_position)
    posted = [unpack_scores(e.args["scores"], n) for e in voters]
    accounts = [str(e.args["validator"]) for e in voters]
    stakes = stakes_at(sorted(events, key=_position), accounts, fin)
    fee = spec.reward_per_round * spec.validator_fee_bps // 10_000
    settled = settle_scores(posted, stakes, tolerance=spec.score_tolerance_units, fee=fee)

    ev = next((e for e in evs if e.name == "ScoresSettled"), None)
    if ev is None:
        report("error", "scores", f"round {r}", "finalised without a ScoresSettled event", round=r)
    elif unpack_scores(ev.args["scores"], n) != settled.consensus or int(ev.args["total"]) != settled.total:
        report(
            "error",
            "scores",
            f"ScoresSettled event (block {ev.block_number})",
            f"consensus {unpack_scores(ev.args['scores'], n)} != the stake-weighted median of the "
            f"quorum's posted scores {settled.consensus}",
            round=r,
        )
    else:
        report("passed", "scores")

    rewarded = {str(e.args["validator"]): int(e.args["amount"]) for e in evs if e.name == "ValidatorRewarded"}
    due = {a: settled.fee_each for a, near in zip(accounts, settled.near, strict=True) if near and fee}
    due = {a: x for a, x in due.items() if x > 0}
    if rewarded != due:
        report(
            "error",
            "fee",
            "ValidatorRewarded events",
            f"fees {sorted((name(a), x) for a, x in rewarded.items())}, due "
            f"{sorted((name(a), x) for a, x in due.items())}",
            round=r,
        )
    else:
        report("passed", "fee")
    for a, near in zip(accounts, settled.near, strict=True):
        if not near:
            report(
                "warning",
                "scores",
                "AggregateProposed scores",
                f"posted scores further than {spec.score_tolerance_units} from consensus: no fee",
                round=r,
                org=name(a),
            )

    expected_reward = (spec.reward_per_round - fee) if settled.total > 0 else 0
    if (int(fin.args["accepted_weight"]), int(fin.args["reward"])) != (settled.total, expected_reward):
        report(
            "error",
            "scores",
            f"RoundFinalized event (block {fin.block_number})",
            f"records weight {fin.args['accepted_weight']} / reward {fin.args['reward']}, "
            f"re-derived {settled.total} / {expected_reward}",
            round=r,
        )

    if scorer is not None and outcome is not None and model is not None:
        mine = scorer.score(
            round=r,
            aggregate=outcome.aggregate,
            accepted=[(c.trainer, c.num_examples, outcome.deltas[c.trainer]) for c in outcome.accepted],
            commits=[(c.trainer, c.block_number, c.log_index) for c in commits],
            global_model=model,
        ).posted
        off = [
            (name(c.trainer), got, want)
            for c, got, want in zip(ordered, settled.consensus, mine, strict=True)
            if abs(got - want) > spec.score_tolerance_units
        ]
        if off:
            report(
                "error",
                "scores",
                "ScoresSettled event",
                "consensus scores further than the tolerance from the audit's own scoring "
                f"(organisation, consensus, audit): {off}",
                round=r,
            )
        else:
            report("passed", "rescore")
    return SettledRound([c.trainer for c in ordered], settled.consensus)
