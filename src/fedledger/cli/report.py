"""`fedledger report`: a compliance report of one job, as HTML, PDF or JSON.

Kept in its own module (one registration line in main.py) so other subcommands merge
without touching it; the work is in `fedledger.report`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from fedledger.cli.job_flags import add_job_flags, check_live_flags
from fedledger.errors import AuditFailure
from fedledger.roles.keys import load_key


def add_report_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="a compliance report of a job (HTML, PDF or JSON)",
        description="Audits a job and writes a compliance report: purpose and spec, each organisation's "
        "participation and data commitment, the training method (aggregation, robustness screen, ε and δ), "
        "performance per model version, every change with its contributors, the Art. 12 event log, "
        "the Annex IV technical-documentation fields, what the audit verified and did not, and "
        "contribution skew.",
    )
    add_job_flags(p, verb="report on")
    p.add_argument("--participants", type=Path, help="JSON {address: name} (with --rpc)")
    p.add_argument("--format", choices=["html", "pdf", "json"], default="html", help="default html")
    p.add_argument("--out", type=Path, help="output file (default RUN_DIR/report.FORMAT, or report.FORMAT)")
    p.add_argument(
        "--pdf-event-limit",
        type=int,
        default=2_000,
        metavar="N",
        help="past N events the PDF lists risk and change events and counts the rest (0: list all; "
        "JSON and HTML always list all)",
    )


def run_report(args: argparse.Namespace, console: Console) -> int:
    from fedledger.report.build import build_report
    from fedledger.report.inputs import from_live, from_run_dir
    from fedledger.report.render import RenderOptions, write

    check_live_flags(args)
    if args.rpc:
        with console.status("reading the chain and auditing the job"):
            inputs = from_live(
                rpc_url=args.rpc,
                coordinator=args.coordinator,
                job_id=args.job,
                store=args.store,
                spec_path=args.spec,
                participants_path=args.participants,
                key=load_key(args.key) if args.key else None,
                ca_bundle=args.ca_bundle,
            )
        out = args.out or Path(f"report.{args.format}")
    else:
        if args.run_dir is None:
            raise AuditFailure(
                "give a run directory, or --rpc URL --coordinator ADDR --job ID --store DIR --spec FILE"
            )
        with console.status("re-executing the chain and auditing the job"):
            inputs = from_run_dir(args.run_dir)
        out = args.out or args.run_dir / f"report.{args.format}"
    report = build_report(inputs)
    with console.status(f"rendering {args.format}"):
        write(report, RenderOptions(format=args.format, pdf_event_limit=args.pdf_event_limit), out)
    verdict = "[green]audit passed[/]" if report["audit"]["ok"] else "[red]audit FAILED[/]"
    skew = report["skew"]["diverging"]
    console.print(
        f"report of job {report['job']['job_id']} written to [bold]{out}[/] · {verdict} · "
        f"{len(report['performance'])} rounds · {len(report['event_log'])} events · "
        f"skew: {', '.join(skew) if skew else 'none'}",
        highlight=False,
    )
    return 0 if report["audit"]["ok"] else 1
