"""`fedledger` command line: parsing and presentation only; the work is in the layers below.

Every `FedledgerError` becomes one red line on stderr and exit status 2; an
audit that finds a discrepancy exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Literal, cast, get_args, get_origin

from rich.console import Console

from fedledger import __version__
from fedledger.cli.backend import add_backend_flags
from fedledger.cli.job_flags import add_job_flags
from fedledger.errors import FedledgerError

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _add_spec_flags(p: argparse.ArgumentParser) -> None:
    from fedledger.spec import JobSpec

    p.add_argument("--spec", type=Path, help="JSON or TOML job spec; flags override its fields")
    fields = JobSpec.model_fields
    for name, info in fields.items():
        if name == "data_schema":  # a structured table, written by --data or in a --spec file
            continue
        flag = "--" + name.replace("_", "-")
        annotation = info.annotation
        choices = get_args(annotation) if get_origin(annotation) is Literal else None
        kind: Any = {int: int, float: float}.get(annotation, str)  # type: ignore[arg-type]
        p.add_argument(
            flag,
            dest=name,
            type=kind,
            default=None,
            choices=choices,
            help=f"{info.description or ''} (default {info.default})".strip(),
        )


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line, as every other error is, not the whole usage block."""

    def error(self, message: str) -> Any:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fedledger",
        description="Federated learning coordinated, audited and paid by smart contracts.",
    )
    parser.add_argument("--version", action="version", version=f"fedledger {__version__}")
    # every subcommand is a _Parser too (argparse builds them with the parent's class)
    subcommands = parser.add_subparsers(dest="command", required=True)
    sub = cast("argparse._SubParsersAction[argparse.ArgumentParser]", subcommands)

    sim = sub.add_parser(
        "simulate",
        help="run a consortium of organisations on one machine",
        description="Runs a whole federated job: every organisation trains, validates "
        "and is paid through the contracts; leaves an auditable run directory.",
    )
    _add_spec_flags(sim)
    sim.add_argument(
        "--out", type=Path, default=None, help="run directory (default runs/<name>-seed<seed>-<timestamp>)"
    )
    sim.add_argument("--force", action="store_true", help="replace --out if it already holds a run")
    sim.add_argument("--rpc", default=None, help="use this JSON-RPC node instead of the in-process EVM")
    sim.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND@TRAINER[:FROM_ROUND]",
        help="make trainer TRAINER (1-based) misbehave from round FROM_ROUND (default 1) on; kinds: "
        "corrupt-blob, withhold-blob, wrong-shape, float-blob, huge-norm, malformed, nan-weights, "
        "drop-out, withhold-reveal, lying-validator, biased-validator, lying-proposer (optimistic mode) "
        "(repeatable)",
    )
    sim.add_argument(
        "--attack",
        default=None,
        choices=["label-flip", "sign-flip", "gaussian", "backdoor", "free-ride", "sybil"],
        help="make a share of the trainers (--malicious) Byzantine with this attack",
    )
    sim.add_argument(
        "--malicious",
        type=float,
        default=None,
        metavar="FRACTION",
        help="share of trainers playing --attack, the last ones by number (default 0.2)",
    )
    sim.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="KIND@TRAINER",
        help="give trainer TRAINER data of a different value, to watch --scoring rank it; kinds: "
        "label-noise, duplicate, tiny, free-ride (repeatable)",
    )
    sim.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per process (default 1: measured fastest on 2 cores)",
    )
    sim.add_argument("--quiet", action="store_true", help="no progress bar or table")
    add_backend_flags(sim)
    own = sim.add_argument_group(
        "own data", "train on the organisations' own tables or image folders instead of a bundled dataset"
    )
    own.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="SOURCE",
        help="an organisation's CSV, Parquet, SQLite file, database URL or image folder, named by the "
        "file (repeat per organisation); or a directory with one per organisation; or one table that "
        "--partition splits",
    )
    own.add_argument("--label", default="", metavar="COLUMN", help="the label column of the tables")
    own.add_argument(
        "--test-data", default=None, metavar="SOURCE", help="the sponsor's held-out evaluation source"
    )
    own.add_argument(
        "--key",
        default="",
        metavar="COLUMN",
        help="with --partition key: the natural column (state, branch, ward) whose groups stay whole",
    )
    own.add_argument("--query", default="", metavar="SQL", help="the SELECT for database sources")
    own.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="COLUMN",
        help="leave a column out of the inferred schema (an identifier, a timestamp); repeatable",
    )
    own.add_argument(
        "--max-vocabulary",
        type=int,
        default=64,
        metavar="N",
        help="most categories a text column may have in the inferred schema (default 64)",
    )

    aud = sub.add_parser(
        "audit",
        help="replay a job and verify every step",
        description="Re-executes the chain export (or reads a live chain), checks every "
        "blob against its commitment, recomputes every round bit for bit, checks "
        "payouts, and prints the lineage. Exit 1 on any discrepancy.",
    )
    add_job_flags(aud, verb="audit")
    aud.add_argument("--participants", type=Path, help="JSON {address: name} for readable output")
    aud.add_argument("--report", type=Path, help="write the JSON report here (default RUN_DIR/audit.json)")
    aud.add_argument("--quiet", action="store_true", help="print only the verdict and findings")

    dev = sub.add_parser(
        "devnet",
        help="start a local anvil node with the contracts deployed",
        description="Starts anvil (installed by `npm ci`), deploys the reward token and coordinator "
        "from dev:0, mints tokens to every development account, prints the addresses, and runs "
        "until Ctrl-C.",
    )
    dev.add_argument("--port", type=int, default=8545, help="RPC port (default 8545)")
    dev.add_argument("--accounts", type=int, default=10, help="funded development accounts (default 10)")
    dev.add_argument("--out", type=Path, help="also write the addresses here as JSON")
    dev.add_argument(
        "--block-time",
        type=int,
        default=None,
        help="mine a block every N seconds instead of one per transaction (nodes with confirmations)",
    )
    dev.add_argument(
        "--host", default="127.0.0.1", help="listen address (0.0.0.0: reachable from other hosts)"
    )

    job = sub.add_parser("job", help="create and inspect jobs on any RPC chain")
    job_sub = job.add_subparsers(dest="job_command", required=True)
    for name, text in (
        ("create", "create a job from a spec"),
        ("status", "one job's state"),
        ("list", "every job"),
        ("start", "sampling jobs: draw round 1 once the consortium has enrolled (the sponsor)"),
    ):
        p = job_sub.add_parser(name, help=text)
        p.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain")
        p.add_argument("--coordinator", required=True, help="coordinator contract address")
        if name in ("status", "start"):
            p.add_argument("--job", type=int, required=True, help="job id")
        if name == "start":
            p.add_argument(
                "--key", required=True, help="the sponsor's key: dev:N or an encrypted keystore file"
            )
            p.add_argument(
                "--enrolled",
                type=int,
                required=True,
                metavar="N",
                help="wait until N trainers have enrolled (the consortium's size), then draw round 1",
            )
            p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for them (600)")
        if name == "create":
            p.add_argument("--spec", type=Path, required=True, help="JSON or TOML job spec")
            p.add_argument("--token", required=True, help="reward token address (the pool is pulled from it)")
            p.add_argument(
                "--key",
                required=True,
                help="sponsor key: dev:N or an encrypted keystore file "
                "(passphrase from $FEDLEDGER_PASSPHRASE or a prompt)",
            )
            p.add_argument(
                "--committee",
                action="extend",
                nargs="+",
                default=[],
                required=True,
                metavar="ADDRESS",
                help="the committee's validators: --committee A B C, or --committee A --committee B ...",
            )
            p.add_argument(
                "--store",
                required=True,
                help="blob store for the initial model: a directory or an "
                "http(s) URL of `fedledger store serve`",
            )
            p.add_argument(
                "--optimistic",
                metavar="ADDRESS",
                help="verification=optimistic specs: the optimistic contract to delegate the job to "
                "(`fedledger devnet` prints it); the sponsor stakes for it",
            )

    node = sub.add_parser(
        "node",
        help="run one organisation's trainer/validator against a live job",
        description="Runs an organisation's roles from a TOML config (rpc, coordinator, job, key, spec, "
        "organisation, store, peers): registers if needed, then trains, commits, validates, proposes "
        "and advances as the chain's state asks, until the job ends; then withdraws. Safe to kill "
        "and restart at any moment: it resumes from the chain.",
    )
    node.add_argument("--config", type=Path, required=True, help="the node's TOML file")
    node.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    node.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text lines for people, or one JSON object a line for log collectors",
    )

    from fedledger.cli.dashboard import add_dashboard_parser
    from fedledger.cli.data import add_data_parser
    from fedledger.cli.report import add_report_parser

    add_data_parser(sub)
    add_dashboard_parser(sub)
    add_report_parser(sub)

    from fedledger.cli.store import add_store_parser

    add_store_parser(sub)
    return parser


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


def _node_logging(fmt: str) -> None:
    """A node runs for hours: every line gets a timestamp, or is a JSON object for collectors."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        _JsonLines() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    logging.getLogger("fedledger").setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "simulate":
            from fedledger.cli.simulate import run_simulate

            return run_simulate(args, console)
        if args.command == "audit":
            from fedledger.cli.audit import run_audit

            return run_audit(args, console)
        if args.command == "report":
            from fedledger.cli.report import run_report

            return run_report(args, console)
        if args.command == "store":
            from fedledger.cli.store import run_store

            return run_store(args, console)
        if args.command == "dashboard":
            from fedledger.cli.dashboard import run_dashboard

            return run_dashboard(args, console)
        if args.command == "data":
            from fedledger.cli.data import run_data

            return run_data(args, console)
        if args.command == "node":
            from fedledger.roles.node import Node, NodeConfig
            from fedledger.training.torch_client import configure_torch

            configure_torch(args.threads)
            _node_logging(args.log_format)
            Node(NodeConfig.load(args.config)).run()
            return 0
        if args.command in ("devnet", "job"):
            from fedledger.cli.network import run_devnet, run_job

            return run_devnet(args, console) if args.command == "devnet" else run_job(args, console)
    except FedledgerError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
