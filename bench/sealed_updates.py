"""Cost of sealing updates to their readers and serving them over TLS with signed reads (issue 18).

One round's storage path for a 10M-parameter update (int64 fixed point, an 80 MB blob), timed
end to end against a real `BlobServer` on loopback, in alternating pairs in the same run:

- plaintext: encode, Merkle root, upload over HTTP, one validator downloads (open read) and
  re-hashes — what every job did before issue 18;
- sealed: the same, plus sealing to 5 readers (a 4-member committee and an auditor: HPKE-wrapped
  content key, AES-256-GCM), over TLS, a signed read, and opening before the re-hash.

Printed: seal and open time alone, each path's time, the added time as a share of the
plaintext path's, and the upload size of both. The plaintext path here is storage only (no
training), so "added round time" measured against it is stricter than against a whole round.
`--quick`: 100k parameters.

Bars (issue 18): ≤ 10 % added round time and ≤ 1 % added bytes, judged by the median of the
pairs (range printed).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, median, parse_args, table, verdict, write_result

sys.path.insert(0, str(ROOT / "tests" / "integration"))
from tls_harness import make_ca

from fedledger.chain.base import dev_accounts
from fedledger.codec.blob import encode_tensors
from fedledger.codec.commitment import merkle_root
from fedledger.roles.keys import reader_entry, reader_secret
from fedledger.store.http import BlobServer, HttpStore
from fedledger.store.sealed import OpeningStore, ReaderKey, SealingStore, open_sealed, seal

BAR_TIME, BAR_BYTES = 0.10, 0.01
ORG, *READERS = dev_accounts(6)


def main() -> None:
    args = parse_args(__doc__)
    params = 100_000 if args.quick else 10_000_000
    pairs = 3
    rng = np.random.default_rng(0)
    blob = encode_tensors({"w": rng.integers(-(2**20), 2**20, size=params, dtype=np.int64)})
    keys = [ReaderKey(e["address"], bytes.fromhex(e["key"][2:])) for e in map(reader_entry, READERS)]
    validator = READERS[0]
    with tempfile.TemporaryDirectory() as tmp:
        ca = make_ca(Path(tmp) / "ca")
        plain_srv = BlobServer(Path(tmp) / "plain", [ORG.address]).start()
        tls_srv = BlobServer(
            Path(tmp) / "sealed",
            [ORG.address],
            readers=[r.address for r in READERS],
            parties=[ORG.address],
            tls=(ca.cert, ca.key),
        ).start()
        try:
            rows = {k: [] for k in ("plain_s", "sealed_s", "seal_s", "open_s")}
            sealed_size = 0
            for _ in range(pairs):
                t = time.perf_counter()
                c = HttpStore(plain_srv.url, ORG).put(blob)
                assert HttpStore(plain_srv.url).get(c) == blob
                rows["plain_s"].append(time.perf_counter() - t)
                HttpStore(plain_srv.url, ORG).delete(c)

                t = time.perf_counter()
                org = HttpStore(tls_srv.url, ORG, ca_bundle=ca.ca)
                c = SealingStore(org, keys).put(blob)
                reader = HttpStore(tls_srv.url, validator, ca_bundle=ca.ca)
                opened = OpeningStore(reader, validator.address, reader_secret(validator)).get(c)
                rows["sealed_s"].append(time.perf_counter() - t)
                assert opened == blob
                org.delete(c)

                root = merkle_root(blob)  # the commitment, computed on either path
                t = time.perf_counter()
                envelope = seal(blob, keys, root)
                rows["seal_s"].append(time.perf_counter() - t)
                sealed_size = len(envelope)
                t = time.perf_counter()
                open_sealed(envelope, root, validator.address, reader_secret(validator))
                rows["open_s"].append(time.perf_counter() - t)
        finally:
            plain_srv.stop()
            tls_srv.stop()
    med = {k: median(v) for k, v in rows.items()}
    added_time = (med["sealed_s"] - med["plain_s"]) / med["plain_s"]
    crypto_share = (med["seal_s"] + med["open_s"]) / med["plain_s"]
    added_bytes = (sealed_size - len(blob)) / len(blob)
    rng_ = {k: (min(v), max(v)) for k, v in rows.items()}
    print(f"Sealed updates: {params:,} parameters ({len(blob):,} bytes), {len(keys)} readers, "
          f"{pairs} alternating pairs, median [range]\n")
    print(table(
        ["step", "median s", "min s", "max s"],
        [[k, med[k], rng_[k][0], rng_[k][1]] for k in ("plain_s", "sealed_s", "seal_s", "open_s")],
    ))
    print(f"\nupload size: plaintext {len(blob):,} B, sealed {sealed_size:,} B "
          f"(+{sealed_size - len(blob):,} B, {added_bytes:+.4%})  bar ≤ {BAR_BYTES:.0%}: "
          f"{verdict(added_bytes <= BAR_BYTES)}")
    print(f"seal + open alone: {crypto_share:+.1%} of the plaintext path")
    print(f"added round time (TLS + signed read + seal + open), by the median: {added_time:+.1%}  "
          f"bar ≤ {BAR_TIME:.0%}: {verdict(added_time <= BAR_TIME)}")
    write_result("sealed_updates", args.quick, {
        "parameters": params,
        "readers": len(keys),
        "pairs": pairs,
        "seconds": rows,
        "median_seconds": med,
        "plain_bytes": len(blob),
        "sealed_bytes": sealed_size,
        "added_bytes_fraction": added_bytes,
        "added_time_fraction": added_time,
        "seal_open_fraction": crypto_share,
        "bars": {"added_time": BAR_TIME, "added_bytes": BAR_BYTES},
        "pass": {"time": added_time <= BAR_TIME, "bytes": added_bytes <= BAR_BYTES},
    })


if __name__ == "__main__":
    main()
