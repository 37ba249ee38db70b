"""Masks in the ring Z_{2^64}: what a trainer adds to its update and a validator takes off the sum.

    y_i = w_i · x_i + PRG(b_i) + Σ_{j ∈ N(i)} ±PRG(s_ij)        (mod 2^64; + when i < j, − when i > j)

x_i is the trainer's int64 quantised delta, w_i its public example count, so Σ w_i x_i is the
numerator of FedAvg; numpy's uint64 arithmetic wraps, which is exactly mod 2^64. Over the
committers C every pairwise mask between two committers appears once with + and once with −
and cancels; what is left is each committer's self-mask and its pairwise masks with dropped
neighbours, which the validators rebuild from revealed seeds and subtract. The result read as
int64 is the exact integer sum Σ w_i x_i as long as that sum lies in [−2^63, 2^63), which
`weighted` enforces for honest trainers by bounding each term by 2^63 / n.

PRG(seed) is the ChaCha20 keystream under the 32-byte seed, 8 bytes per element read as
little-endian uint64: uniform over the ring, so each y_i alone is uniform whatever x_i is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from fedledger.errors import PrivacyError
from fedledger.privacy.keys import SEED_BYTES

RING_BITS = 64
_U64 = np.dtype("<u8")


class Prg:
    """Expands seeds into uint64 vectors of one length, reusing its buffers between seeds.

    Reuse matters at 1M parameters: a fresh 8 MB zero input and output per expansion costs
    about as much as the ChaCha20 work itself.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("vector size must be >= 0")
        self.size = size
        self._zeros = bytes(8 * size)
        self._buf = bytearray(8 * size + 16)  # update_into wants room for a block's slack

    def expand(self, seed: bytes) -> np.ndarray:
        """PRG(seed) as (size,) uint64; the array is a view valid until the next call."""
        if len(seed) != SEED_BYTES:
            raise PrivacyError(f"a mask seed is {SEED_BYTES} bytes, not {len(seed)}")
        encryptor = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor()
        encryptor.update_into(self._zeros, self._buf)
        return np.frombuffer(self._buf, dtype=_U64, count=self.size)

    def add(self, acc: np.ndarray, seed: bytes, sign: int = 1) -> None:
        """acc += sign · PRG(seed) in place (mod 2^64)."""
        if sign == 1:
            np.add(acc, self.expand(seed), out=acc)
        elif sign == -1:
            np.subtract(acc, self.expand(seed), out=acc)
        else:
            raise ValueError(f"sign must be +1 or -1, got {sign}")


def pair_sign(me: str, other: str) -> int:
    """+1 if `me` sorts before `other` (lower-case), else −1: the two ends get opposite signs."""
    a, b = me.lower(), other.lower()
    if a == b:
        raise ValueError("a participant has no pairwise mask with itself")
    return 1 if a < b else -1


def flatten(delta: Mapping[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """The int64 tensors in `names` order, concatenated into one (size,) vector."""
    parts = []
    for name in names:
        arr = np.asarray(delta[name])
        if arr.dtype != np.int64:
            raise PrivacyError(f"tensor {name!r} is {arr.dtype}; secure aggregation masks int64 deltas")
        parts.append(arr.reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def unflatten(vector: np.ndarray, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Inverse of `flatten`: split a (size,) vector into tensors of `shapes`, in their order."""
    out, at = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape, dtype=np.int64))
        out[name] = vector[at : at + n].reshape(shape)
        at += n
    if at != vector.size:
        raise PrivacyError(f"vector has {vector.size} elements, shapes need {at}")
    return out


def weighted(delta: np.ndarray, weight: int, participants: int) -> np.ndarray:
    """w · x as uint64 ring elements, refusing any term that could make the n-way sum wrap.

    |w · x_k| ≤ (2^63 − 1) // n for every element keeps |Σ over n trainers| < 2^63, so the
    unmasked sum read as int64 is exact. A trainer whose update breaks the bound cannot be
    aggregated securely (the validators could not tell a wrapped sum from a true one).
    """
    if delta.dtype != np.int64:
        raise PrivacyError(f"delta is {delta.dtype}; secure aggregation masks int64")
    if weight < 0 or participants < 1:
        raise PrivacyError("weight must be >= 0 and participants >= 1")
    bound = (2**63 - 1) // participants
    peak = int(np.abs(delta, dtype=np.int64).max(initial=0)) if delta.size else 0
    if delta.size and int(delta.min()) == -(2**63):
        peak = 2**63
    if peak * weight > bound:
        raise PrivacyError(
            f"weighted update too large for the 64-bit ring: max |w·x| = {peak * weight} > {bound} "
            f"(2^63 / {participants} participants); lower scale_bits or clip the update"
        )
    return (delta * np.int64(weight)).view(_U64)


def mask(
    weighted_update: np.ndarray, self_seed: bytes, pairs: Iterable[tuple[bytes, int]], prg: Prg | None = None
) -> np.ndarray:
    """y = w·x + PRG(b) + Σ sign · PRG(s) over the given (seed, sign) pairs; a new uint64 array."""
    prg = prg or Prg(weighted_update.size)
    y = np.array(weighted_update, dtype=_U64, copy=True)  # (size,)
    prg.add(y, self_seed)
    for seed, sign in pairs:
        prg.add(y, seed, sign)
    return y


def masked_sum(vectors: Iterable[np.ndarray], size: int) -> np.ndarray:
    """Σ y_i mod 2^64, accumulated one vector at a time (the caller may stream them)."""
    acc = np.zeros(size, dtype=_U64)
    for y in vectors:
        if y.shape != (size,) or y.dtype != _U64:
            raise PrivacyError(f"masked vector must be ({size},) uint64, got {y.shape} {y.dtype}")
        np.add(acc, y, out=acc)
    return acc


def remove_masks(
    total: np.ndarray, self_seeds: Iterable[bytes], pairs: Iterable[tuple[bytes, int]], prg: Prg | None = None
) -> np.ndarray:
    """Σ w_i x_i as int64: the masked sum minus every committer's self-mask and leftover pair masks.

    pairs: (s_ij, sign(i, j)) for each committer i and dropped neighbour j: the sign i used.
    """
    prg = prg or Prg(total.size)
    acc = np.array(total, dtype=_U64, copy=True)  # (size,)
    for seed in self_seeds:
        prg.add(acc, seed, -1)
    for seed, sign in pairs:
        prg.add(acc, seed, -sign)
    return acc.view(np.int64)
