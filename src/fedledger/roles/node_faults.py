"""TESTING ONLY: the claims a misbehaving optimistic-mode node posts (node_config.py's `testing_fault`).

Kept out of the node's own logic (`roles/node_optimistic.py`) so that what an honest node
does reads without them. Each fault publishes what its claim names, so the committee has
something to check and the fault is caught the way a real one would be:

- lying-proposer: the aggregate with one value moved (the simulator's fault of that name),
  which a one-coordinate proof strikes;
- excluding-proposer: the round computed without the last committed update, which it lists
  as excluded; one chunk cannot show a wrong exclusion, so the committee escalates and votes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from fedledger.aggregation.chunk_proof import Claim
from fedledger.chain.contracts import JobState
from fedledger.codec.commitment import merkle_root
from fedledger.roles.node_validation import NodeValidation
from fedledger.roles.optimistic import claim_for, flag_bits, lie
from fedledger.roles.outcome import Rejection, RoundOutcome
from fedledger.spec import JobSpec
from fedledger.store.cached import VerifiedCache

log = logging.getLogger("fedledger.node")


@dataclass(frozen=True)
class Posting:
    """What a proposer posts: the claim, the exclusions (ascending) and their flags."""

    claim: Claim
    excluded: list[str]
    flags: int


def honest_posting(spec: JobSpec, outcome: RoundOutcome, previous: bytes, store: VerifiedCache) -> Posting:
    claim = claim_for(spec, outcome, previous=previous, store=store)
    return Posting(claim, outcome.excluded, flag_bits(outcome.excluded, outcome.flagged))


def faulty_posting(
    kind: str,
    *,
    name: str,
    s: JobState,
    spec: JobSpec,
    honest: Posting,
    outcome: RoundOutcome,
    validation: NodeValidation,
    previous: bytes,
    global_model: bytes,
    store: VerifiedCache,
) -> Posting:
    """The posting a node with testing fault `kind` makes instead of `honest`."""
    log.warning("%s: round %d: TESTING FAULT %s: posts a claim it knows is wrong", name, s.round, kind)
    if kind == "lying-proposer":
        forged = lie(outcome.blob, s.round, honest.claim.num_params)
        store.keep(forged)  # published, so that the claim can be checked at all
        return replace(honest, claim=replace(honest.claim, aggregate_root=merkle_root(forged)))
    if kind != "excluding-proposer":
        raise ValueError(f"no testing fault {kind!r} changes a claim")
    commits = validation.reader.commits(s.round)
    dropped, kept = commits[-1], commits[:-1]
    v = validation.validator
    smaller = v.outcome(
        round=s.round,
        version=s.version,
        global_model=store.get_tensors(global_model),
        commits=kept,
        secure=None,
        releases_before=sum(1 for e in validation.reader.events if e.name == "PrivacySpent"),
    )
    left_out = Rejection(dropped.trainer, dropped.commitment, "testing fault", flagged=False)
    smaller = replace(smaller, rejected=[*smaller.rejected, left_out])
    return honest_posting(spec, smaller, previous, store)
