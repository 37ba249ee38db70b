"""Presentation of `fedledger simulate`: a progress bar, a per-round table, a summary."""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fedledger.cli.backend import make_backend
from fedledger.cli.run_dir import RunDir, prepare_out
from fedledger.errors import SpecError
from fedledger.sim.attacks import ATTACKS, Attack, parse_profile
from fedledger.sim.faults import Fault
from fedledger.sim.memory import PeakMemory
from fedledger.sim.outputs import write_record
from fedledger.sim.setup import check_targets
from fedledger.sim.simulate import RoundMetrics, Simulation, SimulationResult
from fedledger.spec import DATASETS, JobSpec

if TYPE_CHECKING:
    from fedledger.chain.rpc import RpcChain
    from fedledger.sim.backend import Backend
    from fedledger.training.own import OwnSources

HEADER = (
    f"{'round':>5}  {'status':<9} {'accepted':>8}  {'flagged':>7}  {'test acc':>8}  {'loss':>6}  "
    f"{'gas':>9}  {'chain s':>7}  {'round s':>7}"
)


def is_statistics(m: RoundMetrics, spec: JobSpec) -> bool:
    """The statistics round of a federated-standardisation job: it makes version 1 and trains nothing."""
    return spec.federated_stats and m.status == "finalized" and m.version == 1


def format_row(m: RoundMetrics, *, statistics: bool = False) -> str:
    if statistics:
        status = "[cyan]stats    [/]"  # the statistics round, padded to the status column's 9
    else:
        status = "[green]finalized[/]" if m.status == "finalized" else "[red]failed   [/]"
    text = f"{m.accepted}/{m.commits}"
    pad = " " * max(0, 8 - len(text))  # pad outside the markup so columns stay aligned
    commits = f"{pad}[yellow]{text}[/]" if m.rejected else f"{pad}{text}"
    flagged = f"{'':>6}[red]{m.flagged}[/]" if m.flagged else f"{0:>7}"
    # the statistics round trains nothing (its model is the initial one): no accuracy to show
    acc, loss = f"{100 * m.test_accuracy:>7.2f}%", f"{m.test_loss:>6.3f}"
    if statistics:
        acc, loss = f"{'—':>8}", f"{'—':>6}"
    return (
        f"{m.round:>5}  {status} {commits}  {flagged}  {acc}  {loss}  "
        f"{m.gas_used:>9,}  {m.chain_seconds:>7.2f}  {m.round_seconds:>7.2f}"
    )


def load_spec(args: argparse.Namespace) -> JobSpec:
    base = JobSpec.load(args.spec) if args.spec else JobSpec()
    overrides = {name: getattr(args, name, None) for name in JobSpec.model_fields}
    named = args.name is not None or (args.spec is not None and "name" in base.model_fields_set)
    if getattr(args, "data", None):
        base = own_data_spec(base, args)
        part = getattr(args, "partition", None)
        if part == "key" and not args.key:
            raise SpecError(
                "partition", "--partition key needs --key COLUMN: the column whose groups stay whole"
            )
        if base.partition == "organisation" and part not in (None, "organisation"):
            raise SpecError(
                "partition",
                f"--partition {part} splits one table, but the --data sources are {base.trainers} "
                "organisations already; give one table to split, or leave --partition out",
            )
    spec = base.with_overrides(**overrides)
    if not named:  # a default name that says what the job is, not always "mnist-fedavg"
        spec = spec.with_overrides(name=f"{spec.dataset}-{spec.aggregation}")
    return spec


def own_sources(args: argparse.Namespace) -> OwnSources | None:
    """The organisations' sources named by --data (None for a bundled dataset)."""
    if not getattr(args, "data", None):
        return None
    from fedledger.data.discover import discover
    from fedledger.training.own import OwnSources

    sources, names = discover(args.data, query=args.query)
    test = discover([args.test_data], query=args.query)[0][0] if args.test_data else None
    return OwnSources(tuple(sources), tuple(names), test)


