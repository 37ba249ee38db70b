"""Differential privacy in the integer domain: clipping, discrete Gaussian noise, seeds.

Validators must agree on the noisy aggregate byte for byte and an auditor must replay it, so
noise cannot come from floats compared between parties. Noise here is *discrete* Gaussian
(Canonne, Kamath, Steinke 2020, "CKS"): integers drawn from a CSPRNG stream that everyone
holding the seed expands identically, added to int64 sums at 2**scale_bits.

Threat model of the central (plain-mode) noise — also in docs/design.md:

- Plain mode already shows every individual update to whoever reads the blob store
  (validators, auditors). DP there protects the *released model* against parties without
  store access, the same parties plain mode protects against anyway.
- The seed must be secret from those parties, or they subtract the noise: no seed from public
  data. Nor from the clean aggregate alone: an adversary who guesses neighbouring datasets
  could recompute "aggregate → seed → noise" for each guess and test it. So the seed is HKDF
  over secret per-trainer nonces carried inside the plain-mode update blobs (`central_seed`):
  store readers can derive it, a consumer of the released model cannot, and one honest
  trainer's nonce is enough to keep it secret.
- A trainer that reads others' blobs before it commits could grind its own nonce to pick
  favourable noise. The `context` should therefore include randomness fixed only after the
  commit phase closes (e.g. the closing block's hash) besides job and round.
- Against validators use secure-aggregation mode, where every trainer adds a share of the
  noise from its own secret randomness (`noise_share`): validators see only the noisy sum.

Determinism: the sampler's hot path compares float64 values on arrays. Every float operation
in it is IEEE-exact (+ − × ÷, conversions) except `log` and `exp`, whose last bits differ
between libms. Any comparison those last bits could flip (within a relative `_MARGIN` =
2**-40) is re-decided with `decimal`, whose `ln`/`exp` are correctly rounded by specification,
so every machine draws the same integers.
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal, localcontext
from fractions import Fraction

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedledger.aggregation.base import max_abs
from fedledger.aggregation.stats import INT64_SAFE_BOUND, div_half_up, exact_fraction, squared_norm
from fedledger.errors import PrivacyError

SigmaLike = int | float | Fraction
#: Per-trainer nonce length; shorter ones are refused so no seed rests on a guessable nonce.
NONCE_BYTES = 32
MIN_SECRET_BYTES = 16
#: Noise scales above this are refused: samples stay below 2**50, exact as float64 and far
#: from int64 overflow once added to an update.
MAX_SIGMA_Q = 2**44
_DOMAIN_SEED = b"fedledger/dp/central-seed/v1"
_DOMAIN_STREAM = b"fedledger/dp/chacha20-key/v1"
#: Relative distance under which a float log/exp decision is re-taken exactly (see module doc).
_MARGIN = 2.0**-40
_DECIMAL_DIGITS = 60
_U53 = 2.0**-53


# ---------------------------------------------------------------- input checks


def _sigma2(sigma_q: SigmaLike, what: str = "sigma_q") -> Fraction:
    """σ² as an exact fraction; floats are taken at their exact binary value."""
    if isinstance(sigma_q, bool) or not isinstance(sigma_q, int | float | Fraction):
        raise PrivacyError(f"{what} must be a number, got {type(sigma_q).__name__}")
    if isinstance(sigma_q, float) and not math.isfinite(sigma_q):
        raise PrivacyError(f"{what} is {sigma_q}; it must be a finite positive number")
    s = Fraction(sigma_q)
    if s <= 0:
        raise PrivacyError(f"{what} is {sigma_q}; noise needs sigma > 0")
    if s > MAX_SIGMA_Q:
        raise PrivacyError(f"{what} {float(s):.4g} exceeds 2**44 quantisation steps; lower scale_bits")
    return s * s


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 0:
        raise PrivacyError(f"size must be a non-negative integer, got {size!r}")


def _check_secret(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) < MIN_SECRET_BYTES:
        raise PrivacyError(f"{what} must be at least {MIN_SECRET_BYTES} bytes of secret randomness")


# ---------------------------------------------------------------- clipping


def clip_bound_q(clip_norm: float, scale_bits: int) -> int:
    """⌊C · 2**scale_bits⌋ from the decimal text of C, as the norm bound is computed.

    Rounding down means the integer bound never exceeds the spec's C, so the sensitivity the
    accountant assumes is never understated.
    """
    if isinstance(clip_norm, bool) or not isinstance(clip_norm, int | float):
        raise PrivacyError(f"clip norm must be a number, got {type(clip_norm).__name__}")
    if not math.isfinite(clip_norm) or clip_norm <= 0:
        raise PrivacyError(f"clip norm is {clip_norm}; it must be a finite number > 0")
    bound = math.floor(exact_fraction(clip_norm) * (1 << scale_bits))
    if bound < 1:
        raise PrivacyError(f"clip norm {clip_norm} is below one step at scale 2**{scale_bits}")
    return bound


def _check_clip(clip_q: int) -> None:
    if isinstance(clip_q, bool) or not isinstance(clip_q, int | np.integer) or clip_q <= 0:
        raise PrivacyError(f"clip bound must be a positive integer (quantised), got {clip_q!r}")


def clip_update(delta: Mapping[str, np.ndarray], clip_q: int) -> dict[str, np.ndarray]:
    """delta scaled so its exact L2 norm is ≤ clip_q; unchanged if it already is.

    The norm is N = ⌈√(Σx²)⌉ ≥ ‖x‖ in exact integers and every element becomes x·C/N
    truncated toward zero, so |yᵢ| ≤ |xᵢ|·C/‖x‖ and ‖y‖ ≤ C exactly — unlike round-to-nearest
    clipping (aggregation/clipped.py), which may land a hair above the bound. Deterministic:
    pure integer arithmetic (int64 when provably safe, Python ints otherwise).
    """
    _check_clip(clip_q)
    clip_q = int(clip_q)
    s = squared_norm(delta)
    if s <= clip_q * clip_q:
        return {k: np.asarray(v, dtype=np.int64) for k, v in delta.items()}
    norm = math.isqrt(s - 1) + 1  # ⌈√s⌉ for s ≥ 1
    out: dict[str, np.ndarray] = {}
    for name, arr in delta.items():
        flat = np.asarray(arr, dtype=np.int64).reshape(-1)  # (size,)
        if max_abs(flat) * clip_q < INT64_SAFE_BOUND and norm < INT64_SAFE_BOUND:
            scaled = (np.abs(flat) * np.int64(clip_q)) // np.int64(norm)  # (size,), |.| ≤ clip_q
        else:
            scaled = np.asarray((np.abs(flat.astype(object)) * clip_q) // norm, dtype=np.int64)
        out[name] = np.where(flat < 0, -scaled, scaled).astype(np.int64).reshape(np.shape(arr))
    return out


# ---------------------------------------------------------------- the CSPRNG stream


class _Stream:
    """ChaCha20 keystream keyed by HKDF(seed): 64-bit words in a fixed order for a fixed seed."""

    def __init__(self, seed: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DOMAIN_STREAM).derive(bytes(seed))
        self._enc = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()

    def words(self, n: int) -> np.ndarray:
        return np.frombuffer(self._enc.update(bytes(8 * n)), dtype="<u8").astype(np.uint64)  # (n,)


# ---------------------------------------------------------------- exact fallbacks


def _floor_neg_log(u: np.ndarray, t: int) -> np.ndarray:
    """⌊−t·ln u⌋ for u in (0, 1]: a geometric variable with P(G ≥ k) = e^(−k/t)."""
    v = -np.log(u) * float(t)  # (m,) float
    g = np.floor(v)
    close = np.minimum(v - g, g + 1.0 - v) <= (v + 1.0) * _MARGIN
    for i in np.flatnonzero(close):
        with localcontext() as ctx:
            ctx.prec = _DECIMAL_DIGITS
            exact = -Decimal(float(u[i])).ln() * t
            g[i] = float(exact.to_integral_value(rounding=ROUND_FLOOR))
    return np.asarray(g, dtype=np.int64)


def _below_exp(u: np.ndarray, x: np.ndarray) -> np.ndarray:
    """u < e^(−x) elementwise, for x ≥ 0 exactly as given in float64."""
    p = np.exp(-x)  # (m,)
    accept: np.ndarray = np.asarray(u < p)
    close = np.abs(u - p) <= p * _MARGIN + 2.0**-60
    for i in np.flatnonzero(close):
        with localcontext() as ctx:
            ctx.prec = _DECIMAL_DIGITS
            accept[i] = Decimal(float(u[i])) < (-Decimal(float(x[i]))).exp()
    return accept


# ---------------------------------------------------------------- the sampler


def discrete_gaussian(seed: bytes, size: int, sigma2: Fraction) -> np.ndarray:
    """`size` draws of N_Z(0, σ²): P(y) ∝ exp(−y²/2σ²) over the integers; int64, shape (size,).

    CKS Algorithm 3 in batches: propose a discrete Laplace Y with scale t = ⌊σ⌋ + 1 (a
    geometric magnitude ⌊−t·ln U⌋ and a sign, rejecting −0), accept it with probability
    exp(−(|Y| − σ²/t)² / 2σ²). Acceptance is ~0.76 for σ ≥ 10 (~0.6 below 1), so for
    quantised scales one batch of 4/3·size proposals nearly always suffices. Departures
    from the exact law: 53-bit uniforms (events of probability < 2**-53 are missed) and
    acceptance probabilities computed from float64 arguments (relative error < 2**-50);
    `sample_exact` is the exact reference they are tested against. Bit-identical on every
    machine for the same (seed, size, σ²).
    """
    _check_size(size)
    _check_secret(seed, "seed")
    if not isinstance(sigma2, Fraction) or sigma2 <= 0 or sigma2 > MAX_SIGMA_Q**2:
        raise PrivacyError(f"sigma² must be a positive Fraction ≤ 2**88, got {sigma2!r}")
    t = math.isqrt(math.floor(sigma2)) + 1  # ⌊σ⌋ + 1
    tau, two_s2 = float(sigma2 / t), float(2 * sigma2)
    stream = _Stream(seed)
    out = np.empty(int(size), dtype=np.int64)
    filled = 0
    while filled < size:
        need = int(size) - filled
        m = need * 4 // 3 + 64  # proposals this batch; depends only on counts: deterministic
        a, b = stream.words(m), stream.words(m)  # (m,) uint64 each
        u1 = ((a >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * _U53  # (0, 1]
        negative = (a & np.uint64(1)).astype(bool)  # bit 0 is not part of u1
        mag = _floor_neg_log(u1, t)  # (m,) ≥ 0
        dist = mag.astype(np.float64) - tau  # exact conversion: mag < 2**53
        accept = _below_exp((b >> np.uint64(11)).astype(np.float64) * _U53, dist * dist / two_s2)
        accept &= ~(negative & (mag == 0))
        y = np.where(negative, -mag, mag)[accept][:need]
        out[filled : filled + y.size] = y
        filled += y.size
    return out


def sample_exact(sigma2: Fraction, count: int, rng: random.Random | None = None) -> list[int]:
    """CKS 2020 Algorithms 1–3 in exact rational arithmetic: the slow reference sampler.

    Every Bernoulli is decided by integer comparisons, so the output law is exactly N_Z(0, σ²)
    given a uniform `rng` (any object with `randrange`, e.g. `random.Random` for tests).
    """
    if not isinstance(sigma2, Fraction) or sigma2 <= 0:
        raise PrivacyError(f"sigma² must be a positive Fraction, got {sigma2!r}")
    r = rng if rng is not None else secrets.SystemRandom()

    def bernoulli(p: Fraction) -> bool:
        return r.randrange(p.denominator) < p.numerator

    def bernoulli_exp(gamma: Fraction) -> bool:  # P = exp(−γ), γ ≥ 0
        while gamma > 1:
            if not bernoulli_exp(Fraction(1)):
                return False
            gamma -= 1
        k = 1
        while bernoulli(gamma / k):
            k += 1
        return k % 2 == 1

    def laplace(t: int) -> int:  # P(y) ∝ exp(−|y|/t)
        while True:
            u = r.randrange(t)
            if not bernoulli_exp(Fraction(u, t)):
                continue
            v = 0
            while bernoulli_exp(Fraction(1)):
                v += 1
            x, negative = u + t * v, bernoulli(Fraction(1, 2))
            if not (negative and x == 0):
                return -x if negative else x

    t = math.isqrt(math.floor(sigma2)) + 1
    out: list[int] = []
    while len(out) < count:
        y = laplace(t)
        if bernoulli_exp((abs(y) - sigma2 / t) ** 2 / (2 * sigma2)):
            out.append(y)
    return out


# ---------------------------------------------------------------- central noise (plain mode)


def new_nonce() -> bytes:
    """A trainer's secret per-round nonce, to travel inside its plain-mode update blob."""
    return secrets.token_bytes(NONCE_BYTES)


