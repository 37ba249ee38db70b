"""The differential-privacy accountant's answers a spec needs, cached.

A spec is validated again each time it is loaded or copied, and its noise multiplier
and affordable rounds come from a numerical search in the accountant: caching them by
their inputs keeps that search to once per budget.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=64)
def dp_noise_for(
    epsilon: float, delta: float, rounds: int, accountant: str, sampling_rate: float = 1.0
) -> float:
    """The accountant's smallest noise multiplier for the budget (cached: specs are re-validated).

    `rounds` counts releases: aggregates at organisation level, DP-SGD steps at record level.
    """
    from fedledger.errors import PrivacyError
    from fedledger.privacy.accountant import noise_multiplier_for

    try:
        return noise_multiplier_for(epsilon, delta, rounds, sampling_rate, accountant)
    except PrivacyError as exc:
        raise ValueError(str(exc)) from None


@lru_cache(maxsize=64)
def dp_rounds_affordable(
    epsilon: float, delta: float, z: float, accountant: str, sampling_rate: float = 1.0, steps: int = 1
) -> int:
    """Rounds of `steps` releases each that the budget affords (record level: DP-SGD steps)."""
    from fedledger.privacy.accountant import rounds_affordable

    return rounds_affordable(
        epsilon, delta, z, sampling_rate, accountant, max_rounds=100_000, steps_per_round=steps
    )


@lru_cache(maxsize=4096)
def dp_micro_epsilon(
    z: float, releases: int, delta: float, accountant: str, sampling_rate: float = 1.0
) -> int:
    """Micro-ε (rounded up) after `releases` noisy releases: what validators (organisation level)
    or each trainer (record level, one release per DP-SGD step) post on chain."""
    from fedledger.privacy.accountant import epsilon, micro_epsilon

    return micro_epsilon(epsilon(z, sampling_rate, releases, delta, accountant)) if releases else 0
