"""The audit of optimistic verification: every claim judged again, every strike and settlement checked.

In an optimistic-mode job the coordinator finalises what optimistic.vy proposes, and that
contract proposes a claim that stood its window. The audit trusts none of it:

- the job's committee is the optimistic contract alone, and every `AggregateProposed` of the
  job came from it (another member beside it could finalise rounds with quorum 1);
- the terms the sponsor delegated with (`JobDelegated`) are the spec's: rule, parameters,
  windows, bond, bounty, escalation quorum; and it named a committee of the spec's size as the
  only accounts that may bond (open bonding would let anyone decide escalations);
- each posted claim is judged against the audit's own recomputation of the round
  (`roles/optimistic.judge`, the watchers' function): a right claim must never have been struck,
  a wrong one must not have been settled, and every `ProposalStruck` must follow a proof
  (`FraudProven` or `OffsetRefuted`) of that claim, with the bounty the terms give;
- the settled claim's aggregate is the one the round finalised (whose model `check_round`
  has already recomputed).
"""

from __future__ import annotations

from collections import defaultdict

from fedledger.audit.report import AuditState
from fedledger.chain.contracts import Event
from fedledger.chain.optimistic import claim_id
from fedledger.codec.commitment import commitment_hex
from fedledger.roles.optimistic import Posted, claim_for, judge, num_params, terms_for

__all__ = ["check_optimistic"]


def check_optimistic(audit: AuditState) -> None:
    """Checks an optimistic-mode job's claims, strikes and settlements; nothing for a quorum job."""
    spec, src, job = audit.spec, audit.src, audit.src.job_id
    if not spec.optimistic:
        return
    where = "chain events"
    if not src.optimistic:
        audit.error("optimistic", where, "the job is optimistic but no optimistic contract is known for it")
        return
    members = [e for e in audit.events if e.name == "Registered" and e.args.get("validator")]
    if [str(e.args["account"]).lower() for e in members] != [src.optimistic.lower()]:
        audit.error("optimistic", where, "the committee is not the optimistic contract alone")
    for e in audit.events:
        if e.name == "AggregateProposed" and str(e.args["validator"]).lower() != src.optimistic.lower():
            audit.error(
                "optimistic",
                where,
                f"{audit.name(e.args['validator'])} proposed directly",
                round=e.args["round"],
            )
    mine = [
        e for e in src.events if e.address.lower() == src.optimistic.lower() and e.args.get("job_id") == job
    ]
    proofs = {
        int(e.args["claim_id"]): e
        for e in src.events
        if e.address.lower() == src.disputes.lower() and e.name in ("FraudProven", "OffsetRefuted")
    }
    _check_terms(audit, mine)
    by_round: dict[int, list[Event]] = defaultdict(list)
    for e in mine:
        if "round" in e.args:
            by_round[int(e.args["round"])].append(e)
    bounty_bps = spec.bounty_bps
    for r, evs in sorted(by_round.items()):
        posted = [Posted.of(e) for e in evs if e.name == "ProposalPosted"]
        struck = {int(e.args["attempt"]): e for e in evs if e.name == "ProposalStruck"}
        settled = {int(e.args["attempt"]): e for e in evs if e.name == "ProposalSettled"}
        decided = [e for e in evs if e.name == "EscalationDecided"]
        fin = next(
            (e for e in audit.events if e.name == "RoundFinalized" and int(e.args["round"]) == r), None
        )
        found = audit.outcomes.get(r)
        for p in posted:
            label = f"round {r} claim (attempt {p.attempt}) by {audit.name(p.proposer)}"
            if p.attempt in struck:
                s = struck[p.attempt].args
                if claim_id(job, r, p.attempt) not in proofs:
                    audit.error("optimistic", label, "struck without a proof of it", round=r)
                if int(s["bounty"]) != int(s["slashed"]) * bounty_bps // 10_000:
                    audit.error("optimistic", label, f"bounty {s['bounty']} is not the terms' share", round=r)
            if p.attempt in settled and fin is not None and fin.args["aggregate"] != p.claim.aggregate_root:
                audit.error(
                    "optimistic",
                    label,
                    f"settled {commitment_hex(p.claim.aggregate_root)} but the round finalised "
                    f"{commitment_hex(fin.args['aggregate'])}",
                    round=r,
                )
            if found is None or found[0] is None:
                continue  # the round was not recomputed (sealed updates); nothing to judge against
            outcome, parent = found
            honest = claim_for(spec, outcome, previous=audit.store.get(parent), store=audit.store)
            verdict = judge(p, honest, outcome, audit.store)
            if verdict.kind == "right" and p.attempt in struck:
                audit.error("optimistic", label, "a right claim was struck", round=r)
            elif verdict.kind != "right" and p.attempt in settled:
                audit.error("optimistic", label, f"a wrong claim was settled: {verdict.reason}", round=r)
            elif verdict.kind != "right" and p.attempt not in struck and not decided:
                audit.error("optimistic", label, f"a wrong claim stood: {verdict.reason}", round=r)
            else:
                audit.passed("optimistic")


def _check_terms(audit: AuditState, mine: list[Event]) -> None:
    delegated = [e for e in mine if e.name == "JobDelegated"]
    if len(delegated) != 1:
        audit.error("optimistic", "chain events", f"{len(delegated)} JobDelegated events, not one")
        return
    created = next(e for e in audit.events if e.name == "JobCreated")
    initial = audit.load_model(created.args["initial_model"], "initial model", None)
    if initial is None:
        return
    named = [str(a) for a in delegated[0].args.get("named", [])]
    if len(named) != audit.spec.committee_size:
        audit.error(
            "optimistic",
            "JobDelegated event",
            f"{len(named)} accounts may bond, not the spec's committee of {audit.spec.committee_size}: "
            "with bonding open, a party that bonds enough accounts decides every escalation",
        )
    want = terms_for(audit.spec, params=num_params(initial)).as_tuple()
    raw = delegated[0].args["terms"]
    got = tuple(int(raw[k]) for k in raw) if isinstance(raw, dict) else tuple(int(x) for x in raw)
    if got != want:
        audit.error("optimistic", "JobDelegated event", f"terms {got} are not the spec's {want}")
    else:
        audit.passed("optimistic")
