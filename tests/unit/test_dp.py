"""Differential privacy maths (privacy/dp.py): exact clipping, the discrete Gaussian, seeds.

Statistical checks use fixed seeds, so they are deterministic: a tolerance of several
standard errors was met once and will be met every time.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pytest

from fedledger.aggregation.stats import div_half_up, squared_norm
from fedledger.errors import PrivacyError
from fedledger.privacy import dp

SEED = bytes(range(32))


def pmf(sigma2: float, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """N_Z(0, σ²) on [−radius, radius], normalised over that range (the rest is < 1e-30)."""
    ys = np.arange(-radius, radius + 1)
    w = np.exp(-(ys.astype(np.float64) ** 2) / (2 * sigma2))
    return ys, w / w.sum()


def chi_square(samples: np.ndarray, sigma2: float) -> tuple[float, int]:
    """Pearson statistic against the exact pmf, bins with expected count ≥ 5, tails pooled."""
    radius = int(12 * math.sqrt(sigma2)) + 2
    ys, p = pmf(sigma2, radius)
    expected = p * samples.size
    observed = np.array([np.count_nonzero(samples == y) for y in ys], dtype=np.float64)
    keep = expected >= 5
    e = np.append(expected[keep], expected[~keep].sum())
    o = np.append(observed[keep], observed[~keep].sum())
    return float(((o - e) ** 2 / np.maximum(e, 1e-300)).sum()), int(keep.sum())


# ---------------------------------------------------------------- clipping


def random_delta(rng: np.random.Generator, scale: float) -> dict[str, np.ndarray]:
    return {
        "w": np.asarray(rng.normal(0, scale, size=(30, 17)).round(), dtype=np.int64),
        "b": np.asarray(rng.normal(0, scale, size=(17,)).round(), dtype=np.int64),
        "s": np.asarray(int(rng.normal(0, scale)), dtype=np.int64),  # 0-d tensor
    }


@pytest.mark.parametrize("scale", [3.0, 1e3, 1e6, 1e12, 1e17])
def test_clip_bound_holds_exactly(scale: float) -> None:
    rng = np.random.default_rng(7)
    for clip_q in (1, 5, 1000, 2**20, 2**40):
        delta = random_delta(rng, scale)
        out = dp.clip_update(delta, clip_q)
        assert squared_norm(out) <= clip_q * clip_q
        assert all(out[k].dtype == np.int64 and out[k].shape == np.shape(delta[k]) for k in delta)
        assert list(out) == list(delta)
        assert out.keys() == dp.clip_update(delta, clip_q).keys()
        assert all(np.array_equal(out[k], dp.clip_update(delta, clip_q)[k]) for k in delta)


def test_clip_keeps_small_updates_and_is_odd() -> None:
    rng = np.random.default_rng(3)
    delta = random_delta(rng, 100.0)
    norm = math.isqrt(squared_norm(delta))
    same = dp.clip_update(delta, norm + 1)
    assert all(np.array_equal(same[k], delta[k]) for k in delta)
    neg = {k: -v for k, v in delta.items()}
    small, small_neg = dp.clip_update(delta, norm // 3), dp.clip_update(neg, norm // 3)
    assert all(np.array_equal(small_neg[k], -small[k]) for k in delta)
    # Truncation toward zero loses at most one step per element, so the direction is kept.
    assert squared_norm(small) > (norm // 3 - math.sqrt(delta["w"].size + 18)) ** 2


def test_clip_handles_the_int64_extremes() -> None:
    delta = {"x": np.array([-(2**63), 2**63 - 1, 0, 5], dtype=np.int64)}
    out = dp.clip_update(delta, 2**61)
    assert squared_norm(out) <= 2**122
    assert out["x"][0] < 0 < out["x"][1]


def test_clip_bound_q_rounds_down_from_decimal_text() -> None:
    assert dp.clip_bound_q(1.0, 20) == 2**20
    assert dp.clip_bound_q(0.1, 20) == 104857  # ⌊0.1 · 2**20⌋ = ⌊104857.6⌋
    with pytest.raises(PrivacyError, match="below one step"):
        dp.clip_bound_q(1e-9, 20)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_bad_clip_norm(bad: object) -> None:
    with pytest.raises(PrivacyError):
        dp.clip_bound_q(bad, 20)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_clip_bound(bad: object) -> None:
    with pytest.raises(PrivacyError, match="clip bound"):
        dp.clip_update({"x": np.ones(3, dtype=np.int64)}, bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- central noise


def test_central_noise_is_bit_identical_for_a_seed_and_differs_for_another() -> None:
    a = dp.central_noise(SEED, 50_000, 2**20)
    b = dp.central_noise(SEED, 50_000, 2**20)
    c = dp.central_noise(SEED[::-1], 50_000, 2**20)
    assert a.dtype == np.int64 and a.shape == (50_000,)
    assert a.tobytes() == b.tobytes()
    assert np.count_nonzero(a == c) < 10
    assert dp.central_noise(SEED, 0, 3).shape == (0,)


def test_float_and_exact_sigma_give_the_same_noise() -> None:
    a = dp.central_noise(SEED, 1000, 2.5)
    assert np.array_equal(a, dp.central_noise(SEED, 1000, Fraction(5, 2)))


def test_exact_fallback_takes_the_same_decisions(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a huge margin most log/exp decisions go through `decimal`: nothing may change."""
    reference = {s: dp.central_noise(SEED, 3000, s) for s in (0.7, 40, 2**30)}
    exact_calls = 0
    real_localcontext = dp.localcontext

    def counting_localcontext() -> object:
        nonlocal exact_calls
        exact_calls += 1
        return real_localcontext()

    monkeypatch.setattr(dp, "_MARGIN", 2.0**-5)
    monkeypatch.setattr(dp, "localcontext", counting_localcontext)
    for sigma, expected in reference.items():
        assert np.array_equal(dp.central_noise(SEED, 3000, sigma), expected)
    assert exact_calls > 1000


