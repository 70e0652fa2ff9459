"""A PostgreSQL server of a test's own (initdb in a temporary directory), to stop and start.

The suite's shared server on 127.0.0.1:5432 serves other tests at the same time: it is never
stopped. This one listens on a free loopback port, with its socket in its own directory, and
trusts local connections (loopback only). As root, the server runs as the `postgres` user
(PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from scripts.processes import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def unavailable() -> str:
    """Why a private server cannot run here ("" when it can)."""
    if not all((BIN / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
        return f"PostgreSQL server binaries are not in {BIN}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres user to run the server as"
    return ""


class PrivatePostgres:
    """initdb, then start/stop at will; `url(database)` for clients. Its directory is a new
    one under the system's temporary directory (pytest's are closed to other users, and the
    server may run as `postgres`), removed by `remove` with the server stopped."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=60)

    def init(self) -> PrivatePostgres:
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run(
            str(BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(BIN / "pg_ctl"),
            "start",
            "-D",
            str(self.data),
            "-w",  # returns once the server accepts connections
            "-l",
            str(self.directory / "server.log"),
            "-o",
            options,
        )

    def stop(self) -> None:
        self._run(str(BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        """Stop the server if it runs, and delete its files."""
        if self.running():
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
