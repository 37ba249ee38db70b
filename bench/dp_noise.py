"""Cost of differential-privacy noise: the discrete Gaussian against numpy's float Gaussian.

Ours (`fedledger.privacy.dp`): `central_noise` — a ChaCha20 stream keyed by the round's
seed, expanded into discrete Gaussian integers (CKS 2020 rejection from a discrete
Laplace, vectorised; near-ties of float log/exp re-decided exactly), bit-identical on
every machine — at σ = 2^20 quantisation steps (z = 1, C = 1 at the default scale) and at
σ = 3 (where rejection batches are least efficient); a secure-mode `noise_share` (σ²/n_min
with n_min = 5); exact L2 clipping of a 1M-parameter update. Baselines in the same run:
numpy's float Gaussian (`Generator.normal`, PCG64: neither cryptographic nor portable bit
for bit) of the same size, and the same rounded to int64; the exact pure-Python CKS
sampler (`sample_exact`) timed on a few thousand draws and extrapolated, which is why the
vectorised one exists. Each figure is the median of the repeats; a repeat also checks the
noise is bit-identical for the same seed.

Workload: 1,000,000 coordinates, 5 repeats. `--quick`: 10,000 coordinates, 2 repeats.
Bar (issue 5 brief): central noise for 1M coordinates well under a second (≤ 1 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
from _common import median, parse_args, table, verdict, write_result

from fedledger.privacy import dp

BAR_S = 1.0
SIGMA_Q = 2.0**20
N_MIN = 5


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return median(times), out


def main() -> None:
    args = parse_args(__doc__)
    size, repeats, exact_draws = (10_000, 2, 500) if args.quick else (1_000_000, 5, 3_000)
    seed = dp.central_seed({f"0x{i:040x}": bytes([i]) * 32 for i in range(10)}, b"bench")
    rng = np.random.default_rng(0)
    delta = {"w": np.asarray(rng.normal(0, 2**18, size=size).round(), dtype=np.int64)}
    clip_q = dp.clip_bound_q(1.0, 20)

    cases: dict[str, Callable[[], Any]] = {
        "numpy float Gaussian (baseline)": lambda: rng.normal(0.0, SIGMA_Q, size),
        "numpy float Gaussian, rounded to int64 (baseline)":
            lambda: np.rint(rng.normal(0.0, SIGMA_Q, size)).astype(np.int64),
        f"central_noise, σ = 2^{int(np.log2(SIGMA_Q))}": lambda: dp.central_noise(seed, size, SIGMA_Q),
        "central_noise, σ = 3": lambda: dp.central_noise(seed, size, 3.0),
        f"noise_share, σ²/{N_MIN}": lambda: dp.noise_share(size, SIGMA_Q, N_MIN),
        "clip_update (exact integer L2)": lambda: dp.clip_update(delta, clip_q),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, fn in cases.items():
        secs, out = timed(fn, repeats)
        results[name] = {"median_s": secs}
        if name.startswith("central_noise"):
            again = fn()
            results[name]["bit_identical"] = bool(np.array_equal(out, again))
            sigma = SIGMA_Q if "2^" in name else 3.0
            results[name]["variance_ratio"] = float(out.astype(np.float64).var() / sigma**2)
    t0 = time.perf_counter()
    dp.sample_exact(Fraction(int(SIGMA_Q)) ** 2, exact_draws)
    per_draw = (time.perf_counter() - t0) / exact_draws
    results["exact CKS sampler, pure Python (extrapolated)"] = {"median_s": per_draw * size}

    base = results["numpy float Gaussian (baseline)"]["median_s"]
    central = results[f"central_noise, σ = 2^{int(np.log2(SIGMA_Q))}"]
    rows = [[name, r["median_s"], r["median_s"] / base,
             r.get("variance_ratio", ""), {True: "yes", False: "NO"}.get(r.get("bit_identical"), "")]
            for name, r in results.items()]
    print(f"{size:,} coordinates, median of {repeats}\n")
    print(table(["what", "seconds", "× numpy float", "var / σ²", "same bytes"], rows))
    passed = central["median_s"] <= BAR_S and all(r.get("bit_identical", True) for r in results.values())
    print(f"\ncentral noise {central['median_s']:.3f} s for {size:,} coordinates "
          f"(bar ≤ {BAR_S:.0f} s at 1M): {verdict(passed)}")
    write_result("dp_noise", args.quick, {
        "coordinates": size, "repeats": repeats, "sigma_q": SIGMA_Q, "n_min": N_MIN,
        "results": results, "ratio_over_numpy": central["median_s"] / base,
        "bar_s": BAR_S, "passed": passed,
    })


if __name__ == "__main__":
    main()