def central_seed(nonces: Mapping[str, bytes], context: bytes) -> bytes:
    """The round's noise seed: HKDF-SHA256 over the accepted updates' nonces, 32 bytes.

    `nonces` maps each trainer whose update the aggregate uses (canonical id, e.g. its
    lower-case address) to its nonce; they are taken in sorted id order, length-prefixed, so
    every validator derives the same seed. `context` (public) binds job, round and, against
    nonce grinding, randomness fixed after the commit phase closed. Secret as long as one
    nonce is.
    """
    if not nonces:
        raise PrivacyError("central noise needs at least one trainer nonce")
    if not isinstance(context, bytes | bytearray):
        raise PrivacyError("context must be bytes")
    ikm = bytearray()
    for trainer in sorted(nonces):
        nonce = nonces[trainer]
        _check_secret(nonce, f"nonce of {trainer}")
        tid = trainer.encode()
        ikm += len(tid).to_bytes(4, "big") + tid + len(nonce).to_bytes(4, "big") + bytes(nonce)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DOMAIN_SEED + bytes(context))
    return hkdf.derive(bytes(ikm))


def central_sigma_q(noise_multiplier: float, clip_q: int) -> Fraction:
    """σ of the noise on the *sum* of clipped updates, in quantised units: z · C_q, exactly."""
    _check_clip(clip_q)
    if isinstance(noise_multiplier, bool) or not isinstance(noise_multiplier, int | float):
        raise PrivacyError(f"noise multiplier must be a number, got {type(noise_multiplier).__name__}")
    if not math.isfinite(noise_multiplier) or noise_multiplier <= 0:
        raise PrivacyError(f"noise multiplier is {noise_multiplier}; it must be a finite number > 0")
    return exact_fraction(noise_multiplier) * int(clip_q)


