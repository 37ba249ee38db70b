"""A consortium of organisation nodes as real OS processes on one machine: tests, benches, demos.

Each organisation runs `fedledger store serve` for its own blobs and `fedledger node` for its
roles; the chain is `start_devnet` (anvil). The running consortium is `nodes.Consortium`; the
fault proxies and network hosts it can stand on are in `network.py`. With `tls` every blob
server speaks https with the given certificate and the nodes trust its CA; with `auditors` the
spec's readers are the committee and those keys, so updates are sealed and reads signed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from fedledger.chain.anvil import free_port
from fedledger.chain.base import dev_accounts
from fedledger.codec.blob import encode_tensors
from fedledger.roles.devnet import start_devnet
from fedledger.roles.keys import reader_entry
from fedledger.roles.model import quantize_model
from fedledger.roles.outcome import model_metadata
from fedledger.roles.sponsor import create_job
from fedledger.sim.network import DeploymentError, NetHosts, TcpProxy
from fedledger.sim.nodes import Consortium, Org, TlsFiles
from fedledger.spec import JobSpec
from fedledger.store.http import BlobServer, HttpStore
from fedledger.store.local import LocalStore
from fedledger.training.consortium import initial_model
from fedledger.training.torch_client import get_weights, weight_names

__all__ = [
    "BASE_SPEC",
    "Consortium",
    "DeploymentError",
    "NetHosts",
    "Org",
    "TcpProxy",
    "TlsFiles",
    "start_consortium",
]

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
    tls: TlsFiles | None = None,
    auditors: Sequence[LocalAccount] | None = None,
) -> Consortium:
    """A devnet, a job, and per organisation a blob server and (unless told not to) a node.

    With `network_hosts`, every organisation's blob server and node run on a host of its own
    (`NetHosts`) and the chain listens on the bridge; the proxies need loopback and are refused.
    An own-data job (`spec` with a data_schema) takes each organisation's `[data]` table in
    `data`, one mapping (source, and query for databases) per organisation.

    `tls` (a certificate for 127.0.0.1 and its CA) puts every blob server on https; `auditors`
    (possibly none) makes the spec's readers the committee plus those keys, each server then
    serving reads signed by a reader only and the trainers sealing their updates to them.

    An optimistic-mode job is delegated to optimistic.vy by the sponsor as it is created; the
    nodes bond themselves.
    """
    if network_hosts and (rpc_proxy or store_proxies):
        raise DeploymentError("the fault proxies listen on loopback: not with network_hosts")
    if (tls or auditors is not None) and (network_hosts or store_proxies):
        raise DeploymentError("TLS and reader lists are for loopback blob servers without proxies")
    fields = {**BASE_SPEC, "trainers": orgs, **(spec or {})}
    readers: list[LocalAccount] = []
    if auditors is not None:  # the committee is dev:1..orgs (start_devnet's accounts)
        readers = [*dev_accounts(orgs + 1)[1:], *auditors]
        fields["readers"] = [reader_entry(a) for a in readers]
    job_spec = JobSpec.from_dict(fields)
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
        if job_spec.optimistic:
            from fedledger.roles.optimistic import delegate_job, num_params

            params = num_params(LocalStore(sponsor_store).get_tensors(initial))
            committee = [a.address for a in members]
            delegate_job(net.deployment, net.accounts[0], job_spec, job_id, params, committee=committee)
        sponsor_server = BlobServer(
            sponsor_store,
            [net.accounts[0].address],
            host=hosts.gateway if hosts else "127.0.0.1",
            tls=(tls.cert, tls.key) if tls else None,
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
                scheme="https" if tls else "http",
            )
            secure = ["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)] if tls else []
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
                    *secure,
                    *(f for r in readers for f in ("--reader", r.address)),
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
                **({"ca_bundle": str(tls.ca)} if tls else {}),
                **own,
                "store": store,
                "peers": peers,
                "poll_seconds": 0.1,
                **(node_options or {}),
            }
            org.config.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in fields.items()))

        for org, acct in zip(started, members, strict=True):
            _wait_serving(org, acct, tls)
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
                scheme="https" if tls else "http",
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
            tls=tls,
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


def _wait_serving(org: Org, account: LocalAccount, tls: TlsFiles | None, timeout: float = 90) -> None:
    """Until the organisation's server answers a read signed by its own key (a reader's, if any).

    90 s, not 30: on a shared 2-core host, four servers importing their stack at once have taken
    longer than 30 s to answer (a server that exits is still reported at once)."""
    deadline = time.monotonic() + timeout
    store = HttpStore(org.store_url, account, timeout=1, ca_bundle=tls.ca if tls else None)
    while time.monotonic() < deadline:
        try:
            store.has(b"\0" * 32)
            return
        except Exception:
            if org.server is None or org.server.poll() is not None:
                raise DeploymentError(f"org {org.index}'s `store serve` exited") from None
            time.sleep(0.1)
    raise DeploymentError(f"org {org.index}'s blob server did not start")
