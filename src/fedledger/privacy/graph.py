"""The SecAgg+ neighbour graph: who masks with whom and who holds whose shares.

Complete-graph SecAgg (Bonawitz et al. 2017) makes every trainer mask with and share to all
n − 1 others: O(n) PRG expansions and O(n) shares per trainer, O(n²) work for the server
with dropouts. SecAgg+ (Bell et al. 2020) keeps the guarantees with high probability on a
random k-regular graph with k = O(log n): each trainer masks with and shares to k neighbours.

The graph must be one that no participant chose, and that every participant, validator and
auditor derives identically without talking to anyone. So it is a Harary graph H(k, n) —
position p is joined to p ± 1, …, p ± k/2 around a ring — over the participants in an order
fixed by the round's public randomness: sorted by keccak(seed ‖ id), where the seed is
keccak of the deployment, job, round and the round's global-model commitment (known to all
once the round opens, unknown before the previous round finalised).

k is even (a ring neighbourhood is symmetric); k ≥ n − 1 gives the complete graph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from Crypto.Hash import keccak

from fedledger.errors import PrivacyError
from fedledger.privacy.keys import RoundContext, party_bytes


def _keccak(data: bytes) -> bytes:
    digest: bytes = keccak.new(digest_bits=256, data=data).digest()
    return digest


def graph_seed(ctx: RoundContext, global_commitment: bytes) -> bytes:
    """The round's public randomness: keccak(ctx ‖ commitment of the model the round trains on)."""
    return _keccak(b"fedledger/secagg/v1/graph" + ctx.encode() + global_commitment)


def auto_degree(n: int) -> int:
    """Default degree: the even number ≥ 3·⌈log2 n⌉, or the complete graph when that is ≥ n − 1.

    Bell et al. size k from the tolerated fractions of corrupt and dropped clients; 3·log2 n
    keeps each neighbourhood's failure probability small for the ≤ 1/3 corrupt, ≤ 10%
    dropout regime this project targets (n = 100 → k = 22). A job may set the degree.
    """
    if n < 2:
        raise PrivacyError("secure aggregation needs at least 2 participants with keys")
    k = 3 * math.ceil(math.log2(n))
    k += k % 2
    return n - 1 if k >= n - 1 else k


def effective_degree(n: int, degree: int) -> int:
    """The degree actually used: `degree` (0 = automatic) rounded up to even, capped at n − 1."""
    if n < 2:
        raise PrivacyError("secure aggregation needs at least 2 participants with keys")
    if degree < 0:
        raise ValueError(f"degree must be >= 0 (0 = automatic), got {degree}")
    if degree == 0:
        return auto_degree(n)
    k = degree + degree % 2
    return n - 1 if k >= n - 1 else k


def threshold_for(degree: int, fraction: float) -> int:
    """Shares needed to recover a secret: ⌊fraction · k⌋ + 1, at most k.

    A fraction of 1/2 or more means a majority of a trainer's neighbours must cooperate; the
    round survives any k − t missing neighbours of each trainer.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"threshold fraction must be in (0, 1), got {fraction}")
    return min(degree, math.floor(fraction * degree) + 1)


def neighbour_graph(participants: Sequence[str], degree: int, seed: bytes) -> dict[str, tuple[str, ...]]:
    """Each participant's neighbours, sorted; symmetric; `degree` as from `effective_degree`.

    participants: the round's trainers with registered keys (any order; ids compared
    lower-case). Returns {id: (neighbour ids, sorted lower-case)} with ids as given.
    """
    ids = sorted(participants, key=str.lower)
    n = len(ids)
    if len({p.lower() for p in ids}) != n:
        raise ValueError("participant ids must be distinct")
    k = effective_degree(n, degree)
    if k == n - 1:
        return {p: tuple(q for q in ids if q != p) for p in ids}
    ring = sorted(ids, key=lambda p: _keccak(seed + party_bytes(p)))  # the seeded permutation
    out: dict[str, tuple[str, ...]] = {}
    for pos, p in enumerate(ring):
        near = {ring[(pos + d) % n] for d in range(1, k // 2 + 1)} | {
            ring[(pos - d) % n] for d in range(1, k // 2 + 1)
        }
        out[p] = tuple(sorted(near, key=str.lower))
    return out
