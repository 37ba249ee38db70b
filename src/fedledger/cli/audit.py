"""Presentation of `fedledger audit`: verdict, checks, lineage, findings."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fedledger.audit.run import audit_live, audit_run_dir
from fedledger.audit.verify import AuditReport
from fedledger.cli.job_flags import check_live_flags
from fedledger.errors import AuditFailure
from fedledger.roles.keys import load_key


def run_audit(args: argparse.Namespace, console: Console) -> int:
    check_live_flags(args)
    if args.rpc:
        with console.status("reading the chain and recomputing every round"):
            report = audit_live(
                rpc_url=args.rpc,
                coordinator=args.coordinator,
                job_id=args.job,
                store_dir=args.store,
                spec_path=args.spec,
                participants_path=args.participants,
                key=load_key(args.key) if args.key else None,
                ca_bundle=args.ca_bundle,
            )
        report_path = args.report
    else:
        if args.run_dir is None:
            raise AuditFailure(
                "give a run directory, or --rpc URL --coordinator ADDR --job ID --store DIR --spec FILE"
            )
        with console.status("re-executing the chain and recomputing every round"):
            report = audit_run_dir(args.run_dir)
        report_path = args.report or args.run_dir / "audit.json"
    if report_path:
        try:
            report_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        except OSError as exc:
            raise AuditFailure(
                f"cannot write the report {report_path}: {exc.strerror or exc}; give --report FILE elsewhere"
            ) from None
    show(report, console, quiet=args.quiet)
    return 0 if report.ok else 1


def show(report: AuditReport, console: Console, *, quiet: bool = False) -> None:
    if not quiet:
        console.print(f"[bold]audit of job {report.job_id}[/] — {report.provenance}")
        checks = ", ".join(f"{n} {k}" for k, n in sorted(report.checks.items()))
        console.print(f"checks passed: {checks}")
        table = Table(title="lineage (every contributor and update commitment: audit.json)")
        for col in ("version", "round", "model", "from", "orgs · examples", "excluded"):
            table.add_column(col, no_wrap=col != "excluded")
        for e in report.lineage:
            table.add_row(
                str(e.version),
                str(e.round),
                e.commitment[:12] + "…",
                e.parent[:10] + "…",
                f"{len(e.contributors)} · {sum(c['num_examples'] for c in e.contributors):,}",
                ", ".join(x["organisation"] + (" (flagged)" if x.get("flagged") else "") for x in e.excluded)
                or "—",
            )
        console.print(table)
        if report.data:
            schemas = sorted({d["schema_hash"] for d in report.data})
            data = Table(
                title="data commitments (salted roots of the rows each trainer brought: audit.json)",
                caption=f"schema hash {', '.join(schemas)}",
            )
            for col in ("organisation", "rows", "root", "block"):
                data.add_column(col, no_wrap=True)
            for d in report.data:
                data.add_row(d["organisation"], f"{d['rows']:,}", d["root"][:22] + "…", str(d["block"]))
            console.print(data)
    code = report.code
    if code and (code.get("code_digest") or report.data):
        ran = " + ".join(x for x in (code["model"], code["client"]) if x)
        digest = code.get("code_digest") or "none (built-in model, part of fedledger)"
        console.print(f"code: {ran} · digest {digest} · bound by the spec hash on chain")
    if report.privacy.get("level") == "record":
        p = report.privacy
        orgs = p["organisations"]
        console.print(
            f"record-level differential privacy: each organisation's ε over its own records, "
            f"re-derived from its commits with the {p['accountant'].upper()} accountant "
            f"(budget {p['epsilon_budget']:g}, δ = {p['delta']:g}, noise multiplier "
            f"{p['noise_multiplier']:.4g}, q = {p['sample_rate']:g}, {p['steps_per_round']} steps a round): "
            + ", ".join(f"{org} {o['epsilon']:.4f}" for org, o in orgs.items())
        )
    elif report.privacy:
        p = report.privacy
        console.print(
            f"differential privacy: ε = {p['epsilon_spent']:.6f} spent of {p['epsilon_budget']:g} "
            f"(δ = {p['delta']:g}) over {p['releases']} releases, each re-derived with the "
            f"{p['accountant'].upper()} accountant"
        )
    for f in report.findings:
        style = "red" if f.severity == "error" else "yellow"
        # --quiet drops the summary, never a finding; escaped, or rich reads "[check]" as markup and drops it
        console.print(f"[{style}]{escape(f.line())}[/]", highlight=False)
    if report.not_covered and not quiet:
        console.print(f"not covered by any check: {', '.join(report.not_covered)}", highlight=False)
    errors = sum(1 for f in report.findings if f.severity == "error")
    if report.ok:
        vouched = [
            what
            for what, check in (("the final model", "final-model"), ("the model card", "model-card"))
            if report.checks.get(check)
        ]  # only what a check covered: a missing card is not vouched for
        outputs = f", and so do {' and '.join(vouched)}" if vouched else ""
        unread = sum(1 for f in report.findings if f.check == "readers")
        if unread:  # a keyless audit of a job with readers: what is public only
            console.print(
                f"[bold green]AUDIT PASSED[/] for what is public (events, lineage, payouts); "
                f"{unread} blob set(s) were not readable to this audit, sealed to the job's readers "
                "or served to its parties only: `audit --key` with a reader's key recomputes every round"
            )
        else:
            console.print(f"[bold green]AUDIT PASSED[/]: every blob, round and payout checks out{outputs}")
    else:
        console.print(f"[bold red]AUDIT FAILED[/]: {errors} discrepanc{'y' if errors == 1 else 'ies'}")
