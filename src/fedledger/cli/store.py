"""`fedledger store serve | reader-key`: an organisation's blob server, and a reader's spec entry."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console


def add_store_parser(sub: Any) -> None:
    store = sub.add_parser("store", help="content-addressed blob storage")
    store_sub = store.add_subparsers(dest="store_command", required=True)
    serve = store_sub.add_parser(
        "serve",
        help="serve a blob directory over HTTP(S)",
        description="Serves DIR's blobs over HTTP, or HTTPS with --tls-cert/--tls-key. Without "
        "--reader/--party anyone may read by commitment (and must re-hash; fedledger clients do); "
        "with them a read must be signed (EIP-191, bound to this server and a short expiry): a "
        "--reader may read every blob, a --party only plaintext ones (global models), anyone else "
        "gets 401 (unsigned, stale) or 403. Only uploads signed by a --writer key are stored, and "
        "only if their bytes hash to the commitment they are put under (or are sealed to readers).",
    )
    serve.add_argument("--dir", type=Path, required=True, help="blob directory (created if missing)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8545 + 100, help="port (default 8645; 0 picks a free one)")
    serve.add_argument(
        "--writer",
        action="append",
        default=[],
        required=True,
        metavar="ADDRESS",
        help="Ethereum address whose signed uploads are accepted (repeatable)",
    )
    serve.add_argument(
        "--reader",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="may read every blob, individual updates included: the committee and auditors (repeatable)",
    )
    serve.add_argument(
        "--party",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="may read plaintext blobs (global models) only: the job's registered parties (repeatable)",
    )
    serve.add_argument(
        "--public-url",
        action="append",
        default=[],
        metavar="URL",
        help="a URL peers reach this server at, other than the one it listens on (a proxy, a DNS "
        "name); signed reads must be bound to one of them (repeatable)",
    )
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve https only")
    serve.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    keys = store_sub.add_parser(
        "reader-key",
        help="print a key's reader entry for a job spec's readers",
        description="Prints the address and X25519 public key (derived from the Ethereum key) that a "
        "job spec's `readers` lists for a party that may read individual updates.",
    )
    keys.add_argument("--key", required=True, help="dev:N or an encrypted keystore file")


def run_store(args: argparse.Namespace, console: Console) -> int:
    from eth_utils.address import is_address

    from fedledger.errors import StoreError
    from fedledger.store.http import BlobServer

    if args.store_command == "reader-key":
        from fedledger.roles.keys import load_key, reader_entry

        console.print_json(data=reader_entry(load_key(args.key)))
        return 0
    for flag in ("writer", "reader", "party"):
        bad = [w for w in getattr(args, flag) if not is_address(w)]
        if bad:
            raise StoreError(f"--{flag} {bad[0]!r} is not an Ethereum address")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise StoreError("--tls-cert and --tls-key go together: give both, or neither for plain HTTP")
    tls = (args.tls_cert, args.tls_key) if args.tls_cert else None
    try:
        server = BlobServer(
            args.dir,
            args.writer,
            host=args.host,
            port=args.port,
            readers=args.reader,
            parties=args.party,
            public_urls=args.public_url,
            tls=tls,
        )
    except OSError as exc:  # ssl.SSLError is an OSError: a bad certificate or key lands here too
        what = f" with {args.tls_cert} / {args.tls_key}" if tls else ""
        raise StoreError(f"cannot serve on {args.host}:{args.port}{what}: {exc.strerror or exc}") from None
    reads = "signed reads only" if server.access else "open reads"
    console.print(
        f"serving blobs from {args.dir} at [bold]{server.url}[/] · "
        f"writers: {', '.join(args.writer)} · {reads}"
    )
    try:
        server.serve_forever()
    finally:
        server.httpd.server_close()
    return 0
