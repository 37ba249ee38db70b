"""The statistics round: checked, summed into version 1, identical for every validator, carried on."""

from __future__ import annotations

import numpy as np

from fedledger.codec.blob import encode_tensors
from fedledger.data import stats
from fedledger.data.schema import Feature, TableSchema
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import update_metadata
from fedledger.roles.validator import compute_round
from fedledger.spec import JobSpec
from fedledger.store.memory import MemoryStore

TRAINERS = ["0x" + f"{i:02x}" * 20 for i in range(1, 4)]
SCHEMA = TableSchema(
    features=(
        Feature(name="a"),
        Feature(name="b"),
        Feature(name="c", type="categorical", vocabulary=("x", "y")),
    ),
    label="y",
    classes=("no", "yes"),
)
SPEC = JobSpec.from_dict(
    {"name": "t", "dataset": "own", "data_schema": SCHEMA.model_dump(), "partition": "organisation",
     "model": "logreg", "trainers": 3}
)  # fmt: skip
WEIGHTS = {"0.weight": np.zeros((2, 4), dtype=np.int64), "0.bias": np.zeros(2, dtype=np.int64)}


def _commit(store: MemoryStore, i: int, tensors: dict[str, np.ndarray], rows: int, r: int = 1
            ) -> CommitRecord:  # fmt: skip
    c = store.put(encode_tensors(tensors, metadata=update_metadata(1, r, TRAINERS[i])))
    return CommitRecord(TRAINERS[i], r, c, rows, block_number=10, log_index=i)


def _x(seed: int, rows: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, 2)).astype(np.float32)


def test_the_spec_runs_one_more_round_on_chain_for_the_statistics() -> None:
    assert SPEC.federated_stats and SPEC.chain_rounds == SPEC.rounds + 1


def test_version_one_is_the_initial_weights_plus_the_exact_sum_of_everyone_s_statistics() -> None:
    store = MemoryStore()
    xs = [_x(i, 40 + 10 * i) for i in range(3)]
    commits = [_commit(store, i, stats.contribution(x, 20), len(x)) for i, x in enumerate(xs)]
    kwargs = dict(store=store, spec=SPEC, job_id=1, round=1, version=0, global_model=WEIGHTS, commits=commits)
    out = compute_round(**kwargs)  # type: ignore[arg-type]
    again = compute_round(**kwargs)  # type: ignore[arg-type]
    assert out.blob == again.blob and out.aggregate == again.aggregate  # every validator alike
    assert [c.trainer for c in out.accepted] == TRAINERS and not out.rejected
    pooled = stats.contribution(np.concatenate(xs), 20)
    for name in stats.NAMES:
        got = [stats.from_limbs(d) for d in np.atleast_2d(out.model[name])]
        assert got == [stats.from_limbs(d) for d in np.atleast_2d(pooled[name])]
    for name, w in WEIGHTS.items():
        np.testing.assert_array_equal(out.model[name], w)


def test_a_forged_statistics_update_is_flagged_and_left_out_of_the_sum() -> None:
    store = MemoryStore()
    good = [_commit(store, i, stats.contribution(_x(i, 30), 20), 30) for i in range(2)]
    forged = stats.contribution(_x(9, 30), 20)
    bad = _commit(store, 2, forged, 31)  # claims one more row than its sums cover
    out = compute_round(store=store, spec=SPEC, job_id=1, round=1, version=0, global_model=WEIGHTS,
                        commits=[*good, bad])  # fmt: skip
    assert [c.trainer for c in out.accepted] == TRAINERS[:2]
    assert [(r.trainer, r.flagged) for r in out.rejected] == [(TRAINERS[2], True)]
    why = "statistics round: statistics count 30 differs from the committed 31 examples"
    assert out.rejected[0].reason == why
    assert stats.from_limbs(out.model[stats.COUNT]) == 60


def test_a_model_update_in_the_statistics_round_is_flagged() -> None:
    store = MemoryStore()
    c = _commit(store, 0, {k: np.ones_like(v) for k, v in WEIGHTS.items()}, 10)
    out = compute_round(store=store, spec=SPEC, job_id=1, round=1, version=0, global_model=WEIGHTS,
                        commits=[c])  # fmt: skip
    assert not out.accepted
    assert out.rejected[0].reason.startswith("statistics round: a statistics update holds")


def test_later_rounds_train_the_weights_and_carry_the_statistics_unchanged() -> None:
    store = MemoryStore()
    committed = stats.contribution(_x(1, 50), 20)
    v1 = {**WEIGHTS, **committed}
    delta = {k: np.full_like(v, 4) for k, v in WEIGHTS.items()}
    commits = [_commit(store, i, delta, 10, r=2) for i in range(3)]
    out = compute_round(store=store, spec=SPEC, job_id=1, round=2, version=1, global_model=v1,
                        commits=commits)  # fmt: skip
    assert len(out.accepted) == 3
    for name in WEIGHTS:
        np.testing.assert_array_equal(out.model[name], np.full_like(WEIGHTS[name], 4))
    for name in stats.NAMES:
        np.testing.assert_array_equal(out.model[name], committed[name])
    assert sorted(out.model) == sorted(v1)


def test_an_update_that_touches_the_statistics_is_rejected() -> None:
    store = MemoryStore()
    v1 = {**WEIGHTS, **stats.contribution(_x(1, 50), 20)}
    delta = {k: np.zeros_like(v) for k, v in v1.items()}
    c = _commit(store, 0, delta, 10, r=2)
    out = compute_round(store=store, spec=SPEC, job_id=1, round=2, version=1, global_model=v1,
                        commits=[c])  # fmt: skip
    assert not out.accepted and out.rejected[0].flagged
