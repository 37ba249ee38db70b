"""The network a local consortium runs on, and how a test breaks it.

A `TcpProxy` can stand between the nodes and the chain, or between the other organisations and
one organisation's blob server, so a test can cut either off and bring it back, the way a
network fails, without touching the processes. `NetHosts` puts each organisation on a network
host of its own, so organisations reach each other only over a (virtual) LAN.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import threading

from fedledger.errors import FedledgerError


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
