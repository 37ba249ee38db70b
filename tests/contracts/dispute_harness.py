"""Random rounds and the calls that dispute them, for tests/contracts/test_disputes*.py.

Each round is built by the full Python rule (`aggregation.chunk.apply_rule`) from random int64
tensors in blobs whose metadata lengths differ, so every blob has its own data offset. The
contract is loaded with titanoboa straight from contracts/disputes.vy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import boa
import numpy as np

from fedledger.aggregation.chunk import ChunkRule, apply_rule
from fedledger.aggregation.chunk_proof import Claim, Entry, make_claim, piece, value_at
from fedledger.aggregation.chunk_witness import witnesses
from fedledger.aggregation.stats import squared_norm
from fedledger.codec.blob import data_offset, encode_tensors

ROOT = Path(__file__).resolve().parents[2]
DISPUTES = ROOT / "contracts" / "disputes.vy"

RULES = {
    "fedavg": ChunkRule(name="fedavg"),
    "clipped_fedavg": ChunkRule(name="clipped_fedavg", clip_norm_q=1 << 24),
    "median": ChunkRule(name="median"),
    "trimmed_mean": ChunkRule(name="trimmed_mean", trim_fraction=Fraction(1, 5)),
}


def deploy() -> Any:
    return boa.load(str(DISPUTES))


@dataclass
class Round:
    rule: ChunkRule
    num_params: int
    previous: bytes
    aggregate: bytes
    updates: list[bytes]
    entries: list[Entry]

    @property
    def claim(self) -> Claim:
        return make_claim(
            self.rule,
            num_params=self.num_params,
            previous=self.previous,
            aggregate=self.aggregate,
            entries=self.entries,
        )

    def with_aggregate(self, aggregate: bytes) -> Round:
        return replace(self, aggregate=aggregate)

    def flipped(self, coordinate: int, by: int) -> Round:
        """The same round with the aggregate's value at `coordinate` moved by `by`."""
        at = data_offset(self.aggregate[:8]) + 8 * coordinate
        value = value_at(self.aggregate, coordinate) + by
        raw = value.to_bytes(8, "little", signed=True)
        return self.with_aggregate(self.aggregate[:at] + raw + self.aggregate[at + 8 :])

    def values(self, coordinate: int) -> list[int]:
        return [value_at(u, coordinate) for u in self.updates]

    def inputs(self, coordinate: int, lo: int = 0, hi: int | None = None) -> list[tuple[Any, ...]]:
        """disputes.vy `Input`s for updates lo..hi at `coordinate`."""
        out = []
        for blob, e in list(zip(self.updates, self.entries, strict=True))[lo:hi]:
            chunk, proof = piece(blob, coordinate)
            out.append((e.as_tuple(), (chunk, proof)))
        return out

    def opening(self, coordinate: int) -> tuple[Any, ...]:
        """(coordinate, previous piece, aggregate piece, low, high): a challenge's first arguments."""
        low, high = witnesses(self.rule, self.values(coordinate))
        return (coordinate, piece(self.previous, coordinate), piece(self.aggregate, coordinate), low, high)


def random_round(
    rng: random.Random, rule: ChunkRule, *, n: int, num_params: int, bound: int = 2**40
) -> Round:
    """A round of `n` updates over `num_params` coordinates (two tensors), honestly aggregated."""
    gen = np.random.default_rng(rng.getrandbits(32))
    split = rng.randrange(num_params + 1)
    shapes = {"a": (split,), "b": (num_params - split,)}

    def tensors() -> dict[str, np.ndarray]:
        return {k: gen.integers(-bound, bound, size=s, dtype=np.int64) for k, s in shapes.items()}

    def meta() -> dict[str, str]:
        return {"who": "x" * rng.randrange(80)}

    previous = tensors()
    deltas = [tensors() for _ in range(n)]
    weights = [rng.randrange(1, 10_000) for _ in range(n)]
    blobs = [encode_tensors(d, meta()) for d in deltas]
    entries = [Entry.of(b, w, squared_norm(d)) for b, w, d in zip(blobs, weights, deltas, strict=True)]
    model = apply_rule(rule, previous, deltas, weights)
    return Round(
        rule=rule,
        num_params=num_params,
        previous=encode_tensors(previous, meta()),
        aggregate=encode_tensors(model, meta()),
        updates=blobs,
        entries=entries,
    )


def propose(contract: Any, r: Round) -> int:
    claim_id: int = contract.propose(r.claim.as_tuple())
    return claim_id


def challenge(contract: Any, claim_id: int, r: Round, coordinate: int) -> None:
    contract.challenge(claim_id, r.claim.as_tuple(), *r.opening(coordinate), r.inputs(coordinate))
