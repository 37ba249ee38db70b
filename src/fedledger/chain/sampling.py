"""The round's draw as the coordinator computes it: who trains and who validates, bit for bit.

A job with `clients_per_round` or `validators_per_round` has the contract draw
each round's trainers and committee from everyone registered. The contract
never lists the sample (that would loop over it, or over all registrations): a
party names its *seat* and the contract maps that one seat to a registration
index with a keyed permutation (`_seat_index` in `coordinator.vy`). These pure
functions are the same maths in Python integers, so a trainer finds its seat,
the simulation knows who trains, and the audit re-derives every draw without
trusting the chain's word for it. `tests/contracts/test_sampling_mirror.py`
checks them against the contract on random inputs.

The permutation is a 4-round Feistel network over mixed radices on a * b
values (a = ceil(sqrt(n)), b = ceil(n / a), so barely more than n): x = left * b
+ right maps to right * a + (left + F(right)) mod a, the next round swapping the
radices, F = keccak256((seed << 8) | lane * 4 + round, right); walked until it
lands below n ("cycle walking"). Each round is a bijection, so distinct seats
get distinct enrolments; as a * b is close to n a walk nearly always takes one
step, so one seat costs the same work whatever n is.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import isqrt

from eth_utils.crypto import keccak

FEISTEL_ROUNDS = 4
MAX_WALK = 64  # a longer walk leaves the seat empty
LANE_TRAINERS = 0
LANE_COMMITTEE = 1
SEED_SHIFT = 144  # the sampler keeps the top 112 bits of the keccak as the seed

__all__ = [
    "LANE_COMMITTEE",
    "LANE_TRAINERS",
    "Draw",
    "draw_seed",
    "radices",
    "seat_index",
]


def _word(x: int) -> bytes:
    return x.to_bytes(32, "big")


def radices(n: int) -> tuple[int, int]:
    """(a, b) of the permutation's domain for n enrolments: a = ceil(sqrt(n)), b = ceil(n / a)."""
    a = isqrt(n)
    a = max(1, a + 1 if a * a < n else a)
    return a, -(-n // a)


def draw_seed(job_id: int, round: int, global_model: bytes, randomness: bytes) -> int:
    """The seed the sampler derives: keccak256(job, round, last finalised model, prevrandao) >> 144."""
    if len(global_model) != 32 or len(randomness) != 32:
        raise ValueError("global_model and randomness are 32 bytes each")
    digest = keccak(_word(job_id) + _word(round) + global_model + randomness)
    return int.from_bytes(digest, "big") >> SEED_SHIFT


def seat_index(seed: int, lane: int, n: int, seat: int) -> int | None:
    """The enrolment index in `seat` of a draw from n, or None (the walk ran out, or n is 0)."""
    if n <= 0 or not 0 <= seat < n:
        return None
    a, b = radices(n)
    x = seat
    for _ in range(MAX_WALK):
        for i in range(FEISTEL_ROUNDS):
            m_left, m_right = (a, b) if i % 2 == 0 else (b, a)
            right = x % m_right
            key = (seed << 8) | (lane * FEISTEL_ROUNDS + i)
            f = int.from_bytes(keccak(_word(key) + _word(right)), "big")
            x = right * m_left + (x // m_right + f % m_left) % m_left
        if x < n:
            return x
    return None


@dataclass(frozen=True)
class Draw:
    """One round's draw: its seed, how many had enrolled, and the seats of each lane."""

    round: int
    seed: int
    enrolled: int  # trainers enrolled when drawn: both lanes draw from them
    clients: int  # trainer seats asked for (0: every registered trainer trains)
    validators: int  # committee seats asked for (0: the fixed committee votes)

    def seats(self, lane: int) -> list[int | None]:
        """Enrolment index per seat of a lane (None: an empty seat); at most `enrolled` seats."""
        size = self.clients if lane == LANE_TRAINERS else self.validators
        return [seat_index(self.seed, lane, self.enrolled, s) for s in range(min(size, self.enrolled))]
