"""The flags that name a job, shared by `audit` and `report`: a run directory, or a live chain."""

from __future__ import annotations

import argparse
from pathlib import Path

from fedledger.errors import AuditFailure


def add_job_flags(p: argparse.ArgumentParser, *, verb: str) -> None:
    """RUN_DIR, or --rpc with the coordinator, job, stores and spec; `verb` is the command's."""
    p.add_argument("run_dir", nargs="?", type=Path, help="run directory left by `fedledger simulate`")
    p.add_argument("--rpc", help=f"{verb} a live chain at this JSON-RPC URL instead")
    p.add_argument("--coordinator", help="coordinator address (with --rpc)")
    p.add_argument("--job", type=int, help="job id (with --rpc)")
    p.add_argument(
        "--store",
        action="append",
        default=None,
        help="with --rpc: a blob store directory or `store serve` URL; repeat for every organisation's",
    )
    p.add_argument("--spec", type=Path, help="the job's spec file (with --rpc)")
    p.add_argument(
        "--key",
        help="with --rpc: a reader's key (dev:N or a keystore) listed in the spec's readers: signs "
        "reads and opens sealed updates; without it the updates are reported as not readable",
    )
    p.add_argument(
        "--ca-bundle", type=Path, help="with --rpc: PEM CA certificate(s) for https stores and RPC"
    )


def check_live_flags(args: argparse.Namespace) -> None:
    """A live job needs all of --coordinator, --job, --store and --spec; one line names the missing.

    A run directory is read as written, so the live-only flags with it are a mistake, said so.
    """
    if not args.rpc:
        given = [f for f in ("coordinator", "job", "store", "spec", "key", "ca_bundle") if getattr(args, f)]
        if given:
            flags = ", ".join("--" + g.replace("_", "-") for g in given)
            raise AuditFailure(f"{flags} apply to a live chain only: add --rpc URL, or drop them")
        return
    missing = [f for f in ("coordinator", "job", "store", "spec") if getattr(args, f) is None]
    if missing:
        raise AuditFailure(f"--rpc needs {', '.join('--' + m for m in missing)}")
