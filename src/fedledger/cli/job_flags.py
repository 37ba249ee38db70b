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


def check_live_flags(args: argparse.Namespace) -> None:
    """A live job needs all of --coordinator, --job, --store and --spec; one line names the missing."""
    missing = [f for f in ("coordinator", "job", "store", "spec") if getattr(args, f) is None]
    if missing:
        raise AuditFailure(f"--rpc needs {', '.join('--' + m for m in missing)}")
