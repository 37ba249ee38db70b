"""An FLTrust round is decided by the sponsor's root update: with it the updates are weighed,
without it (the sponsor's node late or down) the round changes nothing and fails."""

from __future__ import annotations

import numpy as np

from fedledger.codec.blob import encode_tensors
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import update_metadata
from fedledger.roles.validator import compute_round
from fedledger.spec import JobSpec
from fedledger.store.memory import MemoryStore

SPONSOR = "0x" + "aa" * 20
TRAINERS = ["0x" + f"{i:02x}" * 20 for i in range(1, 4)]
GLOBAL = {"w": np.zeros(8, dtype=np.int64)}


def _round(with_root: bool) -> tuple[list[str], list[tuple[str, str, bool]], dict[str, np.ndarray]]:
    spec = JobSpec.from_dict(
        {"name": "t", "dataset": "digits", "model": "logreg", "trainers": 3, "aggregation": "fltrust"}
    )
    store = MemoryStore()
    rng = np.random.default_rng(0)
    direction = rng.integers(1, 1000, size=8)
    commits = []
    for i, trainer in enumerate(([SPONSOR] if with_root else []) + TRAINERS):
        delta = {"w": (direction + rng.integers(-50, 50, size=8)).astype(np.int64)}
        c = store.put(encode_tensors(delta, metadata=update_metadata(1, 1, trainer)))
        commits.append(CommitRecord(trainer, 1, c, 100, block_number=10, log_index=i))
    out = compute_round(
        store=store,
        spec=spec,
        job_id=1,
        round=1,
        version=0,
        global_model=GLOBAL,
        commits=commits,
        root_trainer=SPONSOR,
    )
    return (
        [c.trainer for c in out.accepted],
        [(r.trainer, r.reason, r.flagged) for r in out.rejected],
        out.model,
    )


def test_with_the_root_update_the_trainers_are_weighed_and_paid() -> None:
    accepted, rejected, model = _round(with_root=True)
    assert accepted == TRAINERS
    assert rejected == [(SPONSOR, "the root update: FLTrust's reference, not aggregated or paid", False)]
    assert not np.array_equal(model["w"], GLOBAL["w"])  # the updates point the root's way: it moved


def test_without_the_root_update_nothing_is_accepted_and_the_model_stays() -> None:
    accepted, rejected, model = _round(with_root=False)
    assert accepted == []
    reason = "fltrust: no root update from the sponsor this round; nothing can be weighed"
    assert rejected == [(t, reason, False) for t in sorted(TRAINERS, key=lambda a: int(a, 16))]
    assert np.array_equal(model["w"], GLOBAL["w"])
