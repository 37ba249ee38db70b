"""Presentation of `fedledger devnet` and `fedledger job create | status | list`."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from fedledger.chain.contracts import Coordinator
from fedledger.errors import SpecError, StoreError
from fedledger.roles.keys import load_key
from fedledger.store.http import open_store

if TYPE_CHECKING:
    from fedledger.chain.optimistic import Optimistic
    from fedledger.spec import JobSpec


def run_devnet(args: argparse.Namespace, console: Console) -> int:
    """Runs anvil until Ctrl-C, SIGTERM or anvil's own exit; anvil never outlives this process.

    Python's default SIGTERM ends the process without unwinding, which would orphan
    anvil; here SIGTERM unwinds as Ctrl-C does, through `Devnet.stop`.
    """
    with _stop_on_signals():
        return _serve_devnet(args, console)


def _serve_devnet(args: argparse.Namespace, console: Console) -> int:
    from fedledger.roles.devnet import start_devnet

    with console.status("starting anvil and deploying the contracts", spinner="dots"):
        net = start_devnet(port=args.port, accounts=args.accounts, block_time=args.block_time, host=args.host)
    try:
        info = net.describe()
        if args.out:  # whole or not at all: a script polls for this file and reads it at once
            out = Path(args.out)
            partial = out.with_name(out.name + ".partial")
            partial.write_text(json.dumps(info, indent=2) + "\n")
            partial.replace(out)
        console.print(f"[bold]devnet[/] anvil at [bold]{info['rpc']}[/] (chain id {info['chain_id']})")
        console.print(f"coordinator {info['coordinator']}\ntoken       {info['token']} (minter: account 0)")
        console.print(f"optimistic  {info['optimistic']} (verification=optimistic jobs)")
        table = Table(title=f"funded development accounts ({net.funds / 1e18:,.0f} tokens each; keys dev:N)")
        table.add_column("key")
        table.add_column("address")
        for i, a in enumerate(net.accounts):
            table.add_row(f"dev:{i}", a.address)
        console.print(table)
        if args.out:
            console.print(f"addresses written to {args.out}")
        console.print("[dim]development keys are public: never use them on a real network. Ctrl-C stops.[/]")
        while net.node.running():
            time.sleep(0.5)
        console.print("[red]anvil exited[/]")
        return 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM
        return 0
    finally:
        net.stop()


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt once; a repeat is ignored while anvil stops."""
    if threading.current_thread() is not threading.main_thread():  # only it may set handlers
        yield
        return
    caught = (signal.SIGTERM, signal.SIGINT)

    def stop(signum: int, frame: FrameType | None) -> None:
        for s in caught:
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt

    before = {s: signal.signal(s, stop) for s in caught}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def run_job(args: argparse.Namespace, console: Console) -> int:
    coordinator = Coordinator.connect(args.rpc, args.coordinator)
    if args.job_command == "list":
        table = Table(title=f"jobs on {args.coordinator}")
        for col in ("job", "phase", "round", "version", "rounds", "trainers", "quorum", "pool"):
            table.add_column(col)
        for job in range(1, coordinator.job_count() + 1):
            s, cfg = coordinator.job_state(job), coordinator.job_config(job)
            table.add_row(
                str(job),
                s.phase.name,
                str(s.round),
                str(s.version),
                str(cfg["rounds"]),
                str(s.trainers),
                str(cfg["quorum"]),
                f"{coordinator.pool(job) / 1e18:,.2f}",
            )
        console.print(table)
        return 0
    if args.job_command == "start":
        from fedledger.roles.sponsor import start_draw

        coordinator.check_job(args.job)
        with console.status(f"waiting for {args.enrolled} trainers to enrol in job {args.job}"):
            round, now = start_draw(
                coordinator, load_key(args.key), args.job, enrolled=args.enrolled, timeout=args.timeout
            )
        what = "drawn" if now else "was already drawn"
        console.print(f"job [bold]{args.job}[/]: round {round} {what} from {args.enrolled} or more enrolled")
        return 0
    if args.job_command == "status":
        coordinator.check_job(args.job)
        s, cfg = coordinator.job_state(args.job), coordinator.job_config(args.job)
        console.print(
            f"[bold]job {args.job}[/]: {s.phase.name}, round {s.round}, "
            f"model version {s.version} of {cfg['rounds']}"
        )
        console.print(f"  commits this round {s.commits} of {s.trainers} trainers ({s.examples:,} examples)")
        if s.running:
            left = s.deadline - coordinator.chain.timestamp()
            console.print(f"  phase deadline in {left} s (anyone may advance it after)")
        console.print(f"  global model {coordinator.global_model(args.job).hex()}")
        console.print(
            f"  quorum {cfg['quorum']}, min commits {cfg['min_commits']}, stake {cfg['stake']}, "
            f"reward/round {cfg['reward_per_round']}, slash {cfg['slash_bps'] / 100:g}%, "
            f"eject at {cfg['max_flags']} flags"
        )
        console.print(
            f"  spec hash 0x{bytes(cfg['spec_hash']).hex()} · sponsor {cfg['sponsor']} · "
            f"pool {coordinator.pool(args.job)}"
        )
        show_draw(coordinator, args.job, s.round, cfg, console)
        micro_epsilon = coordinator.epsilon_spent(args.job)
        if micro_epsilon:
            console.print(f"  differential privacy: ε spent {micro_epsilon / 1e6:.4f} (agreed by the quorum)")
        return 0
    return create_job_cli(args, console, coordinator)


