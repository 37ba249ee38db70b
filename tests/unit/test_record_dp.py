"""Record-level DP: the spec's parameters, DP-SGD through Opacus, each organisation's budget."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from fedledger.errors import SpecError
from fedledger.privacy.accountant import epsilon
from fedledger.roles.record_dp import RecordBudget, micro_epsilon_after
from fedledger.spec import JobSpec
from fedledger.training.dpsgd import DpSgd, check_private_model, dp_train
from fedledger.training.models import build_model
from fedledger.training.torch_client import get_weights

#: an explicit noise multiplier keeps these specs off the accountant's calibration search
RECORD = {"dp_level": "record", "dp_epsilon": 8.0, "dp_noise_multiplier": 1.0}


# -- the spec -----------------------------------------------------------------------------------


def test_record_level_needs_a_budget_and_fedledgers_own_training() -> None:
    with pytest.raises(SpecError, match="dp_level=record needs a budget: set dp_epsilon > 0"):
        JobSpec.from_dict({"dp_level": "record"})
    with pytest.raises(SpecError, match="runs DP-SGD in fedledger's own training loop"):
        JobSpec.from_dict({**RECORD, "client": "my_app.client:client_fn"})


def test_record_level_combines_with_robust_rules_secagg_and_scoring() -> None:
    for extra in (
        {"aggregation": "median"},
        {"privacy": "secagg"},
        {"scoring": "loo"},
        {"aggregation": "krum"},
    ):
        spec = JobSpec.from_dict({**RECORD, **extra})
        assert spec.record_dp and not spec.dp  # nothing is noised centrally
    # organisation level still refuses them: its noise is on the FedAvg mean
    with pytest.raises(SpecError, match="does not combine with median"):
        JobSpec.from_dict({"dp_epsilon": 8.0, "aggregation": "median"})


def test_steps_per_round_depend_on_the_spec_alone() -> None:
    spec = JobSpec.from_dict({**RECORD, "local_epochs": 2, "dp_sample_rate": 0.01})
    assert spec.dp_steps_per_round == 200  # two passes in expectation, whatever an organisation's N
    assert JobSpec.from_dict({**RECORD, "dp_sample_rate": 0.03}).dp_steps_per_round == 67  # ⌈2 / 0.03⌉
    assert JobSpec.from_dict({**RECORD, "dp_local_steps": 25}).dp_steps_per_round == 25
    assert JobSpec.from_dict({"dp_epsilon": 8.0}).dp_steps_per_round == 1  # one aggregate a round


def test_noise_is_calibrated_over_every_step_of_every_round() -> None:
    spec = JobSpec.from_dict({"dp_level": "record", "dp_epsilon": 3.0, "rounds": 5, "dp_local_steps": 50})
    z, steps = spec.noise_multiplier, spec.rounds * spec.dp_steps_per_round
    assert epsilon(z, spec.dp_sample_rate, steps, spec.dp_delta) <= 3.0
    assert epsilon(z * 0.99, spec.dp_sample_rate, steps, spec.dp_delta) > 3.0  # and no more noise than that
    assert spec.dp_rounds_affordable == 5


def test_a_budget_that_affords_no_round_is_refused() -> None:
    with pytest.raises(
        SpecError, match=r"does not afford one round of 200 DP-SGD steps at noise multiplier 0\.3"
    ):
        JobSpec.from_dict({**RECORD, "dp_epsilon": 0.5, "dp_noise_multiplier": 0.3})


def test_levels_hash_differently() -> None:
    a = JobSpec.from_dict({"dp_epsilon": 8.0})
    b = JobSpec.from_dict({"dp_epsilon": 8.0, "dp_level": "record"})
    assert a.spec_hash() != b.spec_hash()


def test_our_rdp_accounting_agrees_with_opacus() -> None:
    from opacus.accountants import RDPAccountant

    for z, q, steps in [(0.75, 0.01, 4000), (2.68, 0.01, 4000), (1.0, 0.05, 500)]:
        theirs = RDPAccountant()
        theirs.history = [(z, q, steps)]
        ours, opacus = epsilon(z, q, steps, 1e-5), theirs.get_epsilon(1e-5)
        # the same RDP bound over different grids of orders: ours is never looser by more than 0.1%
        assert ours == pytest.approx(opacus, rel=1e-3)
        assert ours >= opacus * (1 - 1e-12)


# -- DP-SGD -------------------------------------------------------------------------------------


def _data(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, n)


def _model() -> nn.Module:
    return build_model("mlp", (1, 8, 8), 10, seed=0)


def _delta(before: list[np.ndarray], after: list[np.ndarray]) -> float:
    return math.sqrt(
        sum(float(((a - b).astype(np.float64) ** 2).sum()) for a, b in zip(after, before, strict=True))
    )


def test_dp_sgd_is_reproducible_from_its_seed() -> None:
    x, y = _data()
    dp = DpSgd(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.1, steps=5)
    runs = []
    for seed in (7, 7, 8):
        m = _model()
        dp_train(m, x, y, dp=dp, lr=0.1, momentum=0.0, seed=seed)
        runs.append(get_weights(m))
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], runs[2], strict=True))


def test_without_a_seed_batches_and_noise_come_from_the_operating_system() -> None:
    """A node's DP-SGD: the spec's seed is public, so noise derived from it could be subtracted."""
    x, y = _data()
    dp = DpSgd(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.1, steps=2)
    runs = []
    for _ in range(2):
        m = _model()
        dp_train(m, x, y, dp=dp, lr=0.1, momentum=0.0, seed=None)
        runs.append(get_weights(m))
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))


def test_a_clients_noise_is_seeded_only_when_a_simulation_asks() -> None:
    from fedledger.training.torch_client import TorchClient

    x, y = _data()
    client = TorchClient(
        _model(),
        x,
        y,
        x,
        y,
        epochs=1,
        batch_size=32,
        lr=0.1,
        momentum=0.0,
        seed=3,
        dp=DpSgd(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.1, steps=2),
    )
    start = client.get_parameters({})
    fits = [client.fit(start, {"round": 1})[0] for _ in range(2)]
    assert not all(np.array_equal(a, b) for a, b in zip(*fits, strict=True))
    client.seeded_noise = True
    fits = [client.fit(start, {"round": 1})[0] for _ in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(*fits, strict=True))


def test_each_records_gradient_is_clipped() -> None:
    """Without noise and with every record sampled, one step moves the weights by at most lr · C."""
    x, y = _data()
    m = _model()
    before = get_weights(m)
    clip = 0.01
    dp_train(m, x, y, dp=DpSgd(0.0, clip, 1.0, 1), lr=1.0, momentum=0.0, seed=0)
    moved = _delta(before, get_weights(m))
    assert 0 < moved <= clip * (1 + 1e-5)
    plain = _model()
    loss = nn.functional.cross_entropy(plain(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    assert math.sqrt(sum(float((p.grad**2).sum()) for p in plain.parameters())) > 10 * clip


def test_noise_has_the_calibrated_scale() -> None:
    """With a tiny clip the step is the noise: N(0, (zC)²) per coordinate over qN, times lr."""
    x, y = _data(400)
    m = _model()
    before = get_weights(m)
    z, clip, q = 2.0, 1e-6, 0.5
    dp_train(m, x, y, dp=DpSgd(z, clip, q, 1), lr=1.0, momentum=0.0, seed=0)
    d = sum(w.size for w in before)
    expected = z * clip * math.sqrt(d) / round(q * len(x))
    assert _delta(before, get_weights(m)) == pytest.approx(expected, rel=0.05)


def test_an_empty_poisson_batch_is_a_noise_only_step() -> None:
    x, y = _data(20)
    m = _model()
    before = get_weights(m)
    loss = dp_train(m, x, y, dp=DpSgd(1.0, 1.0, 1e-9, 3), lr=0.1, momentum=0.0, seed=0)
    assert loss == 0.0  # no record was sampled
    assert _delta(before, get_weights(m)) > 0  # yet each step added noise


def test_the_model_is_the_clients_again_after_training() -> None:
    x, y = _data()
    m = _model()
    names = list(m.state_dict())
    dp_train(m, x, y, dp=DpSgd(1.0, 1.0, 0.1, 2), lr=0.1, momentum=0.0, seed=0)
    assert list(m.state_dict()) == names  # no "_module." prefix: weights keep their names
    assert not any(hasattr(p, "grad_sample") for p in m.parameters())


def test_a_model_without_per_sample_gradients_is_refused() -> None:
    bn = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 10))
    with pytest.raises(
        SpecError, match="dp_level=record needs per-sample gradients, which this model cannot give"
    ):
        check_private_model(bn)


# -- each organisation's budget -------------------------------------------------------------------


def _budget(spec: JobSpec, committed_rounds: int) -> RecordBudget:
    me = "0x" + "ab" * 20
    events = [
        SimpleNamespace(name="UpdateCommitted", args={"job_id": 1, "trainer": me, "round": r + 1})
        for r in range(committed_rounds)
    ] + [SimpleNamespace(name="UpdateCommitted", args={"job_id": 1, "trainer": "0x" + "cd" * 20, "round": 1})]
    coordinator = SimpleNamespace(events=lambda: events)
    return RecordBudget(
        name="org-01",
        spec=spec,
        coordinator=coordinator,
        job_id=1,
        account=SimpleNamespace(address=me),  # type: ignore[arg-type]
    )


def test_a_trainer_counts_its_own_commits_and_stops_at_its_budget(caplog: pytest.LogCaptureFixture) -> None:
    spec = JobSpec.from_dict({**RECORD, "dp_epsilon": 2.0, "dp_local_steps": 100})
    affordable = spec.dp_rounds_affordable
    assert 1 <= affordable < spec.rounds
    budget = _budget(spec, committed_rounds=affordable - 1)  # a restarted node: the chain's count
    assert budget.released == affordable - 1
    assert budget.epsilon == micro_epsilon_after(spec, affordable - 1) / 1e6
    assert budget.allows(affordable)
    budget.released_one(affordable)
    budget.released_one(affordable)  # a node retrying the same round's upload: counted once
    assert budget.released == affordable
    with caplog.at_level(logging.WARNING, logger="fedledger.trainer"):
        assert not budget.allows(affordable + 1)
        assert not budget.allows(affordable + 2)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1  # said once
    assert lines[0].startswith(
        f"org-01: round {affordable + 1}: not training: one more round would spend ε = "
    )
    assert lines[0].endswith(
        f"of its records' budget 2 (ε = {budget.epsilon:.4f} spent over {affordable} rounds); "
        "it commits no more updates in job 1"
    )


def _opacus_reference(
    model: nn.Module, x: np.ndarray, y: np.ndarray, dp: DpSgd, momentum: float, seed: int
) -> None:
    """DP-SGD exactly as Opacus runs it (GradSampleModule + DPOptimizer), batches and noise drawn
    in the same order from the same seed as `dp_train`."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    wrapped = GradSampleModule(model, loss_reduction="sum")
    optimizer = DPOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=momentum),
        noise_multiplier=dp.noise_multiplier,
        max_grad_norm=dp.max_grad_norm,
        expected_batch_size=max(1, round(dp.sample_rate * len(xt))),
        loss_reduction="mean",
        generator=generator,
    )
    for _ in range(dp.steps):
        idx = torch.from_numpy(np.flatnonzero(rng.random(len(xt)) < dp.sample_rate))
        assert len(idx)  # an empty batch is its own test
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(wrapped(xt[idx]), yt[idx], reduction="sum").backward()
        optimizer.step()
    wrapped._close()