@pytest.mark.parametrize("sigma", [0.5, 3.0, 100.0, 2.0**20])
def test_discrete_gaussian_mean_and_variance(sigma: float) -> None:
    n = 200_000
    x = dp.central_noise(SEED, n, sigma).astype(np.float64)
    radius = int(40 * sigma) + 2
    if radius < 10**6:
        ys, p = pmf(sigma * sigma, radius)
        var = float((ys.astype(np.float64) ** 2 * p).sum())  # < σ² for small σ
    else:
        var = sigma * sigma  # equal to double precision at this σ
    assert abs(x.mean()) < 5 * math.sqrt(var / n)
    assert abs(x.var() / var - 1) < 5 * math.sqrt(2 / n)
    pos, neg = np.count_nonzero(x > 0), np.count_nonzero(x < 0)
    assert abs(pos - neg) < 5 * math.sqrt(pos + neg)  # symmetric


@pytest.mark.parametrize("sigma2", [Fraction(1, 4), Fraction(4), Fraction(30)])
def test_discrete_gaussian_matches_the_pmf(sigma2: Fraction) -> None:
    x = dp.discrete_gaussian(SEED, 100_000, sigma2)
    stat, bins = chi_square(x, float(sigma2))
    assert stat < bins + 6 * math.sqrt(2 * bins)  # χ² with ~bins dof: mean bins, sd √(2·bins)


def test_exact_reference_sampler_matches_the_pmf_too() -> None:
    x = np.array(dp.sample_exact(Fraction(4), 4000, random.Random(11)))
    stat, bins = chi_square(x, 4.0)
    assert stat < bins + 6 * math.sqrt(2 * bins)
    assert abs(x.var() / 4.0 - 1) < 5 * math.sqrt(2 / 4000)


def test_add_noise_lays_noise_in_sorted_name_order() -> None:
    total = {"b": np.zeros((2, 2), dtype=np.int64), "a": np.zeros(3, dtype=np.int64)}
    out = dp.add_noise(total, np.arange(7, dtype=np.int64))
    assert list(out) == ["b", "a"]
    assert out["a"].tolist() == [0, 1, 2] and out["b"].tolist() == [[3, 4], [5, 6]]
    with pytest.raises(PrivacyError, match="shape"):
        dp.add_noise(total, np.zeros(6, dtype=np.int64))


