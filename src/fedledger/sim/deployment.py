"""A consortium of organisation nodes as real OS processes on one machine: tests, benches, demos.

Each organisation runs `fedledger store serve` for its own blobs and `fedledger node` for its
roles; the chain is `start_devnet` (anvil). A `TcpProxy` can stand between the nodes and the
chain, or between the other organisations and one organisation's blob server, so a test can
cut either off and bring it back, the way a network fails, without touching the processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedledger.audit.run import audit_live
from fedledger.audit.verify import AuditReport
from fedledger.chain.anvil import free_port
from fedledger.chain.contracts import Coordinator, Event, JobState
from fedledger.codec.blob import encode_tensors
from fedledger.errors import FedledgerError
from fedledger.roles.devnet import Devnet, start_devnet
from fedledger.roles.model import quantize_model
from fedledger.roles.outcome import model_metadata
from fedledger.roles.sponsor import create_job
from fedledger.spec import JobSpec
from fedledger.store.http import BlobServer, HttpStore
from fedledger.store.local import LocalStore
from fedledger.training.consortium import initial_model
from fedledger.training.torch_client import get_weights, weight_names

BASE_SPEC: dict[str, Any] = {
    "name": "nodes",
    "dataset": "digits",
    "model": "logreg",
    "trainers": 4,
    "rounds": 5,
    "partition": "iid",
    "local_epochs": 1,
    "stake": 10,
    "reward_per_round": 900,
}


class DeploymentError(FedledgerError):
    """A local consortium did not come up or did not finish as expected."""


class TcpProxy:
    """Forwards a loopback port to another; while blocked it resets every connection.

    Blocking keeps the port: a closed port could be taken by any other process that asks for
    a free one (another test's blob server, serving identical blobs), which would quietly
    undo the outage.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.blocked = False
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def unblock(self) -> None:
        self.blocked = False

    def block(self) -> None:
        self.blocked = True
        with self._lock:
            for c in self._conns:
                _reset(c)
            self._conns.clear()

    def close(self) -> None:
        self.block()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.blocked:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


def _reset(sock: socket.socket) -> None:
    """Closes with a TCP reset, as a host that is down or unreachable answers."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class NetHosts:
    """Each organisation on its own network host: a Linux network namespace behind a bridge.

    Needs root and `ip` (iproute2). The bridge is the "LAN": it carries the chain's address,
    and each organisation's namespace has one address on it and nothing else, so organisations
    reach the chain and each other's blob servers only over that network, as separate machines
    would. Names and the subnet are derived from the process id so parallel runs do not clash.
    """

    def __init__(self, count: int) -> None:
        tag = os.getpid() % 100_000
        self.subnet = f"10.213.{os.getpid() % 200 + 20}"
        self.bridge = f"flb{tag}"
        self.names = [f"fl{tag}o{i}" for i in range(1, count + 1)]
        self.gateway = f"{self.subnet}.1"
        self._run("ip", "link", "add", self.bridge, "type", "bridge")
        try:
            self._run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            self._run("ip", "link", "set", self.bridge, "up")
            for i, ns in enumerate(self.names, start=1):
                veth = f"{ns}v"
                self._run("ip", "netns", "add", ns)
                self._run("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{ns}p")
                self._run("ip", "link", "set", f"{ns}p", "netns", ns)
                self._run("ip", "link", "set", veth, "master", self.bridge)
                self._run("ip", "link", "set", veth, "up")
                inside = ("ip", "netns", "exec", ns)
                self._run(*inside, "ip", "addr", "add", f"{self.address(i)}/24", "dev", f"{ns}p")
                self._run(*inside, "ip", "link", "set", f"{ns}p", "up")
                self._run(*inside, "ip", "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    def address(self, index: int) -> str:
        return f"{self.subnet}.{10 + index}"

    def prefix(self, index: int) -> list[str]:
        """The command prefix that runs a process on organisation `index`'s host."""
        return ["ip", "netns", "exec", self.names[index - 1]]

    @staticmethod
    def _run(*cmd: str) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DeploymentError(f"{' '.join(cmd)}: {proc.stderr.strip()}")

    @staticmethod
    def available() -> str | None:
        """None if network hosts can be made here, else why not."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "`ip` (iproute2) is not installed"
        probe = f"flprobe{os.getpid() % 100_000}"
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
        if made.returncode != 0:
            return f"cannot create a network namespace: {made.stderr.strip()}"
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
        return None

    def remove(self) -> None:
        for ns in self.names:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


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

    @property
    def store_url(self) -> str:
        return f"http://{self.host}:{self.store_port}"

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

    def audit(self) -> AuditReport:
        return audit_live(
            rpc_url=self.net.node.url,
            coordinator=self.coordinator.address,
            job_id=self.job_id,
            store_dir=[str(self.sponsor_store), *(o.store_url for o in self.orgs)],
            spec_path=self.tmp / "job.json",
        )


def start_consortium(
    tmp: Path,
    *,
    orgs: int = 4,
    spec: dict[str, Any] | None = None,
    rpc_proxy: bool = False,
    store_proxies: bool = False,
    node_options: dict[str, Any] | None = None,
    block_time: int | None = None,
    start_nodes: bool = True,
    network_hosts: bool = False,
    data: Sequence[Mapping[str, str]] = (),
) -> Consortium:
    """A devnet, a job, and per organisation a blob server and (unless told not to) a node.

    With `network_hosts`, every organisation's blob server and node run on a host of its own
    (`NetHosts`) and the chain listens on the bridge; the proxies need loopback and are refused.
    An own-data job (`spec` with a data_schema) takes each organisation's `[data]` table in
    `data`, one mapping (source, and query for databases) per organisation.
    """
    if network_hosts and (rpc_proxy or store_proxies):
        raise DeploymentError("the fault proxies listen on loopback: not with network_hosts")
    job_spec = JobSpec.from_dict({**BASE_SPEC, "trainers": orgs, **(spec or {})})
    (tmp / "job.json").write_text(json.dumps(job_spec.model_dump(mode="json")))
    hosts = NetHosts(orgs) if network_hosts else None
    try:
        net = start_devnet(
            accounts=orgs + 1, block_time=block_time, host=hosts.gateway if hosts else "127.0.0.1"
        )
    except BaseException:
        if hosts:
            hosts.remove()
        raise
    started: list[Org] = []
    sponsor_server: BlobServer | None = None
    try:
        sponsor_store = tmp / "sponsor"
        if job_spec.data_schema is not None and len(data) != orgs:
            raise DeploymentError(f"an own-data job needs {orgs} [data] tables, got {len(data)}")
        init = initial_model(job_spec)
        initial = LocalStore(sponsor_store).put(
            encode_tensors(
                quantize_model(weight_names(init), get_weights(init), job_spec.scale_bits),
                metadata=model_metadata(0, 0),
            )
        )
        members = net.accounts[1 : orgs + 1]
        job_id, _ = create_job(
            deployment=net.deployment,
            sponsor=net.accounts[0],
            spec=job_spec,
            initial_model=initial,
            committee=[a.address for a in members],
        )
        sponsor_server = BlobServer(
            sponsor_store, [net.accounts[0].address], host=hosts.gateway if hosts else "127.0.0.1"
        ).start()
        proxy = TcpProxy(net.node.port) if rpc_proxy else None
        rpc = proxy.url if proxy else net.node.url
        for i, acct in enumerate(members, start=1):
            org = Org(
                index=i,
                address=acct.address,
                store_dir=tmp / f"org-{i}-blobs",
                store_port=free_port(),
                config=tmp / f"node-{i}.toml",
                log=tmp / f"node-{i}.log",
                host=hosts.address(i) if hosts else "127.0.0.1",
                prefix=hosts.prefix(i) if hosts else [],
            )
            org.server = subprocess.Popen(
                [
                    *org.prefix,
                    sys.executable,
                    "-m",
                    "fedledger.cli.main",
                    "store",
                    "serve",
                    "--dir",
                    str(org.store_dir),
                    "--host",
                    org.host,
                    "--port",
                    str(org.store_port),
                    "--writer",
                    acct.address,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if store_proxies:
                org.proxy = TcpProxy(org.store_port)
            started.append(org)

        def write_config(org: Org, store: str, peers: list[str], **own: Any) -> None:
            fields = {
                "rpc": rpc,
                "chain_id": net.chain.chain_id,
                "coordinator": net.deployment.coordinator.address,
                "job": job_id,
                "key": f"dev:{org.index}",
                "spec": str(tmp / "job.json"),
                **own,
                "store": store,
                "peers": peers,
                "poll_seconds": 0.1,
                **(node_options or {}),
            }
            org.config.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in fields.items()))

        for org in started:
            _wait_serving(org)
            peers = [sponsor_server.url] + [o.public_url for o in started if o is not org]
            own = {"data": dict(data[org.index - 1])} if data else {}
            write_config(org, org.store_url, peers, organisation=org.index, **own)
        root = None
        if job_spec.aggregation == "fltrust":
            # FLTrust trusts one update a round: the sponsor's, trained on the root dataset
            sponsor = net.accounts[0]
            port = int(sponsor_server.url.rsplit(":", 1)[1])
            root = Org(
                index=0,
                address=sponsor.address,
                store_dir=sponsor_store,
                store_port=port,
                config=tmp / "node-sponsor.toml",
                log=tmp / "node-sponsor.log",
                host=hosts.gateway if hosts else "127.0.0.1",
            )
            peers = [o.public_url for o in started]
            write_config(root, sponsor_server.url, peers, root=True, validator=False)
        cons = Consortium(
            tmp,
            job_spec,
            net,
            job_id,
            started,
            sponsor_store,
            proxy,
            hosts=hosts,
            sponsor_server=sponsor_server,
            root=root,
        )
        if start_nodes:
            for org in cons.nodes:
                cons.start(org)
        return cons
    except BaseException:
        for o in started:
            if o.server is not None:
                o.server.kill()
        if sponsor_server:
            sponsor_server.stop()
        net.stop()
        if hosts:
            hosts.remove()
        raise


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML's; a table is inline."""
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def _wait_serving(org: Org, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            HttpStore(org.store_url, timeout=1).has(b"\0" * 32)
            return
        except Exception:
            if org.server is None or org.server.poll() is not None:
                raise DeploymentError(f"org {org.index}'s `store serve` exited") from None
            time.sleep(0.1)
    raise DeploymentError(f"org {org.index}'s blob server did not start")
