"""Start and stop a local anvil node (Foundry's EVM), installed from the npm registry.

`npm ci` in the repository root installs `@foundry-rs/anvil`, whose native binary
runs without Node. The integration tests and `fedledger devnet` use it as a
real JSON-RPC node on loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

from fedledger.errors import ChainUnavailable


def find_anvil() -> Path | None:
    """The anvil binary: $FEDLEDGER_ANVIL, the repo's node_modules, or PATH."""
    env = os.environ.get("FEDLEDGER_ANVIL")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[3]
    local = root / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if local.exists():
        return local
    found = shutil.which("anvil")
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AnvilNode:
    """A running anvil process; use as a context manager."""

    def __init__(
        self,
        *,
        port: int | None = None,
        accounts: int = 20,
        block_time: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        binary = find_anvil()
        if binary is None:
            raise ChainUnavailable("anvil is not installed: run `npm ci` in the repository root")
        self.port = port or free_port()
        self.url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}"
        args = [
            str(binary),
            "--host",
            host,
            "--port",
            str(self.port),
            "--accounts",
            str(accounts),
            "--silent",
        ]
        if block_time:
            args += ["--block-time", str(block_time)]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            self._wait_ready()
        except BaseException:  # a signal or Ctrl-C while it starts must not leave anvil running
            self.stop()
            raise

    def running(self) -> bool:
        return self._proc.poll() is None

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise ChainUnavailable(f"anvil exited at start: {err.strip()[:300]}")
            try:
                requests.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1)
                return
            except requests.exceptions.RequestException:
                time.sleep(0.02)
        self.stop()
        raise ChainUnavailable(f"anvil did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        """Terminates anvil and reaps it (killed if it has not exited within 5 s); idempotent."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stderr is not None:
            self._proc.stderr.close()

    def __enter__(self) -> AnvilNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