def test_noisy_mean_is_the_rounded_mean_of_clipped_sum_plus_noise() -> None:
    rng = np.random.default_rng(5)
    deltas = [random_delta(rng, 1e4) for _ in range(5)]
    clip_q, sigma = 50_000, Fraction(3 * 50_000)
    out = dp.noisy_mean(deltas, clip_q, sigma, SEED)
    again = dp.noisy_mean(deltas, clip_q, sigma, SEED)
    assert all(np.array_equal(out[k], again[k]) for k in out)
    clipped = [dp.clip_update(d, clip_q) for d in deltas]
    total = {k: sum(c[k] for c in clipped) for k in deltas[0]}
    size = sum(np.size(v) for v in total.values())
    noisy = dp.add_noise(total, dp.central_noise(SEED, size, sigma))  # type: ignore[arg-type]
    for k in deltas[0]:
        expected = div_half_up(noisy[k].reshape(-1), 5).reshape(np.shape(deltas[0][k]))
        assert np.array_equal(out[k], expected)


def test_noisy_mean_without_updates() -> None:
    with pytest.raises(PrivacyError, match="no updates"):
        dp.noisy_mean([], 10, 1.0, SEED)


# ---------------------------------------------------------------- seeds


def test_central_seed_is_canonical_and_depends_on_every_nonce() -> None:
    nonces = {f"0x{i:040x}": dp.new_nonce() for i in range(4)}
    seed = dp.central_seed(nonces, b"job 1 round 3")
    assert len(seed) == 32
    assert dp.central_seed(dict(reversed(list(nonces.items()))), b"job 1 round 3") == seed
    assert dp.central_seed(nonces, b"job 1 round 4") != seed
    changed = dict(nonces, **{"0x" + "0" * 40: dp.new_nonce()})
    assert dp.central_seed(changed, b"job 1 round 3") != seed
    fewer = dict(list(nonces.items())[1:])
    assert dp.central_seed(fewer, b"job 1 round 3") != seed


def test_central_seed_refuses_weak_input() -> None:
    with pytest.raises(PrivacyError, match="at least one"):
        dp.central_seed({}, b"")
    with pytest.raises(PrivacyError, match="16 bytes"):
        dp.central_seed({"a": b"short"}, b"")
    with pytest.raises(PrivacyError, match="16 bytes"):
        dp.central_noise(b"short", 10, 1.0)


# ---------------------------------------------------------------- distributed noise


def test_share_variances_sum_to_the_target() -> None:
    sigma = Fraction(123_456, 7)
    for n_min in (1, 3, 10):
        assert dp.share_variance_q(sigma, n_min) * n_min == sigma * sigma
        assert dp.share_sigma_q(sigma, n_min) == pytest.approx(float(sigma) / math.sqrt(n_min))


def test_distributed_shares_sum_to_at_least_the_target_variance() -> None:
    sigma, n_min, size = 2.0**16, 5, 100_000
    for committers in (n_min, n_min + 3):
        shares = [dp.noise_share(size, sigma, n_min, seed=bytes([i]) * 32) for i in range(committers)]
        total = np.sum(shares, axis=0).astype(np.float64)
        ratio = total.var() / sigma**2
        assert ratio > committers / n_min * (1 - 5 * math.sqrt(2 / size))
        assert abs(ratio - committers / n_min) < 5 * math.sqrt(2 / size) * committers / n_min


def test_noise_shares_use_fresh_secret_randomness_by_default() -> None:
    a, b = dp.noise_share(1000, 100.0, 3), dp.noise_share(1000, 100.0, 3)
    assert np.count_nonzero(a == b) < 50


def test_distributed_tau_is_negligible_at_quantised_scales() -> None:
    assert dp.distributed_tau(Fraction(1, 4), 10) > 1e-3  # σᵢ = 0.5: not negligible
    assert dp.distributed_tau(dp.share_variance_q(2**16, 10), 100) == 0.0


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, 2.0**45, "3"])
def test_bad_sigma(bad: object) -> None:
    with pytest.raises(PrivacyError):
        dp.central_noise(SEED, 10, bad)  # type: ignore[arg-type]
    with pytest.raises(PrivacyError):
        dp.noise_share(10, bad, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_min_commits(bad: object) -> None:
    with pytest.raises(PrivacyError, match="min_commits"):
        dp.share_variance_q(10.0, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_noise_multiplier(bad: float) -> None:
    with pytest.raises(PrivacyError, match="noise multiplier"):
        dp.central_sigma_q(bad, 100)


def test_central_sigma_is_exact() -> None:
    assert dp.central_sigma_q(1.1, 2**20) == Fraction(11, 10) * 2**20
    with pytest.raises(PrivacyError, match="size"):
        dp.central_noise(SEED, -1, 1.0)