def central_noise(seed: bytes, size: int, sigma_q: SigmaLike) -> np.ndarray:
    """Discrete Gaussian noise N_Z(0, σ_q²) for `size` coordinates, int64 shape (size,).

    Added by validators to the sum of clipped updates; identical bytes for the same seed on
    every machine, so the noisy aggregate is agreed on and replayed like any other.
    """
    return discrete_gaussian(seed, size, _sigma2(sigma_q))


def add_noise(total: Mapping[str, np.ndarray], noise: np.ndarray) -> dict[str, np.ndarray]:
    """total + noise, the flat noise laid over the tensors in sorted-name order (the blob's)."""
    size = sum(int(np.size(v)) for v in total.values())
    if noise.shape != (size,):
        raise PrivacyError(f"noise has shape {noise.shape}; the tensors hold {size} values")
    if max(max_abs(np.asarray(v)) for v in total.values()) + max_abs(noise) >= INT64_SAFE_BOUND:
        raise PrivacyError("noisy sum would overflow int64")
    out: dict[str, np.ndarray] = {}
    offset = 0
    for name in sorted(total):
        arr = np.asarray(total[name], dtype=np.int64)
        out[name] = arr + noise[offset : offset + arr.size].reshape(arr.shape)
        offset += arr.size
    return {name: out[name] for name in total}


