"""Which registered organisations train in a round: the one place a simulation decides it.

Until the coordinator draws each round's trainers on chain, every registered trainer
trains every round, or, when a simulation asks for a sample (bench/scale.py's 100 of
1,000), a seeded draw made off chain. The off-chain draw is not enforced by the contract:
an organisation left out simply does not commit, the round's commit window runs out with
at least `min_commits` commits and the simulation advances it, as anyone may. Once the
sample is drawn on chain this function is what reads it; every backend already asks here.
"""

from __future__ import annotations

import numpy as np

from fedledger.errors import SpecError

#: domain separation for the sample's seed, so it is unrelated to the data split's and training's
SAMPLE_DOMAIN = 0x5A3D


def round_sample(registered: int, size: int | None, *, seed: int, round: int) -> list[int]:
    """Organisations (numbered from 1, ascending) that train round `round`.

    `size` None (or at least `registered`): all of them. Otherwise `size` drawn uniformly
    without replacement from (seed, round) alone, so a rerun and an auditor get the same.
    """
    if size is None or size >= registered:
        return list(range(1, registered + 1))
    if size < 1:
        raise SpecError("clients_per_round", f"must be at least 1, got {size}")
    rng = np.random.default_rng([seed, round, SAMPLE_DOMAIN])
    chosen = rng.choice(registered, size=size, replace=False)  # (size,) distinct, 0-based
    return sorted(int(i) + 1 for i in chosen)


def check_sample(size: int | None, *, registered: int, min_commits: int) -> None:
    """Refuses a sample that could never finalise a round (fewer than min_commits can commit)."""
    if size is None or size >= registered:
        return
    if size < min_commits:
        raise SpecError(
            "clients_per_round",
            f"{size} organisations a round can never reach min_commits={min_commits}; "
            f"lower min_commits to at most {size}",
        )
