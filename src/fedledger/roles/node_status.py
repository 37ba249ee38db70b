"""A node's one status line per decided round: what the chain finalised and where this
organisation stands in it — the line an operator tails to see their node is still useful."""

from __future__ import annotations

import logging

from fedledger.codec.commitment import commitment_hex
from fedledger.roles.job import RoundRecord
from fedledger.roles.sampling import RoundSeats


def round_status(
    name: str, rec: RoundRecord, *, me: str, drawn: RoundSeats | None, root: bool, chain_rounds: int
) -> tuple[int, str]:
    """(logging level, line) for a finalised or failed round; `drawn`: the round's draw, if seen."""
    mine = next((c for c in rec.commits if c.trainer == me), None)
    standing = (
        "not drawn this round"
        if mine is None and drawn is not None and not drawn.trains(me)
        else "did not commit"
        if mine is None
        else "root update committed (FLTrust's reference)"
        if root
        else "update excluded"
        if me in rec.excluded
        else "update accepted"
    )
    if rec.finalized is None:
        failed = f"{name}: round {rec.round} FAILED ({len(rec.commits)} commits)"
        return logging.WARNING, f"{failed}; this organisation: {standing}"
    a = rec.finalized.args
    return logging.INFO, (
        f"{name}: round {rec.round} FINALIZED: model v{a['version']} {commitment_hex(a['aggregate'])[:14]}, "
        f"{a['accepted_commits']} of {len(rec.commits)} updates accepted; this organisation: {standing}; "
        f"job {a['version']} of {chain_rounds} rounds done"
    )
