"""A running local consortium: each organisation's processes, and what the chain says of the job.

`start_consortium` (deployment.py) builds a `Consortium`; a test then starts, kills and restarts
organisation nodes through it, waits on the job's phases, and audits the result live.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount

from fedledger.audit.run import audit_live
from fedledger.audit.verify import AuditReport
from fedledger.chain.contracts import Coordinator, Event, JobState
from fedledger.roles.devnet import Devnet
from fedledger.sim.network import DeploymentError, NetHosts, TcpProxy
from fedledger.spec import JobSpec
from fedledger.store.http import BlobServer


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for https blob servers: the CA the nodes trust, and the servers' certificate and key."""

    ca: Path
    cert: Path
    key: Path


@dataclass
class Org:
    index: int  # 1-based, the organisation's share of the data split and dev key dev:index
    address: str
    store_dir: Path
    store_port: int
    config: Path
    log: Path
    server: subprocess.Popen[bytes] | None = None
    proc: subprocess.Popen[bytes] | None = None
    proxy: TcpProxy | None = None  # how the others reach this organisation's blob server
    starts: int = 0
    host: str = "127.0.0.1"  # its address: loopback, or its own network host's
    prefix: list[str] = field(default_factory=list)  # runs a command on its host
    scheme: str = "http"  # its blob server's: https with TLS

    @property
    def store_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.store_port}"

    @property
    def public_url(self) -> str:
        return self.proxy.url if self.proxy else self.store_url


@dataclass
class Consortium:
    tmp: Path
    spec: JobSpec
    net: Devnet
    job_id: int
    orgs: list[Org]
    sponsor_store: Path
    rpc_proxy: TcpProxy | None = None
    node_env: dict[str, str] = field(default_factory=dict)
    hosts: NetHosts | None = None
    sponsor_server: BlobServer | None = None
    root: Org | None = None  # FLTrust: the sponsor's node, which commits the root update
    tls: TlsFiles | None = None  # the blob servers speak https; nodes and audits trust tls.ca

    # -- processes ---------------------------------------------------------------------------

    @property
    def nodes(self) -> list[Org]:
        """Every node process: the organisations', and the sponsor's in an FLTrust job."""
        return self.orgs + ([self.root] if self.root is not None else [])

    def start(self, org: Org, *args: str) -> None:
        """Starts (or restarts) the organisation's node; `args` go to `fedledger node`."""
        org.starts += 1
        out = org.log.open("ab")
        out.write(f"--- start {org.starts} ---\n".encode())
        out.flush()
        org.proc = subprocess.Popen(
            [
                *org.prefix,
                sys.executable,
                "-m",
                "fedledger.cli.main",
                "node",
                "--config",
                str(org.config),
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.node_env},
        )

    def kill(self, org: Org) -> None:
        """SIGKILL: no chance to clean up, as when a machine loses power."""
        if org.proc is None:
            return
        org.proc.send_signal(signal.SIGKILL)
        org.proc.wait(10)

    def logs(self) -> str:
        return "\n".join(
            f"=== org {o.index} ===\n{o.log.read_text()[-2500:] if o.log.exists() else '(no node started)'}"
            for o in self.nodes
        )

    def wait_until(self, what: str, pred: Callable[[JobState], bool], timeout: float = 120) -> JobState:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.coordinator.job_state(self.job_id)
            if pred(s):
                return s
            dead = [o.index for o in self.nodes if o.proc and o.proc.poll() not in (None, 0, -9)]
            if dead:
                raise DeploymentError(f"node(s) {dead} exited with an error\n{self.logs()}")
            time.sleep(0.1)
        raise DeploymentError(f"timed out waiting for {what}\n{self.logs()}")

    def wait_done(self, timeout: float = 180) -> None:
        """Every running node exits 0 once the job ends (it withdraws first)."""
        deadline = time.monotonic() + timeout
        for o in self.nodes:
            if o.proc is None or o.proc.returncode == -9:
                continue
            try:
                rc = o.proc.wait(max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                raise DeploymentError(f"org {o.index}'s node did not finish\n{self.logs()}") from None
            if rc != 0:
                raise DeploymentError(f"org {o.index}'s node exited {rc}\n{self.logs()}")

    def stop(self) -> None:
        for o in self.nodes:
            for p in (o.proc, o.server):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait(10)
            if o.proxy:
                o.proxy.close()
        if self.rpc_proxy:
            self.rpc_proxy.close()
        if self.sponsor_server:
            self.sponsor_server.stop()
        self.net.stop()
        if self.hosts:
            self.hosts.remove()

    # -- what the chain says -----------------------------------------------------------------

    @property
    def coordinator(self) -> Coordinator:
        return self.net.deployment.coordinator

    def events(self, name: str | None = None) -> list[Event]:
        evs = [e for e in self.coordinator.events() if e.args.get("job_id") == self.job_id]
        return [e for e in evs if name is None or e.name == name]

    def commits_by_round(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for e in self.events("UpdateCommitted"):
            out.setdefault(e.args["round"], []).append(e.args["trainer"])
        return out

    def audit_args(self) -> list[str]:
        """`fedledger audit`'s arguments for this job, live (add --key, --report as wanted)."""
        args = ["--rpc", self.net.node.url, "--coordinator", self.coordinator.address]
        args += ["--job", str(self.job_id), "--spec", str(self.tmp / "job.json")]
        for where in [str(self.sponsor_store), *(o.store_url for o in self.orgs)]:
            args += ["--store", where]
        return args + (["--ca-bundle", str(self.tls.ca)] if self.tls else [])

    def audit(self, key: LocalAccount | None = None) -> AuditReport:
        return audit_live(
            rpc_url=self.net.node.url,
            coordinator=self.coordinator.address,
            job_id=self.job_id,
            store_dir=[str(self.sponsor_store), *(o.store_url for o in self.orgs)],
            spec_path=self.tmp / "job.json",
            key=key,
            ca_bundle=self.tls.ca if self.tls else None,
        )
