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

The permutation is a 4-round unbalanced Feistel network on 2**bits values (bits
= the width of n-1, so fewer than 2n): x = (left, right), right the low bits//2
bits, each round x -> (right, left ^ F(right)) with F splitmix64's finaliser of
((right << 8) | lane * 4 + round) xor the round's 64-bit key (bits 32i.. of the
seed), masked to the left's width, walked until it lands below n ("cycle
walking"). Each round is a bijection, so distinct seats get distinct
enrolments, and one seat costs the same work whatever n is. F is a keyed mix,
not a cryptographic hash: what makes the draw fair is that nobody knows the
key (the seed) before the enrolments it draws from are fixed, not that the
permutation resists someone who knows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.crypto import keccak

FEISTEL_ROUNDS = 4
MAX_WALK = 64  # a longer walk leaves the seat empty: probability < 2**-64 per seat
LANE_TRAINERS = 0
LANE_COMMITTEE = 1
MASK64 = (1 << 64) - 1
SEED_SHIFT = 104  # the sampler keeps the top 152 bits of the keccak as the seed

__all__ = [
    "LANE_COMMITTEE",
    "LANE_TRAINERS",
    "Draw",
    "bits_for",
    "draw_seed",
    "seat_index",
]


def _word(x: int) -> bytes:
    return x.to_bytes(32, "big")


def _mix(x: int) -> int:
    """splitmix64's finaliser on the low 64 bits, as the contract computes it."""
    x &= MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def bits_for(n: int) -> int:
    """The bit width of the permutation's domain for n enrolments: that of n-1, at least 1."""
    return max(1, (n - 1).bit_length()) if n > 0 else 1


def draw_seed(job_id: int, round: int, global_model: bytes, randomness: bytes) -> int:
    """The seed the sampler derives: keccak256(job, round, last finalised model, prevrandao) >> 104."""
    if len(global_model) != 32 or len(randomness) != 32:
        raise ValueError("global_model and randomness are 32 bytes each")
    digest = keccak(_word(job_id) + _word(round) + global_model + randomness)
    return int.from_bytes(digest, "big") >> SEED_SHIFT


def seat_index(seed: int, lane: int, n: int, seat: int) -> int | None:
    """The enrolment index in `seat` of a draw from n, or None (the walk ran out, or n is 0)."""
    if n <= 0 or not 0 <= seat < n:
        return None
    bits = bits_for(n)
    low = bits // 2
    high = bits - low
    x = seat
    for _ in range(MAX_WALK):
        for i in range(FEISTEL_ROUNDS):
            right = x & ((1 << low) - 1)
            f = _mix(((right << 8) | (lane * FEISTEL_ROUNDS + i)) ^ (seed >> (32 * i)))
            x = (right << high) | ((x >> low) ^ (f & ((1 << high) - 1)))
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
