"""A throwaway PostgreSQL server on 127.0.0.1, for tests and benchmarks.

initdb into a temporary folder, pg_ctl on a free loopback port with trust auth, stopped (and the
folder removed) on exit. As root the server runs as the `postgres` user, which PostgreSQL
requires. Needs the server binaries (Debian: `apt-get install postgresql`).

    with LocalPostgres() as pg:
        url = pg.create_database("topics")   # postgresql://postgres@127.0.0.1:PORT/topics
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin")


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for pattern in SEARCH:
        for d in sorted(glob.glob(pattern), reverse=True):
            if os.access(os.path.join(d, name), os.X_OK):
                return os.path.join(d, name)
    raise PostgresMissing(f"{name} not found on PATH or in {', '.join(SEARCH)}; "
                          "install the server (Debian: apt-get install postgresql)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_database(server_url: str, name: str | None = None) -> str:
    """A new empty database on the server at `server_url`; its URL."""
    import psycopg

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


class LocalPostgres:
    def __init__(self, max_connections: int = 200):
        self.max_connections = max_connections
        self.port = _free_port()
        self.dir: Path | None = None
        self._as_user: list[str] = []

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as_user, *cmd], check=True, capture_output=True, text=True)

    def start(self) -> LocalPostgres:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        self.dir = Path(tempfile.mkdtemp(prefix="topics-pg-"))
        data = self.dir / "data"
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            if subprocess.run(["id", "-u", "postgres"], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
            shutil.chown(self.dir, "postgres")
            os.chmod(self.dir, 0o700)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        try:
            self._run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
            opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.dir} "
                    f"-c max_connections={self.max_connections} -c fsync=off -c synchronous_commit=off "
                    "-c full_page_writes=off")
            self._run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(self.dir / "server.log"), "-w", "-t", "60",
                      "start")
        except subprocess.CalledProcessError as e:
            log = (self.dir / "server.log").read_text() if (self.dir / "server.log").exists() else ""
            self.stop()
            raise RuntimeError(f"could not start PostgreSQL: {e.stderr or e.stdout}\n{log[-2000:]}") from e
        return self

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        return create_database(self.url, name)

    def stop(self) -> None:
        if self.dir is None:
            return
        data = self.dir / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run([*self._as_user, find_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