def own_data_spec(base: JobSpec, args: argparse.Namespace) -> JobSpec:
    """The spec for --data: the schema (the spec's, or one covering every source), the data's name,
    one trainer per source, and a tabular model unless one is named."""
    from fedledger.data.discover import infer_job_schema

    own = own_sources(args)
    assert own is not None
    fields: dict[str, object] = {}
    schema = base.data_schema
    if schema is None:
        schema = infer_job_schema(own.sources, label=args.label, exclude=args.exclude, key=args.key or "",
                                  test=own.test, max_vocabulary=args.max_vocabulary)  # fmt: skip
        fields["data_schema"] = schema.model_dump()
    elif args.label and schema.kind == "table" and schema.label != args.label:
        raise SpecError(
            "label", f"--label {args.label} differs from the spec's data_schema label {schema.label}"
        )
    if base.dataset in DATASETS:
        stem = Path(args.data[0]).stem if len(args.data) == 1 else Path(args.data[0]).parent.name
        fields["dataset"] = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in stem) or "own"
    if len(own.sources) > 1:
        fields["partition"], fields["trainers"] = "organisation", len(own.sources)
    elif args.key:
        fields["partition"], fields["partition_key"] = "key", args.key
    if args.model is None and "model" not in base.model_fields_set and schema.kind == "table":
        fields["model"] = "mlp"
    data = base.model_dump()
    data.update(fields)
    return JobSpec.from_dict(data)


OWN_DATA_FLAGS = ("key", "label", "test_data", "query", "exclude")


def check_flags(args: argparse.Namespace, faults: list[Fault]) -> None:
    """Refusals that need only the command line, made before any directory exists."""
    if not getattr(args, "data", None):
        given = [f for f in OWN_DATA_FLAGS if getattr(args, f, None)]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise SpecError("data", f"{flag} applies to own data only; give the sources with --data")
    if getattr(args, "malicious", None) is not None and not getattr(args, "attack", None):
        raise SpecError("malicious", "--malicious is the share of trainers playing --attack; name the attack")
    for f in faults:
        if f.from_round < 1:
            raise SpecError("fault", f"{f.kind}@{f.trainer}:{f.from_round}: rounds count from 1")


def run_simulate(args: argparse.Namespace, console: Console) -> int:
    faults = [Fault.parse(f) for f in args.fault]
    check_flags(args, faults)
    spec = load_spec(args)
    own = own_sources(args)
    attack = Attack(args.attack, 0.2 if args.malicious is None else args.malicious) if args.attack else None
    profiles = [parse_profile(p) for p in args.profile]
    check_targets(spec, faults, profiles)
    out = args.out or Path("runs") / f"{spec.name}-seed{spec.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    from fedledger.training.torch_client import configure_torch

    configure_torch(args.threads)

    root = logging.getLogger("fedledger")
    root.handlers.clear()
    root.propagate = False
    if not args.quiet:
        shown = RichHandler(console=console, show_time=False, show_path=False, markup=False)
        shown.setLevel(logging.WARNING)
        root.addHandler(shown)
    root.setLevel(logging.INFO)

    chain = None
    if args.rpc:
        from fedledger.chain.rpc import RpcChain

        chain = RpcChain(args.rpc)
    backend = make_backend(args, flower_client=bool(spec.client))  # a local Ray starts here
    try:
        with PeakMemory() if args.peak_memory else nullcontext() as memory:
            code = _simulate(args, console, spec, chain, backend, own=own, attack=attack, faults=faults,
                             profiles=profiles, out=out)  # fmt: skip
    finally:
        backend.close()
    if memory is not None:
        console.print(memory.line())
    return code