def create_job_cli(args: argparse.Namespace, console: Console, coordinator: Coordinator) -> int:
    from fedledger.chain.contracts import Deployment, RewardToken
    from fedledger.codec.blob import encode_tensors
    from fedledger.roles.model import quantize_model
    from fedledger.roles.outcome import model_metadata
    from fedledger.roles.sponsor import create_job
    from fedledger.spec import JobSpec
    from fedledger.training.code import check_code_digest
    from fedledger.training.consortium import initial_model
    from fedledger.training.torch_client import get_weights, weight_names

    spec = JobSpec.load(args.spec)
    sponsor = load_key(args.key)
    if len(args.committee) != spec.committee_size:
        raise SpecError(
            "committee",
            f"the spec's committee has {spec.committee_size} members; {len(args.committee)} given",
        )
    store = open_store(args.store, sponsor)
    check_code_digest([spec.model, spec.client], spec.code_digest, organisation="sponsor")
    init = initial_model(spec)
    model_q = quantize_model(weight_names(init), get_weights(init), spec.scale_bits)
    try:
        initial = store.put(encode_tensors(model_q, metadata=model_metadata(0, 0)))
    except StoreError as exc:
        raise StoreError(f"cannot store the initial model: {exc}") from None
    token = RewardToken(coordinator.chain, args.token)
    deployment = Deployment(
        token=token,
        coordinator=coordinator,
        data_registry=coordinator.data_registry(),
        sampler=coordinator.sampler(),  # read from its storage: no getter fitted
        optimistic=optimistic_for(args, spec, coordinator),
    )
    job_id, _ = create_job(
        deployment=deployment,
        sponsor=sponsor,
        spec=spec,
        initial_model=initial,
        committee=args.committee,
    )
    console.print(
        f"job [bold]{job_id}[/] created by {sponsor.address}: spec hash 0x{spec.spec_hash().hex()}, "
        f"initial model 0x{initial.hex()} in {args.store}"
    )
    if deployment.optimistic is not None:
        from fedledger.roles.optimistic import delegate_job, num_params

        # before round 1 aggregates, as optimistic.vy requires: right after creating it
        delegate_job(deployment, sponsor, spec, job_id, num_params(model_q), committee=args.committee)
        console.print(f"  delegated to optimistic contract {deployment.optimistic.address}")
    return 0


def optimistic_for(args: argparse.Namespace, spec: JobSpec, coordinator: Coordinator) -> Optimistic | None:
    """The optimistic contract an optimistic-mode spec's job is delegated to (None for a quorum job).

    Checked before the job is created: a contract bound to another coordinator would refuse
    the delegation only after the job exists, leaving a job nobody can finalise.
    """
    if not spec.optimistic:
        if args.optimistic:
            raise SpecError("optimistic", "the spec's verification is quorum: there is nothing to delegate")
        return None
    if not args.optimistic:
        raise SpecError(
            "optimistic",
            "verification=optimistic: give --optimistic ADDRESS, the optimistic contract "
            "(`fedledger devnet` prints it)",
        )
    from fedledger.chain.optimistic import Optimistic

    optimistic: Optimistic = Optimistic(coordinator.chain, args.optimistic)
    bound = str(optimistic.read("coordinator"))
    if bound.lower() != coordinator.address.lower():
        raise SpecError(
            "optimistic", f"{args.optimistic} serves coordinator {bound}, not {coordinator.address}"
        )
    return optimistic


def show_draw(coordinator: Coordinator, job: int, round: int, cfg: dict[str, Any], console: Console) -> None:
    """A sampling job's current draw: who trains and who sits on the committee this round."""
    if not (int(cfg["clients_per_round"]) or int(cfg["validators_per_round"])):
        return
    from fedledger.roles.sampling import round_seats

    sampler = coordinator.sampler()
    seats = round_seats(sampler, job, round)
    enrolled = sampler.enrolled(job) if sampler is not None else 0
    if not (seats.trainers or seats.committee):
        console.print(f"  round {round} not drawn yet ({enrolled} enrolled; the sponsor runs `job start`)")
        return
    for lane, drawn in (("trainers", seats.trainers), ("committee", seats.committee)):
        if drawn:
            who = ", ".join(a for a, _ in sorted(drawn.items(), key=lambda kv: kv[1]))
            console.print(f"  round {round} drawn {lane} ({len(drawn)} of {enrolled} enrolled): {who}")
