"""Gas of a finalisation that carries flags for 10 / 50 / 100 trainers.

For each F in (10, 50, 100), a job with F + 10 trainers (committee of 3, quorum 2,
min_commits 10) on the in-process EVM, whose gas matches anvil's transaction by
transaction (tests/integration/test_chain_conformance.py). Every trainer commits; the
quorum then finalises with the F lowest committers:

- flagged (excluded, slashed 10% of stake, counted towards ejection),
- excluded but not flagged (the same list, no penalty) — the baseline in the same run,
- nobody excluded — the plain finalisation.

Prints the finalising `propose`'s gas for each, and the marginal gas per flag.
Block gas limit context: 30,000,000 (Ethereum mainnet), so the figure says how many
flags fit one finalisation.
"""

from __future__ import annotations

from _common import parse_args, staked_job, table, write_result
from eth_utils import keccak

COMMITTEE, QUORUM, HONEST = 3, 2, 10
STAKE = 10**18


def finalise_gas(flags: int, mode: str) -> int:
    """Gas of the quorum-reaching propose with `flags` trainers flagged / excluded / neither."""
    n = flags + HONEST
    d, job, validators, trainers = staked_job(
        committee=COMMITTEE, trainers=n, quorum=QUORUM, min_commits=HONEST, rounds=2
    )
    for i, t in enumerate(trainers):
        d.coordinator.commit(t, job, 1, keccak(f"u{i}".encode()), 100 + i)
    lowest = sorted((t.address for t in trainers), key=lambda a: int(a, 16))[:flags]
    excluded = [] if mode == "none" else lowest
    flagged = lowest if mode == "flagged" else []
    d.coordinator.propose(validators[0], job, 1, keccak(b"agg"), excluded, flagged)
    receipt = d.coordinator.propose(validators[1], job, 1, keccak(b"agg"), excluded, flagged)
    names = [e.name for e in d.coordinator.events_in(receipt)]
    assert "RoundFinalized" in names and names.count("TrainerSlashed") == len(flagged), names
    return receipt.gas_used


def main() -> None:
    args = parse_args(__doc__)
    sizes = (10,) if args.quick else (10, 50, 100)
    rows, out = [], {}
    for f in sizes:
        flagged, excluded, plain = (finalise_gas(f, m) for m in ("flagged", "excluded", "none"))
        per_flag = (flagged - excluded) / f
        out[str(f)] = {"flagged": flagged, "excluded_only": excluded, "none": plain, "per_flag": per_flag}
        rows.append([f, f + HONEST, flagged, excluded, plain, f"{per_flag:,.0f}", f"{flagged / 30e6:.1%}"])
    print(
        table(
            ["flags", "trainers", "finalise gas (flagged)", "excluded, unflagged", "no exclusions",
             "gas per flag", "of a 30M block"],
            rows,
        )
    )
    write_result("flag_gas", args.quick, {"finalisation": out, "committee": COMMITTEE, "quorum": QUORUM})


if __name__ == "__main__":
    main()
