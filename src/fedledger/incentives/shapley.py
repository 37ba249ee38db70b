"""Contribution scores as pure functions of a coalition utility: LOO, exact and Monte Carlo Shapley.

A coalition's utility is what the round's model would have scored on the job's
validation set had only that coalition's committed updates been aggregated. Rebuilding
coalition models from the committed updates needs no retraining (GTG-Shapley, Liu et
al. 2022), so a validator can afford many of them; these functions only decide which
coalitions to evaluate and how to combine the values. Trainers are indices 0..n-1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

Coalition = frozenset[int]
Utility = Callable[[Coalition], float]


class CachedUtility:
    """Memoises a utility and counts distinct evaluations (the cost that matters)."""

    def __init__(self, utility: Utility) -> None:
        self.utility = utility
        self.cache: dict[Coalition, float] = {}

    def __call__(self, coalition: Iterable[int]) -> float:
        key = frozenset(coalition)
        if key not in self.cache:
            self.cache[key] = float(self.utility(key))
        return self.cache[key]

    @property
    def evaluations(self) -> int:
        return len(self.cache)


def leave_one_out(n: int, utility: Utility) -> list[float]:
    """U(N) - U(N minus i): what the round loses without each trainer."""
    u = CachedUtility(utility)
    everyone = frozenset(range(n))
    return [u(everyone) - u(everyone - {i}) for i in range(n)]


def exact_shapley(n: int, utility: Utility) -> list[float]:
    """Shapley values over all 2^n coalitions: the reference the estimate is checked against.

    phi_i = sum over S not containing i of |S|! (n-|S|-1)! / n! * (U(S + i) - U(S)).
    """
    if n > 16:
        raise ValueError(f"exact Shapley over {n} trainers needs 2^{n} coalitions; use gtg_shapley")
    u = CachedUtility(utility)
    weight = [math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) for k in range(n)]
    phi = [0.0] * n
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for k in range(n):
            for s in combinations(others, k):
                base = frozenset(s)
                phi[i] += weight[k] * (u(base | {i}) - u(base))
    return phi


@dataclass(frozen=True)
class ShapleyEstimate:
    values: list[float]
    permutations: int
    evaluations: int  # distinct coalitions evaluated
    truncated: bool  # between-round truncation: the round added too little to score


def gtg_shapley(
    n: int,
    utility: Utility,
    *,
    seed: int = 0,
    eps: float = 1e-3,
    max_permutations: int | None = None,
    tolerance: float = 0.01,
    min_permutations: int | None = None,
    prefix: Callable[[Sequence[int]], np.ndarray] | None = None,
) -> ShapleyEstimate:
    """Guided, truncated Monte Carlo Shapley (GTG-Shapley).

    - Between rounds: if the full aggregate improves on the global model by less than
      `eps`, everyone scores 0 (there is nothing to share out).
    - Within a permutation: once the running coalition is within `eps` of U(N), the
      remaining trainers' marginals are taken as 0 without evaluating them.
    - Guided permutations: the k-th permutation starts with trainer k mod n, so every
      trainer is seen early (where marginals are large) equally often.
    - Stops when the mean relative change of the estimate over the last n permutations is
      below `tolerance` (after at least `min_permutations`, default 2n), or at
      `max_permutations` (default 50n).

    `prefix(order)`, if given, returns U of every prefix of `order` at once (length n):
    a utility with running sums (the linear one) scores a permutation in O(n) that way.
    """
    u = CachedUtility(utility)
    everyone = frozenset(range(n))
    full, empty = u(everyone), u(frozenset())
    if n == 0 or abs(full - empty) < eps:
        return ShapleyEstimate([0.0] * n, 0, u.evaluations, truncated=True)
    rng = np.random.default_rng(seed)
    max_p = max_permutations or 50 * n
    min_p = min_permutations or 2 * n
    total = np.zeros(n)
    evaluated = 0
    history: list[np.ndarray] = []
    k = 0
    for k in range(1, max_p + 1):
        rest = [int(x) for x in rng.permutation(n) if x != (k - 1) % n]
        order = [(k - 1) % n, *rest]
        if prefix is not None:
            values = np.concatenate([[empty], prefix(order)])  # (n + 1,) U of each prefix
            marginal = np.diff(values)  # (n,)
            # within-permutation truncation: once a prefix is within eps of U(N), the rest count 0
            close = np.flatnonzero(np.abs(full - values[:-1]) < eps)
            if close.size:
                marginal[close[0] :] = 0.0
            total[np.asarray(order)] += marginal
            evaluated += n if not close.size else int(close[0])
        else:
            coalition: frozenset[int] = frozenset()
            prev = empty
            for i in order:
                if abs(full - prev) < eps:
                    break  # truncated: the rest add (about) nothing
                coalition = coalition | {i}
                value = u(coalition)
                total[i] += value - prev
                prev = value
        history.append(total / k)
        if k >= min_p and k > n:
            now, before = history[-1], history[-1 - n]
            scale = np.abs(now).sum() or 1.0
            if float(np.abs(now - before).sum()) / scale < tolerance:
                break
    return ShapleyEstimate([float(v) for v in total / k], k, u.evaluations + evaluated, truncated=False)
