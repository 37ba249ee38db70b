"""The audit of penalties: flags, slashes and ejections of trainers, and dissenting validators.

Each round's flags are re-derived from the re-executed round (`rounds.py`); each slash must be
the spec's share of the deposit, capped at what the account has left, and is booked so the
next slash and the stakes returned at the end (`payouts.py`) are judged against what is left.
"""

from __future__ import annotations

from fedledger.audit.report import AuditState
from fedledger.chain.contracts import Event
from fedledger.roles.outcome import Rejection


def check_flags(audit: AuditState, r: int, rejected: list[Rejection], evs: list[Event]) -> None:
    """Flags as the audit derives them, slash amounts by the spec, ejection at max_flags."""
    derived = {x.trainer: x.reason for x in rejected if x.flagged}
    slashed = {e.args["trainer"]: e for e in evs if e.name == "TrainerSlashed"}
    ejected = {e.args["trainer"] for e in evs if e.name == "TrainerEjected"}
    for trainer in sorted(set(derived) | set(slashed), key=lambda a: int(a, 16)):
        org = audit.name(trainer)
        if trainer not in slashed:
            audit.error(
                "flag",
                "AggregateProposed flags",
                f"not flagged on chain, but: {derived[trainer]}",
                round=r,
                org=org,
            )
            continue
        if trainer not in derived:
            audit.error(
                "flag",
                "TrainerSlashed event",
                "flagged and slashed, but the audit finds nothing wrong with its update",
                round=r,
                org=org,
            )
        else:
            audit.passed("flag")
        check_slash(audit, "slash", slashed[trainer], trainer, r)
        audit.flag_counts[trainer] += 1
        must_eject = audit.spec.max_flags > 0 and audit.flag_counts[trainer] == audit.spec.max_flags
        if must_eject != (trainer in ejected):
            what = "not ejected" if must_eject else "ejected"
            audit.error(
                "eject",
                "TrainerEjected events",
                f"{what} after {audit.flag_counts[trainer]} flags (max_flags {audit.spec.max_flags})",
                round=r,
                org=org,
            )
        elif must_eject:
            audit.passed("eject")


def check_slash(audit: AuditState, check: str, ev: Event, account: str, r: int) -> None:
    """The spec's share of the deposit, capped at the stake left; then books it."""
    held = audit.stakes.get(account, 0)
    due = min(audit.spec.stake * audit.spec.slash_bps // 10_000, held)
    amount = int(ev.args["amount"])
    if amount != due:
        audit.error(
            check,
            f"{ev.name} event (block {ev.block_number})",
            f"slashed {amount}, the spec's fraction of the stake left is {due}",
            round=r,
            org=audit.name(account),
        )
    else:
        audit.passed(check)
    audit.stakes[account] = held - amount
    audit.slashed_total += amount


def check_dissent(audit: AuditState, r: int, fin: Event | None, evs: list[Event]) -> None:
    """A slashed validator must have proposed something other than the quorum's result."""
    winner = fin.args["proposal"] if fin is not None else None
    proposed = {e.args["validator"]: e.args["proposal"] for e in evs if e.name == "AggregateProposed"}
    slashed = {e.args["validator"]: e for e in evs if e.name == "ValidatorSlashed"}
    for v, ev in slashed.items():
        org = audit.name(v)
        if winner is None or proposed.get(v) in (None, winner):
            audit.error(
                "dissent",
                f"ValidatorSlashed event (block {ev.block_number})",
                "validator slashed, but it proposed the quorum's result",
                round=r,
                org=org,
            )
            continue
        check_slash(audit, "dissent", ev, v, r)
    for v, p in proposed.items():
        if winner is not None and p != winner and v not in slashed:
            audit.warn(
                "dissent",
                "AggregateProposed events",
                "proposed a result the quorum did not reach; nobody reported it",
                round=r,
                org=audit.name(v),
            )
