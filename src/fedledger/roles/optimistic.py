"""Optimistic verification's two roles: the drawn proposer states a round, every other party watches.

The proposer computes the round as any validator does (`compute_round`) and posts, instead of a
vote, one `Claim` (aggregation/chunk_proof.py) with the round's exclusions and flags. A watcher
computes the same round on its own and compares:

- the same claim and result: nothing to do; anyone settles it after the window;
- a wrong value in the aggregate: it finds the first coordinate where the proposed blob and its
  own differ and proves it on chain (disputes.vy), which slashes the proposer at once;
- a wrong data offset: chunk 0 of the blob refutes it;
- anything one chunk cannot show (other exclusions or flags, another list of updates, a blob the
  proposer never published): it escalates, and the bonded proposers vote.

The same functions serve the simulation (sim/optimistic_round.py) and a node (roles/node.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from eth_account.signers.local import LocalAccount

from fedledger.aggregation.chunk import ChunkRule
from fedledger.aggregation.chunk_proof import Claim, Entry, first_piece, make_claim, piece, value_at
from fedledger.aggregation.chunk_witness import RULE_IDS, witnesses
from fedledger.aggregation.stats import exact_fraction, squared_norm
from fedledger.chain.base import Receipt
from fedledger.chain.contracts import Deployment, Event
from fedledger.chain.optimistic import Disputes, Optimistic, Terms, claim_id
from fedledger.codec.blob import data_offset, decode_blob
from fedledger.codec.commitment import num_chunks
from fedledger.roles.outcome import RoundOutcome
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore

log = logging.getLogger("fedledger.optimistic")

#: updates one challenge transaction carries before it is split (disputes.vy takes 64 a call;
#: 50 chunks of 4 KiB are ~8.2 M gas of calldata, half EIP-7825's cap)
STEP = 50


def chunk_rule_for(spec: JobSpec) -> ChunkRule:
    """The spec's aggregation rule as a fraud proof states it (SpecError if it is not chunk-local)."""
    return ChunkRule(
        name=spec.aggregation,
        trim_fraction=exact_fraction(spec.trim_fraction) if spec.aggregation == "trimmed_mean" else 0,  # type: ignore[arg-type]
        clip_norm_q=spec.clip_norm_q if spec.aggregation == "clipped_fedavg" else 0,
    )


def num_params(model: Mapping[str, Any]) -> int:
    """Coordinates of the flattened model: what a claim's `num_params` counts."""
    return sum(int(v.size) for v in model.values())


def terms_for(spec: JobSpec, *, params: int) -> Terms:
    """The terms a sponsor delegates a job with: the spec's rule, windows, bond and bounty."""
    rule = chunk_rule_for(spec)
    return Terms(
        rule=RULE_IDS[rule.name],
        trim_num=rule.trim_fraction.numerator,
        trim_den=rule.trim_fraction.denominator,
        clip_q=rule.clip_norm_q,
        num_params=params,
        challenge_window=spec.challenge_window_s,
        proposal_window=spec.proposal_window_s,
        aggregate_window=spec.aggregate_window_s,
        bond=spec.proposer_bond,
        bounty_bps=spec.bounty_bps,
        escalation_quorum=spec.effective_quorum,
    )


def delegate_job(
    deployment: Deployment,
    sponsor: LocalAccount,
    spec: JobSpec,
    job_id: int,
    params: int,
    *,
    committee: Sequence[str],
) -> None:
    """Hands a freshly created optimistic-mode job to optimistic.vy (it stakes as the committee).

    `committee`: the accounts that may bond and so propose and vote; only they, as in quorum
    mode, or a party that bonds enough accounts would decide every escalation.
    """
    if not committee:
        raise ValueError("an optimistic job needs its committee named: the accounts that may propose")
    optimistic = deployment.optimistic
    if optimistic is None:
        raise RuntimeError("this deployment has no optimistic contract")
    if spec.stake:
        deployment.token.approve(sponsor, optimistic.address, spec.stake)
    optimistic.delegate(sponsor, job_id, terms_for(spec, params=params), named=committee)


def lie(blob: bytes, round: int, params: int) -> bytes:
    """The lying proposer's aggregate: one value moved by one unit, at a coordinate fixed by the round.

    A fault for tests and demos (the simulator's `lying-proposer`, a node's `testing_fault`).
    """
    import numpy as np

    coordinate = (round * 7919) % params
    at = data_offset(blob[:8]) + 8 * coordinate
    value = int(np.frombuffer(blob, dtype="<i8", count=1, offset=at)[0]) + 1
    return blob[:at] + value.to_bytes(8, "little", signed=True) + blob[at + 8 :]


