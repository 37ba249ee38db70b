"""Gas of one fraud-proof challenge (contracts/disputes.vy) for 10, 50 and 100 trainers, per rule.

Measured as real transactions on anvil (hardfork osaka, so EIP-7623's calldata floor prices
every transaction: 10 gas a token, a zero byte 1 token, any other byte 4), with EIP-7825's cap
of 16,777,216 gas per transaction enforced by the node, and each compared with that cap. The
model has 54,000 parameters (a 432 kB blob, 106 chunks of 4 KiB, 7 sibling hashes a proof, like
the MNIST model). Values are int64 uniform in ±2**61, so nearly every calldata byte is nonzero:
the worst case; the FedAvg rows are repeated with ±2**16 values, a quantised delta's typical size.

A challenge names one coordinate and sends, for the previous model, the proposed aggregate and
each of the n updates, the 4 KiB chunk holding it with its Merkle proof. When that does not fit
one transaction the challenge is split: `open_challenge` (two chunks), `add_updates` with at
most STEP updates each, `close_challenge`; only the hash of the running tally is stored between
them. The baseline beside each figure is the same challenge's calldata floor, the least any
transaction carrying those bytes can cost, so the rest is the contract's own work.
"""

from __future__ import annotations

import math
import random
import subprocess
import time
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np
import requests
from _common import parse_args, table, verdict, write_result
from web3 import Web3

from fedledger.aggregation.chunk import ChunkRule, apply_rule
from fedledger.aggregation.chunk_proof import Entry, first_piece, make_claim, piece, updates_hash, value_at
from fedledger.aggregation.chunk_witness import witnesses
from fedledger.aggregation.stats import squared_norm
from fedledger.chain.anvil import find_anvil, free_port
from fedledger.chain.artifacts import compile_contract
from fedledger.codec.blob import data_offset, encode_tensors
from fedledger.codec.commitment import num_chunks

CAP = 16_777_216
STEP = 50
MAX_INPUTS = 64  # disputes.vy's bound on the updates one call takes
RULES = [
    ChunkRule(name="fedavg"),
    ChunkRule(name="clipped_fedavg", clip_norm_q=1 << 24),
    ChunkRule(name="median"),
    ChunkRule(name="trimmed_mean", trim_fraction=Fraction(1, 5)),
]


def floor_gas(data: bytes) -> int:
    """EIP-7623's floor for a transaction carrying `data`: 21,000 + 10 gas per token."""
    zeros = data.count(0)
    return 21_000 + 10 * (zeros + 4 * (len(data) - zeros))


class Anvil:
    """anvil on loopback, osaka rules with EIP-7825's cap enforced: a transaction over it is refused."""

    def __init__(self) -> None:
        binary = find_anvil()
        if binary is None:
            raise SystemExit("anvil is not installed: run `npm ci` in the repository root")
        port = free_port()
        args = [
            str(binary),
            "--port",
            str(port),
            "--hardfork",
            "osaka",
            "--enable-tx-gas-limit",
            "--silent",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
        for _ in range(500):
            try:
                requests.post(
                    f"http://127.0.0.1:{port}", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}
                )
                break
            except requests.exceptions.RequestException:
                time.sleep(0.02)
        self.sender = self.w3.eth.accounts[0]

    def deploy(self) -> Any:
        art = compile_contract("disputes")
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        receipt = self.w3.eth.wait_for_transaction_receipt(
            factory.constructor().transact({"from": self.sender})
        )
        return self.w3.eth.contract(address=receipt.contractAddress, abi=art.abi)

    def send(self, fn: Any) -> tuple[Any, int, int]:
        """(return value, gas used, calldata floor) of `fn` sent as a transaction."""
        result = fn.call({"from": self.sender})
        tx = fn.build_transaction({"from": self.sender, "gas": CAP})
        receipt = self.w3.eth.wait_for_transaction_receipt(self.w3.eth.send_transaction(tx))
        assert receipt.status == 1, receipt
        return result, receipt.gasUsed, floor_gas(bytes(Web3.to_bytes(hexstr=tx["data"])))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def build_round(
    rule: ChunkRule, previous: dict[str, np.ndarray], deltas: list[dict[str, np.ndarray]], weights: list[int]
) -> dict[str, Any]:
    blobs = [encode_tensors(d, {"trainer": f"0x{i:040x}"}) for i, d in enumerate(deltas)]
    norms = [squared_norm(d) for d in deltas] if rule.name == "clipped_fedavg" else [0] * len(deltas)
    entries = [Entry.of(b, w, s) for b, w, s in zip(blobs, weights, norms, strict=True)]
    model = apply_rule(rule, previous, deltas, weights)
    prev_blob = encode_tensors(previous, {"version": "1"})
    agg_blob = encode_tensors(model, {"version": "2"})
    c = model["w"].size * 2 // 9  # any coordinate: the gas hardly depends on which
    at = data_offset(agg_blob[:8]) + 8 * c
    lie = (value_at(agg_blob, c) + 1).to_bytes(8, "little", signed=True)  # one rounding step off
    agg_blob = agg_blob[:at] + lie + agg_blob[at + 8 :]
    claim = make_claim(
        rule,
        num_params=sum(v.size for v in previous.values()),
        previous=prev_blob,
        aggregate=agg_blob,
        entries=entries,
    )
    low, high = witnesses(rule, [value_at(b, c) for b in blobs])
    inputs = [(e.as_tuple(), piece(b, c)) for e, b in zip(entries, blobs, strict=True)]
    return {
        "claim": claim.as_tuple(),
        "c": c,
        "previous": piece(prev_blob, c),
        "aggregate": piece(agg_blob, c),
        "low": low,
        "high": high,
        "inputs": inputs,
        # the same claim with update 0's data offset misstated, and what refutes it
        "false_offset": replace(
            claim,
            updates_hash=updates_hash([replace(entries[0], offset=entries[0].offset + 8), *entries[1:]]),
        ).as_tuple(),
        "entries": [
            replace(entries[0], offset=entries[0].offset + 8).as_tuple(),
            *[e.as_tuple() for e in entries[1:]],
        ],
        "chunks": num_chunks(len(blobs[0])),
        "first": first_piece(blobs[0]),
    }


