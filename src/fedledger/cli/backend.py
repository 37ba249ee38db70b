"""`fedledger simulate`'s backend flags: where the organisations train (in-process or Ray), peak memory.

Flower users know `client_resources` from `run_simulation(backend_config=...)`; the flag
takes the same JSON object. Ray is imported only when asked for, so the default simulate
neither needs nor loads it.
"""

from __future__ import annotations

import argparse

from fedledger.errors import BackendError
from fedledger.sim.backend import Backend, InProcessBackend


def add_backend_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("backend", "where the organisations' local training runs")
    group.add_argument(
        "--backend",
        choices=["inprocess", "ray"],
        default="inprocess",
        help="inprocess (default, small jobs) or ray: each organisation's fit is a Ray task",
    )
    group.add_argument(
        "--ray-address",
        default=None,
        metavar="HOST:PORT",
        help="join this Ray cluster (or 'auto') instead of starting a local Ray",
    )
    group.add_argument(
        "--ray-cpus", type=int, default=None, metavar="N", help="CPUs of a local Ray (default: every core)"
    )
    group.add_argument(
        "--client-resources",
        default=None,
        metavar="JSON",
        help="what each organisation's task reserves, as Flower's: '{\"num_cpus\": 1, \"num_gpus\": 0}'",
    )
    group.add_argument(
        "--peak-memory",
        action="store_true",
        help="print the peak memory of this process and those it started (a local Ray's) at the end",
    )


def make_backend(args: argparse.Namespace, *, flower_client: bool = False) -> Backend:
    """The backend the flags ask for; a Ray-only flag without --backend ray is one line.

    A job Ray cannot train (own data, a Flower client, an attack, a profile: each brings its
    own client, not a partition of the bundled set) is refused before Ray starts.
    """
    if args.backend != "ray":
        for flag in ("ray_address", "ray_cpus", "client_resources"):
            if getattr(args, flag) is not None:
                raise BackendError(f"--{flag.replace('_', '-')} applies to --backend ray only")
        return InProcessBackend()
    from fedledger.sim.ray_backend import ClientResources, RayBackend, RayConfig

    own = [f"--{f}" for f in ("data", "attack", "profile") if getattr(args, f, None)]
    if own or flower_client:
        what = own[0] if own else "a Flower client (the spec's client)"
        raise BackendError(f"--backend ray trains the bundled datasets' partitions, not {what}; "
                           "leave --backend out to run it in-process")  # fmt: skip

    if args.ray_cpus is not None and args.ray_cpus < 1:
        raise BackendError(f"--ray-cpus must be at least 1, got {args.ray_cpus}")
    if args.ray_address is not None and args.ray_cpus is not None:
        raise BackendError("--ray-cpus sizes a local Ray; a cluster joined with --ray-address has its own")
    resources = ClientResources.parse(args.client_resources) if args.client_resources else ClientResources()
    return RayBackend(RayConfig(address=args.ray_address, num_cpus=args.ray_cpus, client_resources=resources))
