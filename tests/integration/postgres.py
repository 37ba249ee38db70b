"""A real, throwaway PostgreSQL server for the integration tests (Debian's postgresql package).

`make test` installs the package when `initdb` is missing. The server lives in a temporary
directory, listens on 127.0.0.1 on a free port (its socket in the same directory), trusts
local connections, and is stopped and removed at teardown. PostgreSQL refuses to run as
root, and CI runs as root: then initdb and pg_ctl run as the `postgres` system user (via
`runuser`) in a directory chowned to it; otherwise they run as the current user.

One role, PASSWORD_ROLE, must log in with a password over TCP (scram-sha-256), so a test
can see what a wrong password does; `password_url` creates it.

Use it from a test module with `from postgres import postgres  # noqa: F401` (the session
fixture), or call `start_postgres()` directly.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PASSWORD_ROLE = "fedledger_pw"
DEBIAN_BINS = Path("/usr/lib/postgresql")


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl are: PATH first, then Debian's newest /usr/lib/postgresql/N/bin."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    if DEBIAN_BINS.is_dir():
        versions = sorted((p for p in DEBIAN_BINS.iterdir() if (p / "bin" / "initdb").exists()),
                          key=lambda p: int(p.name) if p.name.isdigit() else 0)
        if versions:
            return versions[-1] / "bin"
    return None


@dataclass
class PostgresServer:
    """A running server: connect as `user` to 127.0.0.1:`port` (trust auth), database `postgres`."""

    root: Path
    port: int
    user: str
    bindir: Path
    _as: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """A URL for `DataSource` (psycopg 3 through SQLAlchemy)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string for psycopg directly."""
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Runs statements with autocommit (CREATE DATABASE cannot run in a transaction)."""
        import psycopg

        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql.encode())

    def create_database(self, name: str) -> str:
        """A fresh database; returns its URL."""
        self.execute(f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
        return self.url(name)

    def password_url(self, password: str, database: str = "postgres") -> str:
        """Creates (or resets) PASSWORD_ROLE with `password`; the URL logs in with it."""
        self.execute(
            f"DO $$ BEGIN CREATE ROLE {PASSWORD_ROLE} LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            f"ALTER ROLE {PASSWORD_ROLE} PASSWORD '{password}'",
            f"GRANT pg_read_all_data TO {PASSWORD_ROLE}",
        )
        return f"postgresql://{PASSWORD_ROLE}:{password}@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        """Stops the server (fast shutdown) and removes its directory."""
        try:
            subprocess.run([*self._as, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                            "-w", "stop"], capture_output=True, timeout=60, check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_postgres(attempts: int = 3) -> PostgresServer:
    """initdb + pg_ctl start in a new temporary directory; raises RuntimeError with the server's log."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed: run `make test` (it installs Debian's postgresql)")
    root = Path(tempfile.mkdtemp(prefix="fedledger-pg-"))
    as_root = os.geteuid() == 0
    runas = ["runuser", "-u", "postgres", "--"] if as_root else []
    user = "postgres" if as_root else getpass.getuser()
    if as_root:
        shutil.chown(root, "postgres", "postgres")
    server = PostgresServer(root=root, port=0, user=user, bindir=bindir, _as=runas)
    try:
        subprocess.run(
            [*runas, str(bindir / "initdb"), "-D", str(server.data), "-U", user, "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, timeout=120, check=True,
        )
        (server.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        for _ in range(attempts):
            server.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off")
            proc = subprocess.run(
                [*runas, str(bindir / "pg_ctl"), "-D", str(server.data), "-l", str(root / "server.log"),
                 "-o", opts, "-w", "-t", "60", "start"],
                capture_output=True, text=True, timeout=90, check=False,
            )
            if proc.returncode == 0:
                return server
        log = (root / "server.log").read_text() if (root / "server.log").exists() else proc.stderr
        raise RuntimeError(f"PostgreSQL did not start on 127.0.0.1: {log[-2000:]}")
    except subprocess.CalledProcessError as e:
        server.stop()
        raise RuntimeError(f"initdb failed: {e.stderr[-2000:]}") from None
    except BaseException:
        server.stop()
        raise


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (never skipped: a missing install fails)."""
    try:
        server = start_postgres()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield server
    finally:
        server.stop()
