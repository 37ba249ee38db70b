"""Shamir t-of-k secret sharing of 32-byte seeds over the prime field GF(2^521 − 1).

This is arithmetic, not a cipher: a secret s becomes f(0) of a random polynomial f of
degree t − 1, and share x is f(x). Any t shares give f(0) by Lagrange interpolation; t − 1
shares are consistent with every possible secret, so they say nothing about it.

Why this field: 2^521 − 1 is a Mersenne prime larger than any 32-byte seed, so a seed is one
field element (no chunking, no padding), and Python integers do the arithmetic exactly. A
share is 66 bytes. Coefficients are drawn from a ChaCha20 stream 16 bytes longer than the
field per coefficient, so reducing them mod p leaves a bias below 2^-128.

x-coordinates are the holders' 1-based positions in the round's sorted participant list: the
same holder has the same x for every dealer, and x = 0 (the secret) is never a share.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedledger.errors import ShareError
from fedledger.privacy.keys import SEED_BYTES, keystream

PRIME = 2**521 - 1
SHARE_BYTES = 66  # ceil(521 / 8)
_DRAW_BYTES = SHARE_BYTES + 16


def random_coefficients(key: bytes, count: int) -> list[int]:
    """`count` field elements from the ChaCha20 stream under `key` (deterministic per key)."""
    stream = keystream(key, count * _DRAW_BYTES)
    return [
        int.from_bytes(stream[i * _DRAW_BYTES : (i + 1) * _DRAW_BYTES], "big") % PRIME for i in range(count)
    ]


def split(secret: bytes, xs: Sequence[int], threshold: int, coefficients: Sequence[int]) -> list[int]:
    """Shares f(x) for each x in `xs`, with f(0) = secret and f's other coefficients given.

    `coefficients` are the t − 1 higher coefficients (from `random_coefficients`); passing
    them in keeps this function pure and the dealing reproducible.
    """
    if len(secret) != SEED_BYTES:
        raise ValueError(f"a shared secret is {SEED_BYTES} bytes, not {len(secret)}")
    if not 1 <= threshold <= len(xs):
        raise ValueError(f"threshold {threshold} must be between 1 and the {len(xs)} holders")
    if len(coefficients) != threshold - 1:
        raise ValueError(f"threshold {threshold} needs {threshold - 1} coefficients, got {len(coefficients)}")
    if len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise ValueError("share x-coordinates must be distinct and non-zero")
    poly = [int.from_bytes(secret, "big"), *coefficients]  # f(x) = poly[0] + poly[1] x + ...
    shares = []
    for x in xs:
        acc = 0
        for c in reversed(poly):  # Horner
            acc = (acc * x + c) % PRIME
        shares.append(acc)
    return shares


def interpolate(points: Sequence[tuple[int, int]]) -> int:
    """f(0) for the polynomial of degree len(points) − 1 through `points` (Lagrange at zero)."""
    xs = [x for x, _ in points]
    if not points or len(set(xs)) != len(xs):
        raise ShareError("interpolation needs at least one share and distinct x-coordinates")
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * xj % PRIME
                den = den * (xj - xi) % PRIME
        total = (total + yi * num * pow(den, -1, PRIME)) % PRIME
    return total


def combine(points: Sequence[tuple[int, int]]) -> bytes:
    """The 32-byte secret from t shares (x, f(x)).

    With fewer than t shares interpolation still returns a field element, just not the
    secret: its low 32 bytes are what a coalition below the threshold would "recover".
    """
    return (interpolate(points) % (1 << (8 * SEED_BYTES))).to_bytes(SEED_BYTES, "big")


def encode_share(y: int) -> bytes:
    return y.to_bytes(SHARE_BYTES, "big")


def decode_share(raw: bytes, party: str = "") -> int:
    """A share's field element; a wrong length or a value outside the field is malformed."""
    if len(raw) != SHARE_BYTES:
        raise ShareError(f"a share is {SHARE_BYTES} bytes, got {len(raw)}", party=party)
    y = int.from_bytes(raw, "big")
    if y >= PRIME:
        raise ShareError("a share lies outside the field GF(2^521 - 1)", party=party)
    return y