def _simulate(
    args: argparse.Namespace,
    console: Console,
    spec: JobSpec,
    chain: RpcChain | None,
    backend: Backend,
    *,
    own: OwnSources | None,
    attack: Attack | None,
    faults: list[Fault],
    profiles: list[tuple[str, int]],
    out: Path,
) -> int:
    """From the run directory to the closing lines, on the backend the flags chose."""
    run_dir = prepare_out(out, force=args.force)  # only once the chain is reachable
    if not args.quiet:
        console.print(
            f"[bold]fedledger simulate[/]  {spec.trainers} organisations · {spec.dataset} "
            f"({spec.partition}{f', α={spec.alpha}' if spec.partition == 'dirichlet' else ''}) · "
            f"{spec.model} · {spec.rounds} rounds · {spec.aggregation} · "
            + (
                f"optimistic: {spec.committee_size} bonded proposers, {spec.challenge_window_s} s "
                f"challenge window"
                if spec.optimistic
                else f"quorum {spec.effective_quorum}/{spec.committee_size}"
            )
        )
        console.print(
            f"[dim]chain: {chain.description if chain else 'in-process EVM'} · run directory: {out}"
            + ("" if backend.description == "in-process" else f" · training: {backend.description}")
            + "[/]"
        )
    t0 = time.perf_counter()
    try:
        with (
            console.status(
                "setting up: loading data, deploying contracts, registering organisations",
                spinner="dots",
            )
            if not args.quiet
            else nullcontext()
        ):
            sim = Simulation(
                spec,
                out_dir=out,
                chain=chain,
                faults=faults,
                attack=attack,
                profiles=profiles,
                data=own,
                backend=backend,
            )
    except BaseException:  # refused at setup (bad data, a node down): leave no half-written run
        run_dir.refuse()
        raise
    try:
        result = _run(sim, spec, run_dir, console, quiet=args.quiet, attack=attack)
    except BaseException:
        # stopped mid-run (the organisation's code raised, Ctrl-C): before any round is final
        # there is nothing to keep, so nothing half-written is left and a replaced run comes back
        if not run_dir.accepted:
            run_dir.refuse()
        else:  # the finalised rounds stay auditable
            write_record(sim, sim.metrics)
            n = sum(m.status == "finalized" for m in sim.metrics)
            console.print(f"stopped after {n} final round(s); their record: {out} (fedledger audit {out})")
        raise
    run_dir.accept()
    return _report(result, spec, out, console, t0, attack=attack)


def _run(
    sim: Simulation,
    spec: JobSpec,
    run_dir: RunDir,
    console: Console,
    *,
    quiet: bool,
    attack: Attack | None,
) -> SimulationResult:
    """Runs the job, printing a row a round; the run directory is kept from the first final round."""

    def keep(m: RoundMetrics) -> None:
        if m.status == "finalized" and not run_dir.accepted:
            run_dir.accept()

    if not quiet:
        joined = ", staked and committed to their data" if sim.data_commitments else " and staked"
        console.print(f"job {sim.job_id} created; {spec.trainers} organisations registered{joined}")
        if attack is not None:
            bad = ", ".join(sim.malicious_names) or "none"
            console.print(f"[red]attack[/] {attack.kind}: {ATTACKS[attack.kind]} · malicious: {bad}")

    if quiet:
        return sim.run(keep)
    console.print(f"[bold]{HEADER}[/]")
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("rounds", total=spec.rounds)

        def on_round(m: RoundMetrics) -> None:
            keep(m)
            stats = is_statistics(m, spec)
            bar.console.print(format_row(m, statistics=stats), highlight=False)
            if m.status == "finalized" and not stats:
                bar.advance(task)

        return sim.run(on_round)