def noisy_mean(
    deltas: Sequence[Mapping[str, np.ndarray]], clip_q: int, sigma_q: SigmaLike, seed: bytes
) -> dict[str, np.ndarray]:
    """Plain-mode DP-FedAvg: ⌊(Σ clip(dᵢ) + N_Z(0, σ_q²)) / n⌉, halves up; unweighted.

    Noise goes on the sum, whose L2 sensitivity to adding or removing one trainer is C_q; the
    division is post-processing. Weighting by claimed example counts would give one trainer
    more than C_q of influence, so DP rounds average unweighted (McMahan et al. 2018).
    """
    if not deltas:
        raise PrivacyError("no updates to average")
    if len(deltas) * int(clip_q) >= INT64_SAFE_BOUND:
        raise PrivacyError("n · clip bound overflows int64; lower scale_bits or the clip norm")
    clipped = [clip_update(d, clip_q) for d in deltas]
    total = {n: np.asarray(np.sum([c[n] for c in clipped], axis=0, dtype=np.int64)) for n in clipped[0]}
    size = sum(int(v.size) for v in total.values())
    noisy = add_noise(total, central_noise(seed, size, sigma_q))
    return {k: div_half_up(v.reshape(-1), len(deltas)).reshape(v.shape) for k, v in noisy.items()}


