"""Settlement gas of a scored round for 10 / 50 / 100 trainers, against an unscored one.

For each N in (10, 50, 100): a job of N trainers, a committee of 5 with quorum 3, on the
in-process EVM (whose gas matches anvil's transaction by transaction, see
tests/integration/test_chain_conformance.py). Every trainer commits; three validators
propose the same aggregate, each posting one score per committer (different scores, so
the medians do real work); the third propose finalises and settles: stake-weighted
median per trainer, consensus words stored, validator fees credited. Then every trainer
commits round 2, which settles its round-1 reward lazily from the consensus word.

The same job without scores, in the same run, is the baseline. Printed: gas of a
non-finalising propose, of the finalising propose, of a steady commit and of the
phase-closing commit, for both. The last column relates the finalisation to a 30M block.
This measurement decides between medians on chain and a reward Merkle root
(docs/design.md, "Score consensus").
"""

from __future__ import annotations

import random

from _common import parse_args, staked_job, table, write_result
from eth_utils import keccak

from fedledger.chain.contracts import SCORE_ONE

COMMITTEE, QUORUM = 5, 3
STAKE = 10**18


def settlement_gas(n: int, scored: bool) -> dict[str, int]:
    d, job, validators, trainers = staked_job(
        committee=COMMITTEE,
        trainers=n,
        quorum=QUORUM,
        min_commits=n,
        rounds=3,
        scored=scored,
        validator_fee_bps=1_000 if scored else 0,
        score_tolerance=500,
    )
    rng = random.Random(n)
    out: dict[str, int] = {}
    for rnd in (1, 2):
        commit_gas = [
            d.coordinator.commit(t, job, rnd, keccak(f"u{rnd}:{i}".encode()), 100 + i).gas_used
            for i, t in enumerate(trainers)
        ]
        base = [rng.randrange(SCORE_ONE + 1) for _ in trainers]
        proposes = []
        for v in validators[:QUORUM]:
            scores = [min(SCORE_ONE, max(0, s + rng.randrange(-300, 301))) for s in base] if scored else []
            proposes.append(d.coordinator.propose(v, job, rnd, keccak(f"agg{rnd}".encode()), [], [], scores))
        assert "RoundFinalized" in [e.name for e in d.coordinator.events_in(proposes[-1])]
        if rnd == 2:  # round 2's commits settled round 1: the steady state
            out = {
                "commit": commit_gas[0],
                "commit_closing": commit_gas[-1],
                "propose": proposes[0].gas_used,
                "finalise": proposes[-1].gas_used,
            }
    return out


def main() -> None:
    args = parse_args(__doc__)
    sizes = (10,) if args.quick else (10, 50, 100)
    rows, result = [], {}
    for n in sizes:
        s, p = settlement_gas(n, True), settlement_gas(n, False)
        result[str(n)] = {"scored": s, "unscored": p}
        rows.append(
            [n, s["propose"], p["propose"], s["finalise"], p["finalise"], s["commit"], s["commit_closing"],
             p["commit"], f"{s['finalise'] / 30e6:.2%}"]
        )
    print(
        table(
            ["trainers", "propose (scored)", "propose (plain)", "finalise (scored)", "finalise (plain)",
             "commit (scored)", "closing commit (scored)", "commit (plain)", "finalise of 30M block"],
            rows,
        )
    )
    write_result("settlement_gas", args.quick, {"sizes": result, "committee": COMMITTEE, "quorum": QUORUM})


if __name__ == "__main__":
    main()
