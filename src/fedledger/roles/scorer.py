"""The scorer: each accepted update's contribution to the round, on the job's validation set.

A validator scores the round it has just computed: coalition models are rebuilt from the
committed updates (no retraining) and evaluated on a validation set whose hash binds it
in the spec. Evaluation is floating point, so scores are close, not identical, between
validators; that is why the chain takes a stake-weighted median of them rather than a
quorum on bytes. On chain a score is an integer 0..SCORE_ONE relative to the round's best
contribution (`quantize_scores`), posted in commit order with the proposal.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fedledger.chain.contracts import SCORE_ONE
from fedledger.errors import SpecError
from fedledger.incentives.shapley import Coalition, exact_shapley, gtg_shapley, leave_one_out
from fedledger.incentives.utility import coalition_utility, linear_prefix, linear_utility
from fedledger.roles.model import float_weights
from fedledger.spec import JobSpec
from fedledger.training.consortium import Consortium, build_consortium
from fedledger.training.models import build_model
from fedledger.training.torch_client import evaluate, set_weights


@dataclass(frozen=True)
class RoundScores:
    round: int
    method: str
    trainers: list[str]
    values: list[float]  # in the utility's units (accuracy, or predicted loss decrease)
    evaluations: int  # coalition utilities computed
    seconds: float
    utility: str = "accuracy"


def score_round(
    *,
    round: int,
    method: str,
    trainers: Sequence[str],
    deltas: Sequence[Mapping[str, np.ndarray]],
    weights: Sequence[int],
    global_model: Mapping[str, np.ndarray],
    names: Sequence[str],
    scale_bits: int,
    model: nn.Module,
    x_val: np.ndarray,
    y_val: np.ndarray,
    seed: int = 0,
    utility: str = "linear",
) -> RoundScores:
    """Scores `deltas` (the round's accepted updates, in `trainers` order) with `method`.

    `utility` "accuracy" evaluates every coalition's model; "linear" predicts each
    coalition's validation-loss decrease from one gradient (see incentives/utility.py).
    """
    t0 = time.perf_counter()
    count = [0]

    def accuracy(model_q: Mapping[str, np.ndarray]) -> float:
        set_weights(model, float_weights(list(names), model_q, scale_bits))
        return evaluate(model, x_val, y_val)[1]

    prefix = None
    if utility == "accuracy":
        base = coalition_utility(global_model, deltas, weights, accuracy)
    elif utility == "linear":
        grad = validation_gradient(model, list(names), global_model, scale_bits, x_val, y_val)
        scale = float(1 << scale_bits)
        projections = [sum(float(np.dot(grad[k], d[k].reshape(-1))) for k in grad) / scale for d in deltas]
        base = linear_utility(projections, weights)
        prefix = linear_prefix(projections, weights)
    else:
        raise ValueError(f"unknown scoring utility {utility!r}")

    def u(coalition: Coalition) -> float:
        count[0] += 1
        return base(coalition)

    n = len(deltas)
    if method == "loo":
        values = leave_one_out(n, u)
    elif method == "exact":
        values = exact_shapley(n, u)
    elif method == "gtg":
        est = gtg_shapley(n, u, seed=seed, prefix=prefix)
        values = est.values
        count[0] = est.evaluations
    else:
        raise ValueError(f"unknown scoring method {method!r}")
    return RoundScores(round, method, list(trainers), values, count[0], time.perf_counter() - t0, utility)


def validation_gradient(
    model: nn.Module,
    names: list[str],
    global_model: Mapping[str, np.ndarray],
    scale_bits: int,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> dict[str, np.ndarray]:
    """d(mean validation cross-entropy)/d(weights) at the global model, flat float64 per tensor."""
    set_weights(model, float_weights(names, global_model, scale_bits))
    model.eval()
    model.zero_grad()
    x = torch.from_numpy(np.ascontiguousarray(x_val, dtype=np.float32))  # (N, *input_shape)
    y = torch.from_numpy(np.asarray(y_val, dtype=np.int64))  # (N,)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()  # type: ignore[no-untyped-call]
    params = dict(model.named_parameters())
    out = {}
    for name in names:
        p = params.get(name)
        g = p.grad if p is not None else None
        size = int(np.prod(global_model[name].shape))
        out[name] = np.zeros(size) if g is None else g.detach().numpy().astype(np.float64).reshape(-1)
    return out


def quantize_scores(values: Sequence[float]) -> list[int]:
    """Contributions as the contract's integers: 0..SCORE_ONE relative to the best one.

    Negative and zero contributions (free riders, harmful updates) become 0; the best
    becomes SCORE_ONE; rounding is half up, so the same floats give the same integers
    everywhere. No positive value: all 0.
    """
    best = max((v for v in values if np.isfinite(v)), default=0.0)
    if best <= 0:
        return [0] * len(values)
    out = []
    for v in values:
        if not np.isfinite(v) or v <= 0:
            out.append(0)
            continue
        out.append(min(SCORE_ONE, int(v / best * SCORE_ONE * 2 + 1) // 2))
    return out


def scores_in_commit_order(commits: Sequence[tuple[str, int, int]], accepted: Mapping[str, int]) -> list[int]:
    """One score per committer in the order the contract numbered them (block, log index).

    `commits` are (trainer, block_number, log_index); `accepted` maps the trainers that
    were scored to their quantised score; everyone else (excluded updates) scores 0.
    """
    ordered = sorted(commits, key=lambda c: (c[1], c[2]))
    return [accepted.get(t.lower(), 0) for t, _, _ in ordered]


@dataclass
class PostedScores:
    """What a validator posts for a round: the measured values and their on-chain integers."""

    scores: RoundScores
    posted: list[int]  # one per committer, in commit order


class RoundScorer:
    """A validator's scoring of its computed rounds on the spec's validation set.

    Scores are a pure function of the round's inputs, so one scorer may serve several
    validators of one process (the simulator): it keeps the last round it scored.
    """

    def __init__(
        self,
        *,
        method: str,
        utility: str,
        seed: int,
        names: Sequence[str],
        scale_bits: int,
        model: nn.Module,
        x_val: np.ndarray,
        y_val: np.ndarray,
    ) -> None:
        self.method, self.utility, self.seed = method, utility, seed
        self.names, self.scale_bits, self.model = list(names), scale_bits, model
        self.x_val, self.y_val = x_val, y_val
        self._last: tuple[tuple[int, bytes], PostedScores] | None = None

    @property
    def last(self) -> PostedScores | None:
        """The scores of the last round scored."""
        return self._last[1] if self._last is not None else None

    def score(
        self,
        *,
        round: int,
        aggregate: bytes,
        accepted: Sequence[tuple[str, int, Mapping[str, np.ndarray]]],
        commits: Sequence[tuple[str, int, int]],
        global_model: Mapping[str, np.ndarray],
        labels: Mapping[str, str] | None = None,
    ) -> PostedScores:
        """Scores the accepted (trainer, examples, delta) updates; posts 0 for the rest."""
        key = (round, aggregate)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        ordered = sorted(accepted, key=lambda a: int(a[0], 16))
        labels = labels or {}
        scores = score_round(
            round=round,
            method=self.method,
            trainers=[labels.get(t, t) for t, _, _ in ordered],
            deltas=[d for _, _, d in ordered],
            weights=[n for _, n, _ in ordered],
            global_model=global_model,
            names=self.names,
            scale_bits=self.scale_bits,
            model=self.model,
            x_val=self.x_val,
            y_val=self.y_val,
            seed=self.seed + round,
            utility=self.utility,
        )
        quantized = quantize_scores(scores.values)
        by_trainer = {t.lower(): q for (t, _, _), q in zip(ordered, quantized, strict=True)}
        posted = PostedScores(scores, scores_in_commit_order(commits, by_trainer))
        self._last = (key, posted)
        return posted


def scorer_for(spec: JobSpec, consortium: Consortium | None = None) -> RoundScorer:
    """The spec's scorer on its held-out validation set, which must hash as the spec says.

    Validators, nodes and the auditor build it the same way, so they score alike.
    """
    consortium = consortium or build_consortium(spec)
    if consortium.validation is None:
        raise SpecError("scoring", f"{spec.scoring!r} needs a validation set, and this spec holds none out")
    if spec.validation_dataset and spec.validation_dataset != consortium.validation_hash:
        raise SpecError(
            "validation_dataset",
            f"{spec.validation_dataset} is not the hash of this validation set "
            f"({consortium.validation_hash})",
        )
    ds = consortium.dataset
    return RoundScorer(
        method=spec.scoring,
        utility=spec.scoring_utility,
        seed=spec.seed,
        names=consortium.names,
        scale_bits=spec.scale_bits,
        model=build_model(spec.model, ds.input_shape, ds.num_classes, seed=spec.seed),
        x_val=consortium.validation[0],
        y_val=consortium.validation[1],
    )