def _layernorm_net(shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    width = int(np.prod(shape))
    return nn.Sequential(
        nn.Flatten(), nn.Linear(width, 16), nn.LayerNorm(16), nn.ReLU(), nn.Linear(16, num_classes)
    )


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("model", ["mlp", "cnn", "layernorm"])
@pytest.mark.parametrize("path", ["ghost", "torch.func", "hooks"])
def test_dp_sgd_takes_opacus_steps(model: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clipping, noise, scaling and momentum as Opacus's DPOptimizer: the same weights after 4 steps,
    whichever way the clipped sum is computed (a LayerNorm is not ghost-clipped: it falls back)."""
    import fedledger.training.dpsgd as dpsgd

    if path != "ghost":
        monkeypatch.setattr(dpsgd, "ghost_clipper", lambda *a: None)
    if path == "hooks":
        monkeypatch.setattr(dpsgd, "_functional_grads", lambda *a: None)
    shape = (1, 8, 8) if model != "cnn" else (1, 12, 12)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, *shape)).astype(np.float32)
    y = rng.integers(0, 10, 120)
    dp = DpSgd(noise_multiplier=0.8, max_grad_norm=0.5, sample_rate=0.2, steps=4)
    build = _layernorm_net if model == "layernorm" else lambda s, c, seed: build_model(model, s, c, seed=seed)
    ours, theirs = build(shape, 10, seed=0), build(shape, 10, seed=0)
    dp_train(ours, x, y, dp=dp, lr=0.1, momentum=0.9, seed=5)
    _opacus_reference(theirs, x, y, dp, momentum=0.9, seed=5)
    for a, b in zip(get_weights(ours), get_weights(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=5e-6)
    assert not any(hasattr(p, "grad_sample") for p in ours.parameters())


def test_a_model_with_dropout_draws_a_mask_per_record() -> None:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
    x, y = _data()
    before = get_weights(m)
    loss = dp_train(m, x, y, dp=DpSgd(0.5, 1.0, 0.2, 3), lr=0.1, momentum=0.0, seed=0)
    assert math.isfinite(loss) and _delta(before, get_weights(m)) > 0


def test_ghost_clipping_covers_the_built_in_models_and_refuses_other_layers() -> None:
    from fedledger.training.ghost import ghost_clipper

    for m in (build_model("cnn", (1, 12, 12), 10, seed=0), build_model("mlp", (1, 8, 8), 10, seed=0)):
        clipper = ghost_clipper(m, [k for k, _ in m.named_parameters()])
        assert clipper is not None
        clipper.close()
    other = _layernorm_net((1, 8, 8), 10, seed=0)
    assert ghost_clipper(other, [k for k, _ in other.named_parameters()]) is None
    grouped = nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    assert ghost_clipper(grouped, [k for k, _ in grouped.named_parameters()]) is None


class _Shared(nn.Module):
    """One Linear layer called twice in a forward pass: its weights are shared between the calls."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inner = nn.Linear(64, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inner(x.flatten(1)))
        return self.head(torch.relu(self.inner(h)))  # (B, 10)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_a_layer_called_twice_is_clipped_over_both_calls() -> None:
    """Ghost clipping sees one call per layer; shared weights go to torch.func, still Opacus's steps."""
    x, y = _data(120)
    dp = DpSgd(noise_multiplier=0.8, max_grad_norm=0.5, sample_rate=0.2, steps=4)
    ours, theirs = _Shared(), _Shared()
    dp_train(ours, x, y, dp=dp, lr=0.1, momentum=0.9, seed=5)
    _opacus_reference(theirs, x, y, dp, momentum=0.9, seed=5)
    for a, b in zip(get_weights(ours), get_weights(theirs), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=5e-6)


class _InPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(nn.functional.relu(self.a(x.flatten(1)), inplace=True))


class _WeightReused(nn.Module):
    """`a.weight` also used outside `a`: the one-layer algebra would see part of its gradient."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.a(x.flatten(1)))
        return self.b(h + h @ self.a.weight)


class _FrozenWeight(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(64, 32), nn.Linear(32, 10)
        self.a.weight.requires_grad_(False)  # only its bias trains

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x.flatten(1))))


@pytest.mark.parametrize("make", [_InPlace, _WeightReused, _FrozenWeight])
def test_models_ghost_clipping_cannot_take_train_like_torch_func(
    make: type[nn.Module], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An in-place op on a layer's output, a weight used outside its layer, a frozen weight with a
    trained bias: ghost clipping is not used, and the steps are torch.func's exactly."""
    import fedledger.training.dpsgd as dpsgd

    x, y = _data(120)
    dp = DpSgd(noise_multiplier=0.5, max_grad_norm=0.5, sample_rate=0.2, steps=3)
    ours = make()
    dp_train(ours, x, y, dp=dp, lr=0.1, momentum=0.9, seed=2)
    monkeypatch.setattr(dpsgd, "ghost_clipper", lambda *a: None)
    reference = make()
    dp_train(reference, x, y, dp=dp, lr=0.1, momentum=0.9, seed=2)
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)
