"""The audit of the money and the privacy budget: rewards, fees, stakes, the pool, and ε spent.

Rewards split each finalised round's reward by examples (or, in a scored job, by the
consensus scores `scores.py` settled) with the contract's floor rounding; validator fees
are bounded by what ValidatorRewarded granted; stakes come back once, less slashes; the
sponsor reclaims exactly what is left. Every PrivacySpent figure is the accountant's.
"""

from __future__ import annotations

import math
from collections import defaultdict

from fedledger.audit.report import AuditState
from fedledger.chain.contracts import Event
from fedledger.roles.job import CommitRecord


def check_payouts(
    audit: AuditState,
    created: Event,
    rounds: list[tuple[int, Event, list[CommitRecord]]],
    events: list[Event],
) -> None:
    """Rewards by examples (or consensus scores) with floor rounding, validator fees,
    stakes back once, pool remainder to the sponsor."""
    expected: dict[str, int] = defaultdict(int)
    paid_out = 0
    for r, fin, commits in rounds:
        reward = int(fin.args["reward"])
        paid_out += reward
        excluded = {
            e.args["trainer"]
            for e in events
            if e.name == "UpdateExcluded" and e.args["round"] == fin.args["round"]
        }
        total = int(fin.args["accepted_weight"])
        if audit.spec.scored:
            settled = audit.settled.get(r)
            if settled is None:
                continue
            weights = dict(zip(settled.trainers, settled.consensus, strict=True))
        else:
            weights = {cm.trainer: cm.num_examples for cm in commits}
        for cm in commits:
            if cm.trainer not in excluded and total > 0:
                expected[cm.trainer] += reward * weights[cm.trainer] // total
    fees_due: dict[str, int] = defaultdict(int)
    for e in events:
        if e.name == "ValidatorRewarded":
            fees_due[e.args["validator"]] += int(e.args["amount"])
            paid_out += int(e.args["amount"])
    fees_paid: dict[str, int] = defaultdict(int)
    for e in events:
        if e.name == "Withdrawn":
            fees_paid[e.args["account"]] += int(e.args["fees"])
    for account in sorted(set(fees_due) | set(fees_paid)):
        if fees_paid[account] > fees_due[account]:
            audit.error(
                "fee",
                "Withdrawn events",
                f"paid {fees_paid[account]} in validator fees, earned {fees_due[account]}",
                org=audit.name(account),
            )
        else:
            audit.passed("fee")
    withdrawn: dict[str, int] = defaultdict(int)
    stakes_back: dict[str, int] = defaultdict(int)
    for e in events:
        if e.name == "Withdrawn":
            withdrawn[e.args["account"]] += int(e.args["reward"])
            stakes_back[e.args["account"]] += int(e.args["stake"])
    staked = {e.args["account"]: int(e.args["stake"]) for e in events if e.name == "Registered"}
    for account in sorted(set(expected) | set(withdrawn)):
        org = audit.name(account)
        got, due = withdrawn[account], expected[account]
        if got > due:
            audit.error("payout", "Withdrawn events", f"paid {got} reward units, earned {due}", org=org)
        elif got < due:
            audit.warn(
                "payout",
                "Withdrawn events",
                f"{due - got} of {due} earned units not yet withdrawn",
                org=org,
            )
            audit.passed("payout")
        else:
            audit.passed("payout")
        audit.report.payouts[org] = {"earned": str(due), "withdrawn": str(got)}
    for account, back in stakes_back.items():
        left = audit.stakes.get(account, staked.get(account, 0))
        if back > left:
            audit.error(
                "stake",
                "Withdrawn events",
                f"stake returned {back} > staked {staked.get(account, 0)} less slashes = {left}",
                org=audit.name(account),
            )
        else:
            audit.passed("stake")
    pool = int(created.args["reward_pool"]) + audit.slashed_total
    reclaimed = sum(int(e.args["amount"]) for e in events if e.name == "PoolReclaimed")
    if reclaimed and reclaimed != pool - paid_out:
        audit.error(
            "pool",
            "PoolReclaimed event",
            f"sponsor reclaimed {reclaimed}, but pool {pool} (slashes included) − paid {paid_out} "
            f"= {pool - paid_out}",
        )
    else:
        audit.passed("pool")


def check_privacy(audit: AuditState, events: list[Event]) -> None:
    """Each PrivacySpent figure is the accountant's ε after that many releases, within budget."""
    spent = [e for e in events if e.name == "PrivacySpent"]
    if not audit.spec.dp:
        for e in spent:
            audit.error("privacy", f"PrivacySpent (block {e.block_number})", "ε recorded in a job without DP")
        return
    from fedledger.roles.dp import micro_epsilon_after

    budget = audit.spec.dp_epsilon
    for k, e in enumerate(spent, start=1):
        r, got = int(e.args["round"]), int(e.args["micro_epsilon"])
        want = micro_epsilon_after(audit.spec, k)
        where = f"PrivacySpent (block {e.block_number})"
        if got != want:
            audit.error(
                "privacy",
                where,
                f"ε {got / 1e6:.6f} recorded; release {k} spends {want / 1e6:.6f}",
                round=r,
            )
        elif got > math.ceil(budget * 1e6):
            audit.error("privacy", where, f"ε {got / 1e6:.6f} exceeds the budget {budget:g}", round=r)
        else:
            audit.passed("privacy")
    last = int(spent[-1].args["micro_epsilon"]) if spent else 0
    audit.report.privacy = {
        "epsilon_spent": last / 1e6,
        "epsilon_budget": budget,
        "delta": audit.spec.dp_delta,
        "noise_multiplier": audit.spec.noise_multiplier,
        "accountant": audit.spec.dp_accountant,
        "releases": len(spent),
    }
