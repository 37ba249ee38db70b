"""Secure aggregation cost: client masking, server unmasking, upload size; Flower's SecAgg+ beside it.

Ours (`fedledger.privacy.secagg`): every trainer masks its weighted int64 delta in Z_2^64
with ChaCha20 masks (self-mask + one pairwise mask per neighbour) and deals t-of-k Shamir
shares of its seeds, sealed per neighbour with ChaCha20-Poly1305; every committer reveals;
the server (a validator) sums the committers' masked vectors, rebuilds the seeds it needs
from verified shares and subtracts their masks. The unmasked sum is checked against the
plain integer sum on every run.

Flower's (flwr 1.42, `flwr.common.secure_aggregation` and the same calls its
`secaggplus_mod` / `SecAggPlusWorkflow` make, with the workflow's default quantisation
and modulus 2^32): per client two SECP384R1 key pairs, Shamir shares of the mask seed and
of the PEM-encoded mask key (PyCryptodome, 16-byte chunks), Fernet-encrypted per neighbour,
then quantise, add the self-mask and k pairwise masks (MT19937 PRG); the server sums the
masked vectors and, per committer, combines the seed shares and subtracts its mask, per
dropped client combines its key shares and subtracts one pairwise mask per neighbour.
Flower's masked vectors on the server side are uniform random integers of the right range
(what masked vectors look like), since only the arithmetic is timed.

Both use the same graph degree k (ours: the automatic 22 for 100 trainers; Flower: k + 1
shares including the client's own) and threshold t. Client time is one client's whole
work (key agreement, masking and dealing: median over clients); server time is the whole
server job (sum + recover + unmask).

Workload: 100 trainers × 1,000,000 parameters; dropouts 0% and 10% (trainers that never
commit). `--quick`: 10 trainers × 10,000 parameters.

Bars (DESIGN.md "Performance bars", issue 5): client masking ≤ 2 s; server unmasking ≤ 2 s
with no dropouts and ≤ 15 s with 10% dropouts; upload ≤ 1.1× the plaintext quantised update.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from typing import Any

import numpy as np
from _common import median, parse_args, table, verdict, write_result

from fedledger.codec.blob import encode_tensors
from fedledger.privacy import keys
from fedledger.privacy.masking import Prg, masked_sum, weighted
from fedledger.privacy.recovery import recover, unmask
from fedledger.privacy.secagg import RoundSetup, SecAggTrainer

BARS = {"client_s": 2.0, "server_s": 2.0, "server_dropout_s": 15.0, "upload_ratio": 1.1}
DROPOUT = 0.1


def party(i: int) -> str:
    return "0x" + f"{i:040x}"


def ours(n: int, size: int, drop: list[int]) -> dict[str, Any]:
    """Our protocol, all n clients for real; returns timings and checks."""
    ctx = keys.RoundContext(job=1, round=1, domain=b"\x42" * 20)
    ids = [party(i + 1) for i in range(n)]
    sks = {p: keys.private_key_from_seed(p.encode() * 2) for p in ids}
    directory = {p: keys.public_key_bytes(k) for p, k in sks.items()}
    setup = RoundSetup.create(ctx, ids, b"\x07" * 32)
    rng = np.random.default_rng(0)
    prg = Prg(size)
    masked: dict[str, np.ndarray] = {}
    bundles: dict[str, bytes | None] = {}
    trainers: dict[str, SecAggTrainer] = {}
    plain_all: dict[str, np.ndarray] = {}
    client_s: list[float] = []
    upload = {}
    for i, p in enumerate(ids):
        delta = np.rint(rng.normal(0.0, 0.01, size) * 2**20).astype(np.int64)  # (size,) a quantised delta
        w = int(rng.integers(50, 500))
        t0 = time.perf_counter()
        trainer = SecAggTrainer(setup, p, sks[p], directory)
        masked[p] = trainer.mask(weighted(delta, w, n), prg)
        bundles[p] = trainer.deal()
        client_s.append(time.perf_counter() - t0)
        trainers[p] = trainer
        plain_all[p] = delta * w
        if i == 0:
            plain_blob = len(encode_tensors({"update": delta}))
            masked_blob = len(encode_tensors({"update": masked[p].view(np.int64)}))
            upload = {
                "plain_bytes": plain_blob,
                "masked_bytes": masked_blob,
                "bundle_bytes": len(bundles[p] or b""),
                "ratio": (masked_blob + len(bundles[p] or b"")) / plain_blob,
            }
    out: dict[str, Any] = {
        "degree": len(setup.neighbours[ids[0]]),
        "threshold": setup.threshold,
        "client_s": {"median": median(client_s), "max": max(client_s)},
        "upload": upload,
    }
    for label, dropped in (("no dropouts", []), (f"{DROPOUT:.0%} dropouts", drop)):
        committers = [p for i, p in enumerate(ids) if i not in set(dropped)]
        reveal_s, reveals = [], {}
        for c in committers:
            t0 = time.perf_counter()
            reveals[c], faults = trainers[c].reveal(bundles, committers)
            reveal_s.append(time.perf_counter() - t0)
            assert not faults, faults
        gc.collect()
        t0 = time.perf_counter()
        total = masked_sum((masked[c] for c in committers), size)
        t_sum = time.perf_counter() - t0
        recovery = recover(setup, directory, bundles, committers, reveals)
        t_recover = time.perf_counter() - t0 - t_sum
        result = unmask(total, recovery, prg)
        server_s = time.perf_counter() - t0
        expected = np.zeros(size, dtype=np.int64)
        for c in committers:
            expected += plain_all[c]
        exact = bool(np.array_equal(result, expected))
        out[label] = {
            "committers": len(committers),
            "server_s": server_s,
            "sum_s": t_sum,
            "recover_s": t_recover,
            "unmask_s": server_s - t_sum - t_recover,
            "prg_expansions": len(recovery.self_seeds) + len(recovery.pair_seeds),
            "reveal_s_median": median(reveal_s),
            "exact": exact,
        }
    return out


def flower(n: int, size: int, degree: int, threshold: int, drop: list[int], clients: int) -> dict[str, Any]:
    """Flower 1.42's SecAgg+ primitives, called as its client mod and server workflow call them."""
    from flwr.common.secure_aggregation.crypto.shamir import combine_shares, create_shares
    from flwr.common.secure_aggregation.crypto.symmetric_encryption import (
        decrypt,
        encrypt,
        generate_shared_key,
    )
    from flwr.common.secure_aggregation.ndarrays_arithmetic import (
        factor_combine,
        parameters_addition,
        parameters_mod,
        parameters_multiply,
        parameters_subtraction,
    )
    from flwr.common.secure_aggregation.quantization import quantize
    from flwr.common.secure_aggregation.secaggplus_utils import (
        pseudo_rand_gen,
        share_keys_plaintext_concat,
        share_keys_plaintext_separate,
    )
    from flwr.supercore.primitives.asymmetric import (
        bytes_to_private_key,
        bytes_to_public_key,
        generate_key_pairs,
        private_key_to_bytes,
        public_key_to_bytes,
    )

    clip, target, mod, shares_n = 8.0, 2**22, 2**32, degree + 1
    pk1, pk2, sk1s, sk2s = {}, {}, {}, {}
    for nid in range(n):  # every client's two key pairs (the setup stage; timed below for one client)
        s1, p1 = generate_key_pairs()
        s2, p2 = generate_key_pairs()
        sk1s[nid], sk2s[nid] = private_key_to_bytes(s1), s2
        pk1[nid], pk2[nid] = public_key_to_bytes(p1), public_key_to_bytes(p2)
    rng = np.random.default_rng(1)
    client_s = []
    for me in range(clients):
        nbrs = [(me + d) % n for d in range(1, degree // 2 + 1)] + [
            (me - d) % n for d in range(1, degree // 2 + 1)
        ]
        params = [rng.normal(0.0, 0.01, size).astype(np.float32)]
        t0 = time.perf_counter()
        # setup stage: two key pairs
        s1, p1 = generate_key_pairs()
        s2, p2 = generate_key_pairs()
        # share_keys stage: Shamir shares of rd_seed and of sk1, one Fernet box per neighbour
        sk1 = private_key_to_bytes(s1)
        rd_seed = os.urandom(32)
        b_shares = create_shares(rd_seed, threshold, shares_n)
        sk1_shares = create_shares(sk1, threshold, shares_n)
        for idx, nid in enumerate(nbrs):
            key = generate_shared_key(s2, bytes_to_public_key(pk2[nid]))
            encrypt(key, share_keys_plaintext_concat(me, nid, b_shares[idx], sk1_shares[idx]))
        t_share = time.perf_counter() - t0
        # (not timed) the neighbours seal their shares to this client
        mine = public_key_to_bytes(p2)
        inbox = {}
        for idx, nid in enumerate(nbrs):
            key = generate_shared_key(sk2s[nid], bytes_to_public_key(mine))
            inbox[nid] = (
                key,
                encrypt(key, share_keys_plaintext_concat(nid, me, b_shares[idx], sk1_shares[idx])),
            )
        t0 = time.perf_counter()
        # collect_masked_vectors stage: open the boxes, quantise, add the self and pairwise masks
        for nid in nbrs:
            key = generate_shared_key(s2, bytes_to_public_key(pk2[nid]))
            share_keys_plaintext_separate(decrypt(key, inbox[nid][1]))
        quantized = factor_combine(1, quantize(parameters_multiply(params, 1.0), clip, target))
        dims = [a.shape for a in quantized]
        quantized = parameters_addition(quantized, pseudo_rand_gen(rd_seed, mod, dims))
        for nid in nbrs:
            shared = generate_shared_key(bytes_to_private_key(sk1), bytes_to_public_key(pk1[nid]))
            mask = pseudo_rand_gen(shared, mod, dims)
            quantized = (parameters_addition if me > nid else parameters_subtraction)(quantized, mask)
        quantized = parameters_mod(quantized, mod)
        client_s.append(t_share + time.perf_counter() - t0)
    out: dict[str, Any] = {"client_s": {"median": median(client_s), "clients_timed": clients}}
    seeds = {nid: os.urandom(32) for nid in range(n)}
    seed_shares = {nid: create_shares(seeds[nid], threshold, shares_n) for nid in range(n)}
    key_shares = {nid: create_shares(sk1s[nid], threshold, shares_n) for nid in range(n)}
    for label, dropped in (("no dropouts", []), (f"{DROPOUT:.0%} dropouts", drop)):
        active = [nid for nid in range(n) if nid not in set(dropped)]
        vectors = [[np.array([1]), rng.integers(0, mod, size, dtype=np.int64)] for _ in active]
        gc.collect()
        t0 = time.perf_counter()
        acc = vectors[0]
        for v in vectors[1:]:
            acc = parameters_addition(acc, v)
        acc = parameters_mod(acc, mod)
        dims = [a.shape for a in acc]
        for nid in active:
            secret = combine_shares(seed_shares[nid][:threshold])
            acc = parameters_subtraction(acc, pseudo_rand_gen(secret, mod, dims))
        for nid in dropped:
            secret = combine_shares(key_shares[nid][:threshold])
            nbrs = [(nid + d) % n for d in range(1, degree // 2 + 1)] + [
                (nid - d) % n for d in range(1, degree // 2 + 1)
            ]
            for other in nbrs:
                shared = generate_shared_key(bytes_to_private_key(secret), bytes_to_public_key(pk1[other]))
                mask = pseudo_rand_gen(shared, mod, dims)
                acc = (parameters_addition if nid > other else parameters_subtraction)(acc, mask)
        acc = parameters_mod(acc, mod)
        out[label] = {"server_s": time.perf_counter() - t0, "committers": len(active)}
        del vectors, acc
    return out


def main() -> None:
    args = parse_args(__doc__)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    n, size = (10, 10_000) if args.quick else (100, 1_000_000)
    drop = sorted(np.random.default_rng(7).choice(n, size=max(1, round(DROPOUT * n)), replace=False).tolist())
    print(f"workload: {n} trainers x {size:,} parameters; dropouts: none and {len(drop)} ({DROPOUT:.0%})\n")
    t0 = time.perf_counter()
    us = ours(n, size, drop)
    print(
        f"ours done in {time.perf_counter() - t0:.0f} s (degree {us['degree']}, threshold {us['threshold']})"
    )
    gc.collect()
    t0 = time.perf_counter()
    fl = flower(n, size, us["degree"], us["threshold"], drop, clients=3 if args.quick else 5)
    print(f"flower done in {time.perf_counter() - t0:.0f} s\n")
    dl = f"{DROPOUT:.0%} dropouts"
    up = us["upload"]
    figures = {
        "client_s": (us["client_s"]["median"], fl["client_s"]["median"]),
        "server_s": (us["no dropouts"]["server_s"], fl["no dropouts"]["server_s"]),
        "server_dropout_s": (us[dl]["server_s"], fl[dl]["server_s"]),
    }
    rows = []
    names = {
        "client_s": "client masking (one client)",
        "server_s": "server unmasking, no dropouts",
        "server_dropout_s": f"server unmasking, {dl}",
    }
    passed = {}
    for key, (mine, theirs) in figures.items():
        passed[key] = mine <= BARS[key]
        rows.append(
            [
                names[key],
                f"{mine:.3f} s",
                f"{theirs:.3f} s",
                f"x{theirs / mine:.1f}",
                f"<= {BARS[key]:.0f} s",
                verdict(passed[key]),
            ]
        )
    passed["upload_ratio"] = up["ratio"] <= BARS["upload_ratio"]
    rows.append(
        [
            "upload vs plaintext quantised update",
            f"x{up['ratio']:.4f}",
            "",
            "",
            f"<= x{BARS['upload_ratio']}",
            verdict(passed["upload_ratio"]),
        ]
    )
    exact = us["no dropouts"]["exact"] and us[dl]["exact"]
    print(table(["figure", "fedledger", "Flower SecAgg+", "Flower / ours", "bar", "verdict"], rows))
    print(f"\nunmasked sum equals the plain integer sum: {'yes' if exact else 'NO'} (both dropout cases)")
    print(
        f"upload: masked blob {up['masked_bytes']:,} B + share bundle {up['bundle_bytes']:,} B "
        f"vs plaintext blob {up['plain_bytes']:,} B"
    )
    for label in ("no dropouts", dl):
        u = us[label]
        print(
            f"server, {label}: sum {u['sum_s']:.3f} s, recover seeds {u['recover_s']:.3f} s, "
            f"{u['prg_expansions']} mask expansions {u['unmask_s']:.3f} s; reveal (one client) "
            f"{u['reveal_s_median'] * 1000:.1f} ms"
        )
    ok = all(passed.values()) and exact
    print(
        f"\nOVERALL -> {verdict(ok)}{' (quick form: the bars are for the full size)' if args.quick else ''}"
    )
    write_result(
        "secagg",
        args.quick,
        {
            "workload": {"trainers": n, "parameters": size, "dropped": len(drop)},
            "bars": BARS,
            "ours": us,
            "flower": fl,
            "passed_bars": passed,
            "exact": exact,
            "passed": ok,
            "ratios_flower_over_ours": {k: theirs / mine for k, (mine, theirs) in figures.items()},
        },
    )


if __name__ == "__main__":
    main()
