"""Who trains and who validates in a round: the one place a simulation backend asks.

In a job with `clients_per_round` or `validators_per_round` the contracts draw
each round's trainers and committee (`sampler.vy`); a party then names its
*seat* when it commits or proposes. `round_seats` reads the round's draw from
the chain and maps every seat to its account with the same integer maths the
contract runs (`chain/sampling.py`), so the in-process simulation, a Ray
backend or a node all decide the same way, and none of them trusts anything
but the chain. In a job that samples nothing every registered trainer trains
and the fixed committee validates, with seat 0 (ignored by the contract).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fedledger.chain.contract import Sampler
from fedledger.chain.sampling import LANE_COMMITTEE, LANE_TRAINERS, Draw

__all__ = ["RoundSeats", "round_seats"]


@dataclass(frozen=True)
class RoundSeats:
    """A round's seats: account -> seat for the trainers and for the committee."""

    round: int
    samples_trainers: bool = False
    draws_committee: bool = False
    trainers: dict[str, int] = field(default_factory=dict)
    committee: dict[str, int] = field(default_factory=dict)

    def trains(self, account: str) -> bool:
        """Whether `account` (a registered trainer) trains this round."""
        return not self.samples_trainers or account in self.trainers

    def validates(self, account: str, *, fixed_member: bool) -> bool:
        """Whether `account` may propose: a drawn seat, or a fixed committee's member."""
        return account in self.committee if self.draws_committee else fixed_member

    def trainer_seat(self, account: str) -> int:
        return self.trainers.get(account, 0)

    def committee_seat(self, account: str) -> int:
        return self.committee.get(account, 0)


def round_seats(sampler: Sampler | None, job_id: int, round: int) -> RoundSeats:
    """The seats of `round` as the chain drew them (nobody is seated before the draw).

    `sampler` is None for a job that samples nothing (or a deployment without one):
    everyone registered trains and the fixed committee validates.
    """
    if sampler is None:
        return RoundSeats(round=round)
    drawn_round, seed, enrolled, clients, validators = sampler.draw_state(job_id)
    if drawn_round == 0 and enrolled == 0 and sampler.enrolled(job_id) == 0:
        return RoundSeats(round=round)  # nobody enrolled: the job samples nothing
    draw = Draw(round=drawn_round, seed=seed, enrolled=enrolled, clients=clients, validators=validators)
    if drawn_round != round:
        # not drawn yet (the sponsor has not started round 1): nobody holds a seat
        return RoundSeats(round=round, samples_trainers=True, draws_committee=True)
    cache: dict[int, str] = {}

    def who(index: int) -> str:
        if index not in cache:
            cache[index] = sampler.trainer_at(job_id, index)
        return cache[index]

    trainers = {who(i): s for s, i in enumerate(draw.seats(LANE_TRAINERS)) if i is not None}
    committee = {who(i): s for s, i in enumerate(draw.seats(LANE_COMMITTEE)) if i is not None}
    return RoundSeats(
        round=round,
        samples_trainers=clients > 0,
        draws_committee=validators > 0,
        trainers=trainers,
        committee=committee,
    )