def entries_for(outcome: RoundOutcome, store: BlobStore, *, clipped: bool) -> list[Entry]:
    """The accepted updates as a claim states them, in commit order (`clipped`: with their squared
    norms, which only clipped FedAvg's claims carry)."""
    out = []
    for c in outcome.accepted:
        blob = store.get(c.commitment)
        norm = squared_norm(outcome.deltas[c.trainer]) if clipped and outcome.deltas else 0
        if clipped and not outcome.deltas:
            norm = squared_norm(decode_blob(blob)[0])
        # the store checked the blob against its commitment: that is its root, no need to hash it again
        out.append(
            Entry(root=c.commitment, offset=data_offset(blob[:8]), weight=c.num_examples, squared_norm=norm)
        )
    return out


def claim_for(spec: JobSpec, outcome: RoundOutcome, *, previous: bytes, store: BlobStore) -> Claim:
    """The honest claim about a computed round."""
    return make_claim(
        chunk_rule_for(spec),
        num_params=num_params(outcome.model),
        previous=previous,
        aggregate=outcome.blob,
        entries=entries_for(outcome, store, clipped=spec.aggregation == "clipped_fedavg"),
    )


@dataclass(frozen=True)
class Posted:
    """A `ProposalPosted` event: the round's live claim and its result."""

    job_id: int
    round: int
    attempt: int
    proposer: str
    claim: Claim
    excluded: tuple[str, ...]
    flags: int
    final_at: int

    @property
    def claim_id(self) -> int:
        return claim_id(self.job_id, self.round, self.attempt)

    @classmethod
    def of(cls, e: Event) -> Posted:
        a = e.args
        fields = list(Claim.__dataclass_fields__)
        raw = a["claim"]
        values = [raw[f] for f in fields] if isinstance(raw, Mapping) else list(raw)
        decoded: dict[str, Any] = {
            f: bytes(v) if isinstance(v, bytes) else int(v) for f, v in zip(fields, values, strict=True)
        }
        claim = Claim(**decoded)
        return cls(
            job_id=int(a["job_id"]),
            round=int(a["round"]),
            attempt=int(a["attempt"]),
            proposer=str(a["proposer"]),
            claim=claim,
            excluded=tuple(str(x) for x in a["excluded"]),
            flags=int(a["flags"]),
            final_at=int(a["final_at"]),
        )


Kind = Literal["right", "wrong-value", "wrong-offset", "escalate"]


@dataclass(frozen=True)
class Verdict:
    """What a watcher found in a posted claim, and what proves it."""

    kind: Kind
    reason: str = ""
    coordinate: int = 0  # wrong-value: the first wrong coordinate
    position: int = 0  # wrong-offset: the blob (update index, n: previous, n + 1: aggregate)


def flag_bits(excluded: Sequence[str], flagged: Sequence[str]) -> int:
    """The proposal's flag mask: bit i set when excluded[i] is flagged."""
    marked = {a.lower() for a in flagged}
    return sum(1 << i for i, a in enumerate(excluded) if a.lower() in marked)


def judge(posted: Posted, honest: Claim, outcome: RoundOutcome, store: BlobStore) -> Verdict:
    """Compares a posted claim with the watcher's own computation of the round."""
    same_result = [a.lower() for a in posted.excluded] == [a.lower() for a in outcome.excluded] and (
        posted.flags == flag_bits(outcome.excluded, outcome.flagged)
    )
    if posted.claim == honest and same_result:
        return Verdict("right")
    if not same_result:
        return Verdict("escalate", "the exclusions or flags differ from the rule's")
    c = posted.claim
    if (c.num_updates, c.updates_hash, c.previous_root) != (
        honest.num_updates,
        honest.updates_hash,
        honest.previous_root,
    ):
        return Verdict("escalate", "the claim names other updates than the round's")
    if c.previous_offset != honest.previous_offset:
        return Verdict("wrong-offset", "the previous model's data offset is wrong", position=c.num_updates)
    if not store.has(c.aggregate_root):
        return Verdict("escalate", "the proposer never published the aggregate it claims")
    blob = store.get(c.aggregate_root)
    if data_offset(blob[:8]) != c.aggregate_offset:
        return Verdict("wrong-offset", "the aggregate's data offset is wrong", position=c.num_updates + 1)
    for coordinate in _differing(blob, outcome.blob, honest.num_params):
        return Verdict(
            "wrong-value", f"coordinate {coordinate} of the aggregate is wrong", coordinate=coordinate
        )
    return Verdict("escalate", "the aggregate's values are right but its blob differs (header or length)")


