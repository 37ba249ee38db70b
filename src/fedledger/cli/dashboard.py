"""`fedledger dashboard`: parse the flags, open the source, serve the web app until Ctrl-C."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from fedledger.errors import DashboardError


def add_dashboard_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve a local web dashboard of a run directory or a live chain",
        description="Serves jobs, a job's rounds and curves, organisations, privacy, lineage and a "
        "one-click audit at http://HOST:PORT; an open page follows new blocks by itself.",
    )
    p.add_argument("run_dir", nargs="?", type=Path, help="run directory left by `fedledger simulate`")
    p.add_argument("--rpc", help="follow a live chain at this JSON-RPC URL instead")
    p.add_argument("--coordinator", help="coordinator address (with --rpc)")
    p.add_argument("--job", type=int, help="open this job's page first (with --rpc)")
    p.add_argument(
        "--store",
        action="append",
        default=[],
        help="with --rpc: a blob store directory or URL, for the audit button (repeatable)",
    )
    p.add_argument("--spec", type=Path, help="with --rpc: the job's spec file (shown, and for the audit)")
    p.add_argument("--participants", type=Path, help="JSON {address: name} for readable names")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between looks for new blocks (default 1)")


def open_source(args: argparse.Namespace) -> Any:
    """The run directory or live coordinator the flags name; DashboardError says what is missing."""
    from fedledger.dashboard.sources import LiveSource, RunDirSource

    if args.rpc:
        if not args.coordinator:
            raise DashboardError("--rpc needs --coordinator ADDRESS")
        names: dict[str, str] = {}
        if args.participants:
            try:
                names = json.loads(args.participants.read_text())
            except (OSError, ValueError) as exc:
                raise DashboardError(f"--participants {args.participants}: {exc}") from None
        source = LiveSource(
            args.rpc, args.coordinator, stores=args.store, spec_path=args.spec, participants=names
        )
        if args.job is not None and args.job not in source.job_ids():
            raise DashboardError(f"no job {args.job} on coordinator {args.coordinator}")
        return source
    if args.run_dir is None:
        raise DashboardError("give a run directory, or --rpc URL --coordinator ADDRESS")
    return RunDirSource(args.run_dir)


def run_dashboard(args: argparse.Namespace, console: Console) -> int:
    import uvicorn

    from fedledger.dashboard.app import DashboardConfig, create_app

    source = open_source(args)
    app = create_app(source, DashboardConfig(poll_seconds=args.poll))
    jobs = source.job_ids()
    first = args.job if args.job is not None else (jobs[0] if jobs else None)
    path = f"/job/{first}" if first is not None else "/"
    console.print(
        f"dashboard of {source.description} at [bold]http://{args.host}:{args.port}{path}[/] (Ctrl-C stops)"
    )
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    except OSError as exc:
        raise DashboardError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    if not server.started:
        raise DashboardError(f"cannot listen on {args.host}:{args.port} (in use? give --port)")
    return 0
