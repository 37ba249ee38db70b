"""`fedledger data commit|prove`: an organisation's data commitment, made and later opened.

`commit` is what a node does before it joins a job, done by hand: load the source against
the job's schema, commit to its canonical rows under a fresh salt, and write the opening
(PRIVATE: the salt) where the node's `[data] opening` points, so the node posts exactly that
commitment. `prove` is for the audit afterwards: the organisation hands one auditor one file
and its opening, and the auditor checks them against the commitment on chain, learning
nothing about any other organisation's data. Exit 0: proven; 1: the file is not the data
that was committed; 2: a usage or data error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from fedledger.codec.commitment import commitment_hex
from fedledger.data.commitment import (
    DataCommitment,
    Opening,
    commit_source,
    differences,
    find_data_commitment,
    recommit_source,
    schema_hash,
)
from fedledger.data.sources import DataSource
from fedledger.errors import AuditFailure, CodecError, DataError, SpecError
from fedledger.spec import JobSpec


def _differ(changed: list[str]) -> str:
    return f"{', '.join(changed)} {'differs' if len(changed) == 1 else 'differ'}"


def add_data_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = sub.add_parser(
        "data",
        help="commit to an organisation's data, or prove a file is the data it committed to",
        description="An organisation's salted data commitment: `commit` makes one and writes its "
        "private opening; `prove` shows an auditor that one file is the data a trainer committed to "
        "in a job, opening that commitment only.",
    )
    data_sub = data.add_subparsers(dest="data_command", required=True)
    commit = data_sub.add_parser(
        "commit",
        help="commit to a source under a job's schema and write the private opening",
        description="Loads SOURCE against the spec's data_schema (the same checks a node makes), "
        "commits to its rows under a fresh salt and writes the opening, readable by its owner only. "
        "Point the node's [data] opening at it and the node posts this commitment when it joins.",
    )
    commit.add_argument("source", help="CSV, Parquet, SQLite file, database URL or image folder")
    commit.add_argument("--spec", type=Path, required=True, help="the job's spec (its data_schema)")
    commit.add_argument("--out", type=Path, required=True, help="where to write the opening (never replaced)")
    commit.add_argument("--organisation", default="", help="the organisation's name (default: the file's)")
    commit.add_argument("--query", default="", metavar="SQL", help="the SELECT for a database source")

    prove = data_sub.add_parser(
        "prove",
        help="check that a file is the data a trainer committed to in a job",
        description="Re-commits SOURCE under the opening's salt and the job's schema and compares "
        "the result with the trainer's DataCommitted on chain: in a run directory (--run) or on a "
        "live chain (--rpc). Exit 0 when they match, 1 when they do not.",
    )
    prove.add_argument("source", help="the file (or database URL) the organisation says it trained on")
    prove.add_argument("--opening", type=Path, required=True, help="the organisation's opening file")
    prove.add_argument("--run", type=Path, help="a run directory left by `fedledger simulate`")
    prove.add_argument("--rpc", help="or: the JSON-RPC URL of a live chain")
    prove.add_argument("--coordinator", help="with --rpc: the coordinator address")
    prove.add_argument("--job", type=int, help="with --rpc: the job id")
    prove.add_argument("--spec", type=Path, help="with --rpc: the job's spec (checked against the chain)")
    prove.add_argument(
        "--trainer", help="the trainer's address (default with --run: the opening's organisation's)"
    )
    prove.add_argument("--query", default=None, metavar="SQL", help="the SELECT (default: the opening's)")


def run_data(args: argparse.Namespace, console: Console) -> int:
    if args.data_command == "commit":
        return _commit(args, console)
    return _prove(args, console)


def _source(text: str, query: str) -> tuple[DataSource, str]:
    """One source as `--data` reads it, and the organisation name its file gives."""
    from fedledger.data.discover import discover

    sources, names = discover([text], query=query)
    if len(sources) != 1:
        raise DataError(f"{text}: holds {len(sources)} sources; a commitment is to one organisation's")
    if "://" not in text:  # a folder holding one table: the table's name, as `simulate` names it
        return sources[0], names[0] if names and Path(text).is_dir() else Path(text).stem
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:  # sqlite:///west.db is "west", as `simulate` names a .db file; postgresql://…/claims "claims"
        database = make_url(text).database or ""
    except ArgumentError:
        database = ""
    return sources[0], Path(database).stem or "organisation"


def _schema(spec: JobSpec, where: str) -> JobSpec:
    if spec.data_schema is None:
        raise SpecError(
            "data_schema", f"{where} trains on the bundled dataset {spec.dataset}: it has no data commitments"
        )
    return spec


def _commit(args: argparse.Namespace, console: Console) -> int:
    spec = _schema(JobSpec.load(args.spec), str(args.spec))
    assert spec.data_schema is not None
    source, name = _source(args.source, args.query)
    organisation = args.organisation or name
    with console.status(f"loading {source.describe()} and committing to its rows"):
        opening = commit_source(source, spec.data_schema, organisation=organisation)
    opening.write(args.out)
    c = opening.commitment
    console.print(
        f"[bold]{organisation}[/]: {c.rows:,} rows of {source.describe()} under job spec {args.spec}"
    )
    console.print(f"  root        {commitment_hex(c.root)}")
    console.print(f"  schema hash {commitment_hex(c.schema_hash)}")
    console.print(
        f"opening: {args.out} (PRIVATE: it holds the salt; keep it, and hand it only to an auditor "
        "together with this file)"
    )
    return 0


def _on_chain(
    args: argparse.Namespace, opening: Opening
) -> tuple[JobSpec, str, DataCommitment | None, str, str]:
    """(spec, trainer, its commitment on chain or None, where, a caveat or "") from --run or --rpc."""
    if args.run is not None:
        return _in_run(args.run, args.trainer, opening)
    missing = [f for f in ("rpc", "coordinator", "job", "spec", "trainer") if getattr(args, f) is None]
    if missing:
        raise AuditFailure(
            "give --run RUN_DIR, or --rpc with " + ", ".join("--" + m for m in missing if m != "rpc")
        )
    from fedledger.chain.contracts import Coordinator

    coordinator = Coordinator.connect(args.rpc, args.coordinator)
    coordinator.check_job(args.job)
    spec = JobSpec.load(args.spec)
    on_chain = bytes(coordinator.job_config(args.job)["spec_hash"])
    if spec.spec_hash() != on_chain:
        raise SpecError("spec", f"{args.spec} does not hash to job {args.job}'s spec hash 0x{on_chain.hex()}")
    from fedledger.roles.data_commitment import posted_commitment

    found = posted_commitment(coordinator.data_registry(), args.job, args.trainer)
    return spec, args.trainer, found, f"job {args.job} on {coordinator.chain.description}", ""


#: what a chain export that does not parse as one raises on the way (a hand-edited chain.json)
_MALFORMED = (KeyError, ValueError, TypeError, AttributeError, CodecError)


def _in_run(
    run: Path, trainer: str | None, opening: Opening
) -> tuple[JobSpec, str, DataCommitment | None, str, str]:
    """--run: the trainer's commitment among the run's events.

    An in-process run is re-executed, so its events are the chain's. An RPC run's chain.json
    cannot be: its events are only as exported, so the verdict says so (an edited export
    would otherwise prove anything), and only the data registry's events count.
    """
    from fedledger.audit.replay import load_export, reexecute

    if not (run / "spec.json").exists() or not (run / "chain.json").exists():
        raise AuditFailure(f"{run} is not a run directory: spec.json and chain.json are needed")
    spec = JobSpec.load(run / "spec.json")
    export = load_export(run / "chain.json")
    try:
        if not isinstance(export.get("chain"), dict):
            raise TypeError("no chain description")
        replayed = export["chain"].get("kind") == "inprocess"
        if replayed:
            source = reexecute(export)  # the events as the chain computes them, not as exported
            if source.findings:
                raise AuditFailure(f"{run}/chain.json does not re-execute as recorded: run `fedledger audit`")
            events = [e.to_json() for e in source.events]
        else:
            registry = str(export["contracts"].get("DataRegistry", "")).lower()
            events = [
                e
                for e in export["events"]
                if str(e["address"]).lower() == registry and e["name"] == "DataCommitted"
            ]
        job_id = int(export["job_id"])
        participants = {str(a): str(n) for a, n in dict(export.get("participants", {})).items()}
        trainer = trainer or next((a for a, n in participants.items() if n == opening.organisation), "")
        if not trainer:
            raise AuditFailure(
                f"no participant of {run} is named {opening.organisation!r} (the opening's organisation): "
                "give --trainer ADDRESS"
            )
        found = find_data_commitment(events, job_id=job_id, trainer=trainer)
    except _MALFORMED as exc:
        raise AuditFailure(
            f"{run}/chain.json is not a well-formed chain export ({type(exc).__name__}: {exc}): "
            "prove against the run's original export, or the live chain with --rpc"
        ) from None
    note = (
        ""
        if replayed
        else (
            f"{run}/chain.json was exported from an RPC node: its events are taken as exported, not "
            "re-executed, so this verdict is only as good as the file; for a binding one prove with --rpc"
        )
    )
    return spec, trainer, found, f"job {job_id} of {run}", note


def _prove(args: argparse.Namespace, console: Console) -> int:
    opening = Opening.read(args.opening)
    spec, trainer, posted, where, note = _on_chain(args, opening)
    if note:
        console.print(f"[yellow]warning[/]: {note}")
    _schema(spec, where)
    assert spec.data_schema is not None
    org = opening.organisation
    if posted is None:
        console.print(f"[bold red]NOT PROVEN[/]: {org} ({trainer}) posted no data commitment in {where}")
        return 1
    if opening.commitment != posted:
        console.print(
            f"[bold red]NOT PROVEN[/]: the opening {args.opening} is not for {org}'s commitment in {where} "
            f"({_differ(differences(posted, opening.commitment))}): ask for the right opening"
        )
        return 1
    if posted.schema_hash != schema_hash(spec.data_schema):
        console.print(f"[bold red]NOT PROVEN[/]: {org}'s commitment is under another schema than {where}'s")
        return 1
    source, _ = _source(args.source, opening.query if args.query is None else args.query)
    with console.status(f"loading {source.describe()} and re-committing under the opening's salt"):
        again = recommit_source(source, spec.data_schema, opening, organisation=org)
    changed = differences(posted, again)
    if changed:
        rows = f" ({again.rows:,} rows here, {posted.rows:,} committed)" if "rows" in changed else ""
        console.print(
            f"[bold red]NOT PROVEN[/]: {source.describe()} is not the data {org} committed to in {where}: "
            f"{_differ(changed)}{rows}"
        )
        return 1
    console.print(
        f"[bold green]PROVEN[/]: {source.describe()} is the data {org} ({trainer}) committed to in {where}: "
        f"{posted.rows:,} rows, root {commitment_hex(posted.root)}"
    )
    return 0
