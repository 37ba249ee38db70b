"""The audit of sampling: every round's draw re-derived, every commit and proposal seated.

In a job with `clients_per_round` or `validators_per_round` the sampler draws each
round from the trainers enrolled so far (`sampler.vy`). The audit trusts none of its
answers: it rebuilds the enrolment order from `Enrolled` events, re-derives each
`SampleDrawn` seed from the job, the round, the model the round trained from (its
`RoundOpened` event) and the block randomness the event carries, recomputes every
seat with `chain/sampling.py`, and checks that each `UpdateCommitted` came from a
drawn trainer and each `AggregateProposed` from a drawn committee member. A round
that took commits without a draw is an error too. What it cannot check from events
alone: that `randomness` is the block's prevrandao (the export has no block headers;
on a live node it is `block.mixHash`).
"""

from __future__ import annotations

from fedledger.audit.report import AuditState
from fedledger.chain.contracts import Event
from fedledger.chain.sampling import LANE_COMMITTEE, LANE_TRAINERS, Draw, draw_seed

__all__ = ["check_sampling"]


def _order(e: Event) -> tuple[int, int]:
    return e.block_number, e.log_index


def check_sampling(audit: AuditState) -> None:
    """Re-derives every draw of a sampling job and checks who committed and proposed."""
    spec, src, job = audit.spec, audit.src, audit.src.job_id
    if not spec.sampled:
        return
    mine = [e for e in src.events if e.address == src.sampler and e.args.get("job_id") == job]
    enrolled = sorted((e for e in mine if e.name == "Enrolled"), key=_order)
    draws = {int(e.args["round"]): e for e in mine if e.name == "SampleDrawn"}
    opened = {int(e.args["round"]): e for e in audit.events if e.name == "RoundOpened"}
    for r in sorted({int(e.args["round"]) for e in audit.events if "round" in e.args}):
        evs = [e for e in audit.events if e.args.get("round") == r]
        commits = [e for e in evs if e.name == "UpdateCommitted"]
        proposals = [e for e in evs if e.name == "AggregateProposed"]
        drawn = draws.get(r)
        if drawn is None:
            if commits or proposals:
                audit.error("sampling", "chain events", "commits or proposals in an undrawn round", round=r)
            continue
        a = drawn.args
        if (int(a["clients"]), int(a["validators"])) != (spec.clients_per_round, spec.validators_per_round):
            audit.error(
                "sampling",
                "SampleDrawn event",
                f"draws {a['clients']} trainers and {a['validators']} validators, the spec "
                f"{spec.clients_per_round} and {spec.validators_per_round}",
                round=r,
            )
        model = opened[r].args["global_model"] if r in opened else a["global_model"]
        seed = draw_seed(job, r, model, a["randomness"])
        before = [e for e in enrolled if _order(e) < _order(drawn)]
        if a["global_model"] != model or int(a["seed"]) != seed or int(a["enrolled"]) != len(before):
            audit.error(
                "sampling",
                f"SampleDrawn event (block {drawn.block_number})",
                "its seed or its count of enrolled trainers is not what the job, the round's model, "
                "the block's randomness and the enrolments before it give",
                round=r,
            )
            continue
        audit.passed("sampling")
        d = Draw(round=r, seed=seed, enrolled=len(before), clients=spec.clients_per_round,
                 validators=spec.validators_per_round)  # fmt: skip
        order = [str(e.args["trainer"]) for e in before]
        trainers = {order[i] for i in d.seats(LANE_TRAINERS) if i is not None}
        committee = {order[i] for i in d.seats(LANE_COMMITTEE) if i is not None}
        _check_seats(audit, r, commits, "trainer", trainers if spec.clients_per_round else None)
        _check_seats(audit, r, proposals, "validator", committee if spec.validators_per_round else None)


def _check_seats(audit: AuditState, r: int, evs: list[Event], role: str, seated: set[str] | None) -> None:
    """Each event's sender (`role` in its args) held a seat; `seated` None: this lane is not drawn."""
    for e in evs:
        who = str(e.args[role])
        if seated is not None and who not in seated:
            what = "committed without being drawn"
            if role == "validator":
                what = "proposed without a committee seat"
            audit.error("sampling", f"{e.name} event", what, round=r, org=audit.name(who))
        else:
            audit.passed("sampling")