def _report(
    result: SimulationResult, spec: JobSpec, out: Path, console: Console, t0: float, *, attack: Attack | None
) -> int:
    """The closing lines: rounds, accuracy, gas, privacy, flags, contributions, where the evidence is."""
    wall = time.perf_counter() - t0
    statistics = sum(1 for m in result.rounds if is_statistics(m, spec))
    finalized = sum(1 for m in result.rounds if m.status == "finalized") - statistics
    gas = sum(m.gas_used for m in result.rounds)
    acc = result.final_accuracy
    failed = len(result.rounds) - finalized - statistics
    if result.outcome == "aborted":
        console.print(
            f"[bold red]job aborted[/] after {spec.max_failures + 1} failed rounds in a row "
            f"(max_failures={spec.max_failures}); {finalized} of {spec.rounds} rounds finalised"
        )
    console.print(
        f"[bold]done[/] in {wall:.1f} s ({result.chain_seconds:.1f} s on chain) · "
        f"{finalized} round{'s' if finalized != 1 else ''} finalised"
        + (" after the statistics round" if statistics else "")
        + (f", {failed} failed" if failed else "")
        + f" · final test accuracy [bold]{100 * acc:.2f}%[/] · {gas:,} gas"
    )
    if spec.secure:
        recovered = result.secagg_faults
        console.print(
            "secure aggregation: validators saw only each round's sum"
            + (f"; {len(recovered)} faults recovered from neighbours' shares" if recovered else "")
        )
    if spec.record_dp:
        spent = result.epsilon_by_organisation
        console.print(
            f"record-level differential privacy (DP-SGD in each trainer): ε over each organisation's "
            f"records, budget {spec.dp_epsilon:g} (δ = {spec.dp_delta:g}, noise multiplier "
            f"{spec.noise_multiplier:.4g}), recorded on chain: "
            + ", ".join(f"{org} [bold]{eps:.4f}[/]" for org, eps in sorted(spent.items()))
        )
    if spec.dp:
        console.print(
            f"differential privacy: ε = [bold]{result.epsilon_spent:.4f}[/] spent of {spec.dp_epsilon:g} "
            f"(δ = {spec.dp_delta:g}, noise multiplier {spec.noise_multiplier:.4g}), recorded on chain"
        )
    for c in result.challenges:
        console.print(
            f"[red]round {c.round}[/]: {c.by} escalated the claim of {c.proposer} ({c.reason}); "
            "the committee voted"
            if c.escalated
            else f"[red]round {c.round}[/]: {c.by} proved the claim of {c.proposer} wrong ({c.reason}); "
            "its bond was slashed and the round re-proposed"
        )
    if result.flags:
        flagged = ", ".join(
            f"{org} ×{n}" + (" (ejected)" if org in result.ejected else "")
            for org, n in sorted(result.flags.items())
        )
        console.print(f"[red]flagged and slashed[/]: {flagged}")
    if result.scores:
        from rich.table import Table

        from fedledger.sim.outputs import contribution_totals

        totals = contribution_totals(result)
        table = Table(title=f"contribution ({spec.scoring}, {spec.scoring_utility} utility) and earnings")
        cols = ("organisation", "contribution", "rounds scored", "reputation", "reward", "validator fees")
        for col in cols:
            table.add_column(col, justify="left" if col == "organisation" else "right")
        for org in sorted(totals, key=lambda o: -totals[o]):
            scored = sum(1 for s in result.scores if org in s.trainers)
            e = result.earnings.get(org)
            table.add_row(
                org,
                f"{totals[org]:+.4f}",
                str(scored),
                f"{e.reputation / 100:.1f}%" if e else "",
                f"{e.reward / 1e18:,.2f}" if e else "",
                f"{e.fees / 1e18:,.2f}" if e else "",
            )
        console.print(table)
        console.print(
            f"scores: {out / 'scores.csv'} · earnings: {out / 'earnings.csv'} · "
            f"chart: {out / 'contributions.png'}"
        )
    if attack is not None and attack.kind == "backdoor":
        console.print(f"backdoor success on the final model: {100 * result.backdoor_success:.1f}%")
    console.print(f"final model {result.final_commitment.hex()[:16]}… → {out / 'final_model.safetensors'}")
    cli = "fedledger" if shutil.which("fedledger") else ".venv/bin/fedledger"
    console.print(f"plot: {out / 'accuracy.png'} · verify: [bold]{cli} audit {out}[/]")
    return 0 if result.outcome == "completed" and not math.isnan(acc) else 1
