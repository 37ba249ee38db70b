"""Transactions per second of the embedded (in-process) chain, against anvil over JSON-RPC.

Measures two workloads, each timed from the first to the last receipt (setup
— deploy, mint, approve, create_job, register — is not timed):

- "protocol mix": a job with 20 trainers and a 5-validator committee
  (quorum 4) runs 10 rounds of 20 commits + 4 proposals each (240 tx);
- "ERC-20 transfers": a loop of plain token transfers between 20 accounts.

Baseline, in the same run: the identical workloads sent through `RpcChain` to
a fresh anvil node (what a simulation against a real node would see). The two
sides alternate (ABAB / BABA) over several repetitions; the median is reported.

Bar (DESIGN.md "Performance bars"): embedded chain >= 300 transactions/s, so
chain time never dominates a simulation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from _common import median, parse_args, table, verdict, write_result
from eth_utils import keccak

from fedledger.chain.anvil import AnvilNode
from fedledger.chain.base import Chain, dev_accounts
from fedledger.chain.contracts import Deployment, deploy_contracts
from fedledger.chain.inprocess import InProcessChain
from fedledger.chain.rpc import RpcChain
from fedledger.roles.sponsor import create_job
from fedledger.spec import JobSpec

BAR = 300.0
ACCOUNTS = dev_accounts(21)


def setup(chain: Chain, trainers: int, rounds: int) -> tuple[Deployment, int, JobSpec]:
    spec = JobSpec(trainers=trainers, rounds=rounds, validators=5)
    sponsor, ts = ACCOUNTS[0], ACCOUNTS[1 : trainers + 1]
    d = deploy_contracts(chain, sponsor)
    d.token.mint(sponsor, sponsor.address, spec.reward_per_round * spec.rounds + 10**24)
    for t in ts:
        d.token.mint(sponsor, t.address, spec.stake + 10**24)
        d.token.approve(t, d.coordinator.address, spec.stake)
    job, _ = create_job(deployment=d, sponsor=sponsor, spec=spec, initial_model=_h("m0"),
                        committee=[t.address for t in ts[: spec.committee_size]])
    for t in ts:
        d.coordinator.register(t, job, as_trainer=True)
    return d, job, spec


def _h(label: str) -> bytes:
    return bytes(keccak(text=label))


def protocol_mix(d: Deployment, job: int, spec: JobSpec) -> int:
    ts = ACCOUNTS[1 : spec.trainers + 1]
    n = 0
    for rnd in range(1, spec.rounds + 1):
        for i, t in enumerate(ts):
            d.coordinator.commit(t, job, rnd, _h(f"u{rnd}:{i}"), 100 + i)
            n += 1
        for v in ts[: spec.effective_quorum]:
            d.coordinator.propose(v, job, rnd, _h(f"agg{rnd}"), [])
            n += 1
    return n


def transfers(d: Deployment, count: int) -> int:
    ts = ACCOUNTS[1:21]
    for k in range(count):
        d.token.transfer(ts[k % 20], ts[(k + 7) % 20].address, 1 + k)
    return count


def measure(make_chain: Callable[[], tuple[Chain, Callable[[], None]]], trainers: int,
            rounds: int, n_transfers: int) -> dict[str, float]:
    """tx/s of both workloads on a fresh chain (setup untimed)."""
    chain, close = make_chain()
    try:
        d, job, spec = setup(chain, trainers, rounds)
        t0 = time.perf_counter()
        n = protocol_mix(d, job, spec)
        t1 = time.perf_counter()
        m = transfers(d, n_transfers)
        t2 = time.perf_counter()
    finally:
        close()
    return {"mix_tx": n, "mix_tps": n / (t1 - t0), "transfer_tx": m, "transfer_tps": m / (t2 - t1)}


def in_process() -> tuple[Chain, Callable[[], None]]:
    return InProcessChain(), lambda: None


def anvil() -> tuple[Chain, Callable[[], None]]:
    node = AnvilNode(accounts=30)
    return RpcChain(node.url), node.stop


def main() -> None:
    args = parse_args(__doc__)
    trainers, rounds = (20, 3) if args.quick else (20, 10)
    n_transfers, reps = (100, 2) if args.quick else (300, 4)
    sides = {"in-process": in_process, "anvil (RpcChain)": anvil}
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in sides}
    for rep in range(reps):
        order = list(sides) if rep % 2 == 0 else list(reversed(sides))
        for name in order:
            s = measure(sides[name], trainers, rounds, n_transfers)
            samples[name].append(s)
            print(f"rep {rep + 1} {name:17s} mix {s['mix_tps']:7.1f} tx/s"
                  f"   transfers {s['transfer_tps']:7.1f} tx/s")
    med = {name: {k: median([s[k] for s in v]) for k in ("mix_tps", "transfer_tps")}
           for name, v in samples.items()}
    ip, an = med["in-process"], med["anvil (RpcChain)"]
    mix_ok, tr_ok = ip["mix_tps"] >= BAR, ip["transfer_tps"] >= BAR
    print(f"\nmedian of {reps} alternating repetitions; mix = {trainers} trainers x {rounds} rounds"
          f" of commit + propose ({samples['in-process'][0]['mix_tx']} tx);"
          f" transfers = {n_transfers} ERC-20 transfers")
    print(table(
        ["workload", "in-process tx/s", "anvil tx/s (baseline)", "ratio", "bar", "verdict"],
        [["protocol mix", ip["mix_tps"], an["mix_tps"], f"{ip['mix_tps'] / an['mix_tps']:.2f}x",
          f">= {BAR:.0f}", verdict(mix_ok)],
         ["ERC-20 transfers", ip["transfer_tps"], an["transfer_tps"],
          f"{ip['transfer_tps'] / an['transfer_tps']:.2f}x", f">= {BAR:.0f}", verdict(tr_ok)]]))
    passed = mix_ok and tr_ok
    print(f"\nOVERALL: in-process chain >= {BAR:.0f} tx/s on both workloads -> {verdict(passed)}")
    write_result("chain_tps", args.quick, {
        "bar": {"min_tps": BAR}, "trainers": trainers, "rounds": rounds,
        "transfers": n_transfers, "repetitions": reps, "median": med, "samples": samples,
        "passed": passed,
    })


if __name__ == "__main__":
    main()