def challenge_gas(node: Anvil, r: dict[str, Any]) -> dict[str, Any]:
    """Gas of the challenge in one transaction, and split into steps of at most STEP updates."""
    contract = node.deploy()
    claim_id, _, _ = node.send(contract.functions.propose(r["claim"]))
    opening = (r["c"], r["previous"], r["aggregate"], r["low"], r["high"])
    whole = contract.functions.challenge(claim_id, r["claim"], *opening, r["inputs"])
    single: int | None = None
    single_floor = floor_gas(Web3.to_bytes(hexstr=whole._encode_transaction_data()))
    if len(r["inputs"]) <= MAX_INPUTS:  # more is refused by the ABI bound; its floor alone says why
        _, single, _ = node.send(whole)
        assert contract.functions.struck(claim_id).call()
    claim_id, _, _ = node.send(contract.functions.propose(r["claim"]))
    (challenge_id, tally), opened, _ = node.send(
        contract.functions.open_challenge(claim_id, r["claim"], *opening)
    )
    steps = [opened]
    for lo in range(0, len(r["inputs"]), STEP):
        tally, gas, _ = node.send(
            contract.functions.add_updates(challenge_id, tally, r["inputs"][lo : lo + STEP])
        )
        steps.append(gas)
    _, closed, _ = node.send(contract.functions.close_challenge(challenge_id, tally, r["claim"]))
    steps.append(closed)
    assert contract.functions.struck(claim_id).call()
    claim_id, proposed, _ = node.send(contract.functions.propose(r["false_offset"]))
    _, refuted, _ = node.send(
        contract.functions.prove_wrong_offset(
            claim_id, r["false_offset"], r["entries"], 0, r["chunks"], r["first"]
        )
    )
    assert contract.functions.struck(claim_id).call()
    return {
        "single": single,
        "single_floor": single_floor,
        "steps": steps,
        "propose": proposed,
        "offset": refuted,
    }


def main() -> None:
    args = parse_args(__doc__)
    sizes = (10,) if args.quick else (10, 50, 100)
    num_params = 6_000 if args.quick else 54_000
    rng = np.random.default_rng(13)
    node = Anvil()
    rows, out = [], {}
    try:
        for bound, rules in [(2**61, RULES), (2**16, RULES[:1])]:
            for n in sizes:
                previous = {"w": rng.integers(-bound, bound, size=num_params, dtype=np.int64)}
                deltas = [
                    {"w": rng.integers(-bound, bound, size=num_params, dtype=np.int64)} for _ in range(n)
                ]
                weights = [random.Random(i).randrange(1, 5000) for i in range(n)]
                for rule in rules:
                    g = challenge_gas(node, build_round(rule, previous, deltas, weights))
                    worst = max(g["steps"])
                    label = f"{rule.name} ±2^{int(math.log2(bound))}"
                    out[f"{label} n={n}"] = {**g, "cap": CAP}
                    one = g["single"] if g["single"] is not None else g["single_floor"]
                    single = g["single"] if g["single"] is not None else "—"
                    rows.append(
                        [
                            label,
                            n,
                            single,
                            g["single_floor"],
                            f"{one / CAP:.0%}",
                            "yes" if one <= CAP else "no",
                            len(g["steps"]),
                            sum(g["steps"]),
                            worst,
                            f"{worst / CAP:.0%}",
                            g["propose"],
                            g["offset"],
                        ]
                    )
    finally:
        node.stop()
    print(f"Fraud-proof challenge gas ({num_params:,} parameters, 4 KiB chunks, EIP-7825 cap {CAP:,})")
    print(
        table(
            [
                "rule, values",
                "trainers",
                "one tx gas",
                "its calldata floor",
                "of cap",
                "fits",
                f"split: txs (≤{STEP}/step)",
                "split: total gas",
                "split: largest tx",
                "of cap",
                "propose gas",
                "refute an offset",
            ],
            rows,
        )
    )
    print("(—: more updates than one call takes (64), so only its calldata floor is shown: a lower bound.")
    print(" Where one-tx gas equals its floor, EIP-7623's floor covers all of the contract's own work.)")
    largest = max(max(g["steps"]) for g in out.values())
    print(
        f"every step of every split challenge under the cap (largest {largest:,}): {verdict(largest <= CAP)}"
    )
    write_result("challenge_gas", args.quick, {"challenges": out, "num_params": num_params, "step": STEP})


if __name__ == "__main__":
    main()