# ---------------------------------------------------------------- distributed noise (secure mode)


def share_variance_q(sigma_q: SigmaLike, min_commits: int) -> Fraction:
    """Each trainer's σᵢ² = σ²/n_min, exact: any ≥ n_min honest committers sum to ≥ σ².

    Noise from trainers colluding with the adversary does not count (they know it), which is
    why n_min, not the committee, sets the share; more committers only add noise.
    """
    if isinstance(min_commits, bool) or not isinstance(min_commits, int) or min_commits < 1:
        raise PrivacyError(f"min_commits must be a positive integer, got {min_commits!r}")
    return _sigma2(sigma_q) / min_commits


def share_sigma_q(sigma_q: SigmaLike, min_commits: int) -> float:
    """σᵢ = σ/√n_min as a float, for display; sampling uses the exact `share_variance_q`."""
    return math.sqrt(share_variance_q(sigma_q, min_commits))


def distributed_tau(share_variance: Fraction, committers: int) -> float:
    """Kairouz, Liu, Steinke 2021: τ = 10·Σ_{k=1}^{n−1} exp(−2π²σᵢ²·k/(k+1)).

    A sum of n discrete Gaussians is not exactly a discrete Gaussian; its privacy is the
    discrete Gaussian's up to a slack proportional to τ (times the dimension). At the
    thousands-of-steps σᵢ of a quantised update τ underflows to 0; callers can assert it.
    """
    s2 = float(share_variance)
    return 10.0 * sum(math.exp(-2 * math.pi**2 * s2 * k / (k + 1)) for k in range(1, committers))


def noise_share(size: int, sigma_q: SigmaLike, min_commits: int, seed: bytes | None = None) -> np.ndarray:
    """One trainer's N_Z(0, σ²/n_min) share, int64 shape (size,), from local secret randomness.

    Added to the clipped update before masking; never stored or revealed. `seed` only for
    tests: by default it is fresh from the OS, so nobody else can reproduce the share.
    """
    return discrete_gaussian(
        seed if seed is not None else secrets.token_bytes(32), size, share_variance_q(sigma_q, min_commits)
    )
