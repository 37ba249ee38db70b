"""The round pipeline: one path for every mode, whose stages each mode contributes.

What it pins: the stage list per mode (`stages_for`), that `compute_round` is that list run
through `run_round`, that a new stage slots in without any caller changing, that DP's stages
compose to `privacy/dp.noisy_mean` exactly, and that the stages sit below the pipeline.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from fedledger.aggregation.base import apply_delta
from fedledger.aggregation.stats import squared_norm
from fedledger.codec.blob import encode_tensors
from fedledger.data.schema import Feature, TableSchema
from fedledger.privacy.dp import central_seed, new_nonce, noisy_mean
from fedledger.roles import pipeline
from fedledger.roles.dp import BUDGET_SPENT, NONCE, noise_context, read_private, sigma_q
from fedledger.roles.job import CommitRecord
from fedledger.roles.outcome import update_metadata
from fedledger.roles.round_types import RoundInputs, RoundState, Stage
from fedledger.roles.stages import AggregateRule
from fedledger.roles.validator import compute_round
from fedledger.spec import JobSpec
from fedledger.store.memory import MemoryStore

TRAINERS = ["0x" + f"{i:02x}" * 20 for i in range(1, 6)]
GLOBAL = {"b": np.zeros(3, dtype=np.int64), "w": np.zeros((2, 4), dtype=np.int64)}
BASE = {"name": "t", "dataset": "digits", "model": "logreg", "trainers": 5}
SCHEMA = TableSchema(features=(Feature(name="a"), Feature(name="b")), label="y", classes=("no", "yes"))
STATS = {"dataset": "own", "data_schema": SCHEMA.model_dump(), "partition": "organisation"}


def _spec(**fields: object) -> JobSpec:
    return JobSpec.from_dict({**BASE, **fields})


def _names(spec: JobSpec, *, statistics: bool = False) -> list[str]:
    return [s.name for s in pipeline.stages_for(spec, statistics=statistics)]


def test_each_mode_contributes_its_stages_to_the_one_path() -> None:
    assert _names(_spec()) == ["fetch", "validate", "aggregate"]
    assert _names(_spec(aggregation="krum", byzantine=1)) == ["fetch", "validate", "aggregate"]
    assert _names(_spec(aggregation="fltrust")) == ["fetch", "validate", "root", "aggregate"]
    dp = ["fetch", "validate", "budget", "clip", "sum", "noise", "mean"]
    assert _names(_spec(dp_epsilon=8.0, rounds=3)) == dp
    assert _names(_spec(privacy="secagg")) == ["fetch", "unmask", "mean"]
    assert _names(_spec(privacy="secagg", dp_epsilon=8.0, rounds=3)) == ["fetch", "unmask", "budget", "mean"]
    assert _names(_spec(**STATS), statistics=True) == ["fetch", "validate", "sum", "statistics"]
    secure_stats = _spec(**STATS, privacy="secagg")
    assert _names(secure_stats, statistics=True) == ["fetch", "unmask", "check", "statistics"]
    assert _names(secure_stats) == ["fetch", "unmask", "mean"]  # its later rounds: model rounds


def _round(
    spec: JobSpec, *, dp: bool = False, bad: int | None = None, seed: int = 0, over: tuple[int, ...] = ()
) -> tuple[MemoryStore, list[CommitRecord]]:
    """Five committed updates, the `bad` one over the norm bound; DP ones carry a nonce and are
    over the clip bound (so the validators' clipping shows)."""
    store, commits = MemoryStore(), []
    rng = np.random.default_rng(seed)
    for i, trainer in enumerate(TRAINERS):
        peak = spec.max_update_norm_q if i == bad or i in over else 1 << (spec.scale_bits - (0 if dp else 4))
        delta = {n: rng.integers(-peak, peak, size=g.shape).astype(np.int64) for n, g in GLOBAL.items()}
        meta = update_metadata(1, 1, trainer)
        if dp:
            meta = {**meta, NONCE: "0x" + new_nonce().hex()}
        c = store.put(encode_tensors(delta, metadata=meta))
        commits.append(CommitRecord(trainer, 1, c, 10 + i, block_number=7, log_index=i))
    return store, commits


def _kwargs(spec: JobSpec, store: MemoryStore, commits: list[CommitRecord], **extra: object) -> dict:
    return dict(store=store, spec=spec, job_id=1, round=1, version=0, global_model=GLOBAL, commits=commits,
                **extra)  # fmt: skip


def test_compute_round_is_its_mode_s_stages_run_in_order() -> None:
    spec = _spec()
    store, commits = _round(spec, bad=2)
    kwargs = _kwargs(spec, store, commits[::-1])  # commit order does not matter
    out = compute_round(**kwargs)
    again = pipeline.run_round(pipeline.round_inputs(**kwargs), pipeline.stages_for(spec))
    assert out.aggregate == again.aggregate and out.blob == again.blob
    assert [c.trainer for c in out.accepted] == [t for i, t in enumerate(TRAINERS) if i != 2]
    assert [(r.trainer, r.flagged) for r in out.rejected] == [(TRAINERS[2], True)]
    assert "exceeds" in out.rejected[0].reason


def test_a_bound_most_of_the_round_breaks_flags_nobody_and_changes_nothing() -> None:
    """Honest updates from a model a poisoned round made diverge break the bound too: under an
    honest majority a majority breaking it is about the model, so nobody is slashed for it."""
    spec = _spec()
    store, commits = _round(spec, over=(0, 2))  # two of five: the bound's usual verdict
    minority = compute_round(**_kwargs(spec, store, commits))
    assert [(r.trainer, r.flagged) for r in minority.rejected] == [(TRAINERS[0], True), (TRAINERS[2], True)]
    assert len(minority.accepted) == 3
    store, commits = _round(spec, over=(0, 2, 3))  # three of five
    majority = compute_round(**_kwargs(spec, store, commits))
    assert not majority.accepted and not any(r.flagged for r in majority.rejected)
    assert sorted(r.trainer for r in majority.rejected) == sorted(TRAINERS)
    assert all("3 of 5 updates exceed the bound, so none is flagged" in r.reason for r in majority.rejected)


@dataclass(frozen=True)
class CapExamples(Stage):
    """A new rule, as a stage: updates claiming more than `cap` examples are left out unflagged."""

    name = "cap"
    cap: int

    def apply(self, inputs: RoundInputs, state: RoundState) -> RoundState:
        over = [v for v in state.valid if v.commit.num_examples > self.cap]
        return replace(
            state,
            valid=tuple(v for v in state.valid if v not in over),
            rejected=state.reject((v.commit for v in over), "claims too many examples", flagged=False),
        )


def test_a_new_stage_slots_in_before_the_rule_without_touching_any_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = _spec()
    store, commits = _round(spec)
    plain = compute_round(**_kwargs(spec, store, commits))
    default = pipeline.stages_for

    def with_cap(spec: JobSpec, *, statistics: bool = False) -> list[Stage]:
        stages = default(spec, statistics=statistics)
        at = next(i for i, s in enumerate(stages) if isinstance(s, AggregateRule))
        return [*stages[:at], CapExamples(12), *stages[at:]]

    monkeypatch.setattr(pipeline, "stages_for", with_cap)
    assert _names(spec) == ["fetch", "validate", "cap", "aggregate"]
    capped = compute_round(**_kwargs(spec, store, commits))  # the validator's and the audit's entry
    assert [c.trainer for c in capped.accepted] == TRAINERS[:3]
    assert [(r.trainer, r.reason, r.flagged) for r in capped.rejected] == [
        (t, "claims too many examples", False) for t in TRAINERS[3:]
    ]
    assert capped.aggregate != plain.aggregate
    monkeypatch.undo()
    assert compute_round(**_kwargs(spec, store, commits)).aggregate == plain.aggregate


def test_dp_stages_compose_to_privacy_dp_s_noisy_mean_exactly() -> None:
    spec = _spec(dp_epsilon=8.0, rounds=3)
    store, commits = _round(spec, dp=True, bad=4, seed=3)
    out = compute_round(**_kwargs(spec, store, commits))
    assert [c.trainer for c in out.accepted] == TRAINERS[:4]
    assert [(r.trainer, r.flagged) for r in out.rejected] == [(TRAINERS[4], True)]
    inputs = pipeline.round_inputs(**_kwargs(spec, store, commits))
    fetched = [read_private(inputs, c) for c in commits[:4]]
    assert all(squared_norm(v.tensors) > spec.dp_clip_q**2 for v in fetched)  # clipping matters
    seed = central_seed({v.trainer.lower(): v.extra for v in fetched}, noise_context(1, 1))
    mean = noisy_mean([v.tensors for v in fetched], spec.dp_clip_q, sigma_q(spec), seed)
    expected = apply_delta(GLOBAL, mean)
    assert list(out.model) == list(expected)
    for n in expected:
        assert np.array_equal(out.model[n], expected[n])


def test_a_spent_dp_budget_releases_nothing_and_flags_no_honest_update() -> None:
    spec = _spec(dp_epsilon=8.0, rounds=3)
    store, commits = _round(spec, dp=True, bad=4)
    out = compute_round(**_kwargs(spec, store, commits, releases_before=10**6))
    assert out.accepted == []
    assert [(r.trainer, r.flagged) for r in out.rejected] == [(t, i == 4) for i, t in enumerate(TRAINERS)]
    assert {r.reason for r in out.rejected[:4]} == {BUDGET_SPENT}
    assert all(np.array_equal(out.model[n], GLOBAL[n]) for n in GLOBAL)


def test_a_secure_round_without_its_key_directory_is_refused() -> None:
    spec = _spec(privacy="secagg")
    store, commits = _round(spec)
    with pytest.raises(ValueError, match="key directory and reveals"):
        compute_round(**_kwargs(spec, store, commits))


def _imports(module: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_stages_sit_below_the_pipeline_and_the_pipeline_below_the_validator() -> None:
    roles = Path(pipeline.__file__).parent
    layers = {
        "round_types": {"stages", "dp", "secure", "stats_round", "pipeline", "validator"},
        "stages": {"dp", "secure", "stats_round", "pipeline", "validator"},
        "dp": {"secure", "stats_round", "pipeline", "validator"},
        "secure": {"dp", "stats_round", "pipeline", "validator"},
        "stats_round": {"dp", "secure", "pipeline", "validator"},
        "pipeline": {"validator"},
    }
    for module, above in layers.items():
        imported = _imports(roles / f"{module}.py")
        assert not {f"fedledger.roles.{m}" for m in above} & imported, module
