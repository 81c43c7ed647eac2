"""A throwaway PostgreSQL server for the store tests and the benchmarks: initdb + pg_ctl into a
temporary folder, on a free local port, stopped and deleted at the end. No server to set up.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user (runuser).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

PASSWORD = "calibration-test"


def bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: on PATH, else Debian's versioned folder (newest first)."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def runuser() -> str | None:
    """runuser lives in /usr/sbin, which a bare PATH (cron, CI's env -i) may lack."""
    return shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.path.exists(p)), None
    )


def why_unavailable() -> str | None:
    """None when a server can be started here, else what is missing, in a sentence."""
    if bin_dir() is None:
        return "PostgreSQL's initdb/pg_ctl are not installed (Debian: apt-get install postgresql; scripts/test.sh does it as root)"
    if os.geteuid() == 0 and runuser() is None:
        return "running as root, and runuser (to start PostgreSQL as the postgres user) is missing"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``with Server() as server: server.url`` — a superuser URL of a fresh, private server."""

    def __init__(self, fsync: bool = False) -> None:
        self.fsync = fsync
        self.folder = Path(tempfile.mkdtemp(prefix="calibration-pg-"))
        self.port = _free_port()
        self.url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        prefix = [runuser(), "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run(prefix + list(args), capture_output=True, text=True, cwd="/")
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
            )

    def start(self) -> Server:
        bins = bin_dir()
        if bins is None:
            raise RuntimeError(why_unavailable())
        data = self.folder / "data"
        (self.folder / "pw").write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            shutil.chown(self.folder / "pw", "postgres", "postgres")
        self._run(
            str(bins / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--pwfile",
            str(self.folder / "pw"),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} "
            f"-c max_connections=200 -c fsync={'on' if self.fsync else 'off'} "
            f"-c synchronous_commit={'on' if self.fsync else 'off'} -c full_page_writes={'on' if self.fsync else 'off'}"
        )
        self._run(str(bins / "pg_ctl"), "-D", str(data), "-l", str(self.folder / "log"), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        bins = bin_dir()
        if bins is not None and (self.folder / "data" / "postmaster.pid").exists():
            try:
                self._run(str(bins / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def new_database(self) -> str:
        """A URL of a new, empty database on this server (one per test: nothing leaks between tests)."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_ready(url: str, seconds: float = 10.0) -> None:
    import psycopg

    deadline = time.monotonic() + seconds
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