def _differing(proposed: bytes, honest: bytes, params: int) -> list[int]:
    """The first coordinate whose value differs between two blobs (at most one), by whole chunks."""
    import numpy as np

    a0, b0 = data_offset(proposed[:8]), data_offset(honest[:8])
    if len(proposed) < a0 + 8 * params:
        return []
    a = np.frombuffer(proposed, dtype="<i8", count=params, offset=a0)
    b = np.frombuffer(honest, dtype="<i8", count=params, offset=b0)
    wrong = np.flatnonzero(a != b)
    return [int(wrong[0])] if wrong.size else []


class Watcher:
    """Checks posted claims against its own computation and proves, or escalates, a wrong one."""

    def __init__(
        self,
        *,
        name: str,
        account: LocalAccount,
        optimistic: Optimistic,
        store: BlobStore,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        #: address -> organisation name, for what it logs
        self.names = {k.lower(): v for k, v in (names or {}).items()}
        self.account = account
        self.optimistic = optimistic
        self.disputes: Disputes = optimistic.disputes()
        self.store = store

    def act(
        self, posted: Posted, verdict: Verdict, outcome: RoundOutcome, previous: bytes, honest: Claim
    ) -> Receipt | None:
        """Proves or escalates a wrong claim; None for a right one."""
        if verdict.kind == "right":
            return None
        log.warning(
            "round %d: %s challenges the claim of %s: %s",
            posted.round,
            self.name,
            self.names.get(posted.proposer.lower(), posted.proposer),
            verdict.reason,
        )
        if verdict.kind == "escalate":
            return self.optimistic.escalate(self.account, posted.job_id, posted.round)
        # the honest entries again (their hash is the claim's `updates_hash`, checked by `judge`)
        entries = entries_for(outcome, self.store, clipped=honest.rule == RULE_IDS["clipped_fedavg"])
        if verdict.kind == "wrong-offset":
            blob = (
                previous
                if verdict.position == posted.claim.num_updates
                else self.store.get(posted.claim.aggregate_root)
            )
            return self.disputes.prove_wrong_offset(
                self.account,
                posted.claim,
                posted.claim_id,
                entries=[] if verdict.position >= posted.claim.num_updates else entries,
                position=verdict.position,
                num_chunks=num_chunks(len(blob)),
                first=first_piece(blob),
            )
        return self.prove_value(posted, verdict.coordinate, outcome, previous, entries)

    def prove_value(
        self,
        posted: Posted,
        coordinate: int,
        outcome: RoundOutcome,
        previous: bytes,
        entries: Sequence[Entry],
    ) -> Receipt:
        """A one-coordinate proof, split over transactions when the updates do not fit one."""
        blobs = [self.store.get(c.commitment) for c in outcome.accepted]
        inputs = [(e, piece(b, coordinate)) for e, b in zip(entries, blobs, strict=True)]
        low, high = witnesses(chunk_rule_for_claim(posted.claim), [value_at(b, coordinate) for b in blobs])
        proposed = self.store.get(posted.claim.aggregate_root)
        opening: dict[str, Any] = dict(
            coordinate=coordinate,
            previous=piece(previous, coordinate),
            aggregate=piece(proposed, coordinate),
            low=low,
            high=high,
        )
        if len(inputs) <= STEP:
            return self.disputes.challenge(
                self.account, posted.claim, posted.claim_id, inputs=inputs, **opening
            )
        _, challenge, tally = self.disputes.open_challenge(
            self.account, posted.claim, posted.claim_id, **opening
        )
        for lo in range(0, len(inputs), STEP):
            _, tally = self.disputes.add_updates(self.account, challenge, tally, inputs[lo : lo + STEP])
        return self.disputes.close_challenge(self.account, challenge, tally, posted.claim)


def chunk_rule_for_claim(c: Claim) -> ChunkRule:
    """The rule a claim states, as the Python reference computes it."""
    name = next(n for n, i in RULE_IDS.items() if i == c.rule)
    return ChunkRule(name=name, trim_fraction=Fraction(c.trim_num, c.trim_den), clip_norm_q=c.clip_q)
