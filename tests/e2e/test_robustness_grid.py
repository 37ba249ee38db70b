"""A small robustness grid through the whole protocol, asserting the issue's bars on it.

Clean FedAvg and trimmed mean, then label flipping, sign flipping, Gaussian noise and
backdoor scaling at 20% malicious, each a full simulation on MNIST (Dirichlet 0.5).
The full grid (seven rules, six attacks, 20% and 40%) is `bench/robustness.py`.
"""

from __future__ import annotations

from fedledger.sim.robustness import BARRED_ATTACKS, check_bars, grid_cells, run_grid


def test_small_grid_meets_the_bars() -> None:
    results = run_grid(grid_cells(("fedavg", "trimmed_mean"), BARRED_ATTACKS, (0.2,)), workers=1)
    checks = check_bars(results)
    assert len(checks) == 2 + len(BARRED_ATTACKS)
    failed = [f"{name}: {detail}" for name, ok, detail in checks if not ok]
    assert not failed, failed
    by = {(r.attack, r.rule): r for r in results}
    # the attacks are real: undefended FedAvg is hurt by each
    clean = by[("none", "fedavg")].accuracy
    for attack in ("label-flip", "sign-flip"):
        assert by[(attack, "fedavg")].accuracy < clean - 0.1, attack
    assert by[("backdoor", "fedavg")].backdoor_success > 0.5
    # and the chain caught the attackers the robust rule flags, never an honest trainer
    for attack in ("sign-flip", "gaussian", "backdoor"):
        r = by[(attack, "trimmed_mean")]
        assert r.malicious_slashed == r.malicious == 2, attack
    assert all(r.honest_flagged == 0 for r in results)
