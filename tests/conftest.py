"""Every test runs against its own data folders: nothing a test does reaches the repository's data/."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# The third-party domain the tests use in process is the one published as a package (tests/packages), so there
# is one quote-spreads domain, not a copy per test module; test_installed_domain.py installs it with pip.
sys.path.insert(0, str(REPO / "tests" / "packages" / "cp_quote_spreads"))
# `warm.run(argv, …)` / `warm.popen(argv, …)`: subprocess.run / Popen for `calibration-policy …` and `python …`
# command lines, in a child of an interpreter that has already imported the library (tests/support/warm.py). On
# sys.path, not only imported here, so that a test module's multiprocessing children (which get this sys.path)
# import it too.
sys.path.insert(0, str(REPO / "tests" / "support"))


@pytest.fixture(autouse=True)
def isolated_data_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("CALIBRATION_HISTORY_DIR", str(root / "calibration_runs"))
    monkeypatch.setenv("CALIBRATION_ARCHIVE_DIR", str(root / "config_archive"))
    monkeypatch.setenv("CALIBRATION_SUGGESTIONS_DIR", str(root / "suggestions"))
    monkeypatch.delenv("CALIBRATION_POLICY", raising=False)
    monkeypatch.delenv("CALIBRATION_PLUGINS_DIR", raising=False)
    monkeypatch.delenv("CALIBRATION_STORE", raising=False)


_WRITTEN_BY_A_RUN = ("calibration_runs", "config_archive", "suggestions", "outbox", "config")


_BEFORE_SETUP = pytest.StashKey[set[str]]()


def _checkout_data() -> set[str]:
    return {name for name in _WRITTEN_BY_A_RUN if (REPO / "data" / name).exists()}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    item.stash[_BEFORE_SETUP] = _checkout_data()  # before any fixture, a module's or a session's included
    return (yield)


@pytest.fixture(autouse=True)
def checkout_data_untouched(request: pytest.FixtureRequest) -> Any:
    """The test that writes a data folder into the checkout's data/ (itself or through a fixture it set up
    first, however wide its scope) fails itself, not a later, unrelated one."""
    yield
    before = request.node.stash.get(_BEFORE_SETUP, set())
    after = _checkout_data()
    assert after <= before, f"this test or a fixture it set up wrote {sorted(after - before)} into the checkout's data/"


def copy_of_the_repository(into: Path) -> Path:
    """What the host's plugin and the docs' examples read and write (examples/, data/), copied into ``into``."""
    for folder in ("examples", "data"):
        shutil.copytree(
            REPO / folder,
            into / folder,
            ignore=shutil.ignore_patterns("__pycache__", "calibration_runs", "config_archive", "suggestions", "*.lock"),
        )
    return into


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A fresh copy of what the host's plugin and the docs' examples read and write: the checkout never changes."""
    return copy_of_the_repository(tmp_path)


@dataclass(frozen=True)
class DemoRun:
    folder: Path  # never changed: tests copy it
    printed: str  # what the command printed on its standard output


@pytest.fixture(scope="session")
def demo_once(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> DemoRun:
    """`calibration-policy demo --out demo-output` (65 days of two underlyings, the options agent's plugins, the
    default policy), run once per test run, from a copy of the repository as a user runs it there. Test processes
    share it (the first to ask builds it under a lock), so the suite pays for one demo, not one per test."""
    import shell
    import warm
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    worker = hasattr(request.config, "workerinput")  # an xdist worker: the workers share their base's parent
    shared = base.parent if worker else base
    where, done = shared / "demo-once", shared / "demo-once.txt"
    with FileLock(shared / "demo-once.lock"):
        if not done.exists():
            shutil.rmtree(where, ignore_errors=True)  # a build that failed half-way
            copy_of_the_repository(where)
            env = shell.host_environment(where)
            ran = warm.run(["calibration-policy", "demo", "--out", "demo-output"], cwd=where, env=env)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            (shared / "demo-once.tmp").write_text(ran.stdout)
            (shared / "demo-once.tmp").rename(done)
    return DemoRun(where / "demo-output", done.read_text())


@pytest.fixture(scope="session")
def pristine_repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy for the session, for session fixtures that build something once (tests copy what they change)."""
    return copy_of_the_repository(tmp_path_factory.mktemp("repository"))


def _within(seconds: float, call: Callable[[], Any]) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for more than {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def within() -> Callable[[float, Callable[[], Any]], Any]:
    """``within(seconds, call)``: ``call()`` in a thread; fails instead of hanging if it blocks (a FIFO opened for reading)."""
    return _within


@dataclass(frozen=True)
class Killed:
    returncode: int  # durable.KILL_EXIT_CODE: killed at the step; 0: it ran to its end first; 1: it raised
    stderr: str


def _child(main: Callable[[], Any], kill_at: int, out: int, err: int) -> None:
    """In a forked child: ``main``, then out without any clean-up, as a SIGKILL would leave it."""
    import traceback

    from calibration_policy import durable

    code = 0
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
        durable.set_kill_point(kill_at)
        main()
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _forked(main: Callable[[], Any], kill_at: int, timeout: float) -> Killed:
    import signal
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            _child(main, kill_at, err.fileno(), err.fileno())
        deadline = time.monotonic() + timeout
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"the forked change was still running after {timeout:g} s")
            time.sleep(0.002)
        err.seek(0)
        return Killed(os.waitstatus_to_exitcode(done[1]), err.read().decode(errors="replace"))


def _run_script(text: str, argv: list[str]) -> None:
    sys.argv = ["child.py", *argv]
    exec(compile(text, "child.py", "exec"), {"__name__": "__main__"})


class Spawned:
    """A forked child that works until it ends or is killed, with the few ``Popen`` methods the tests use:
    its stdout is a pipe to read, its stderr kept in a file (``stderr_text``)."""

    def __init__(self, main: Callable[[], Any]) -> None:
        import tempfile

        self._err = tempfile.TemporaryFile()
        read, write = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(read)
            _child(main, 0, write, self._err.fileno())
        os.close(write)
        self.stdout = os.fdopen(read, "r")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"child {self.pid} still running after {timeout:g} s")
            time.sleep(0.002)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signal_number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signal_number)

    def kill(self) -> None:
        import signal

        self.send_signal(signal.SIGKILL)

    def stderr_text(self) -> str:
        self._err.seek(0)
        return self._err.read().decode(errors="replace")


class Fork:
    """A change run in a forked child that dies (``os._exit``) just before its n-th durable step, as
    ``$CALIBRATION_POLICY_KILL_AT`` does in a fresh interpreter, at a few milliseconds a kill point instead of
    half a second of imports. The child inherits the environment and the loaded modules; the stores open their
    own connections in it (they are kept per process)."""

    def call(self, main: Callable[[], Any], kill_at: int, timeout: float = 120) -> Killed:
        return _forked(main, kill_at, timeout)

    def script(self, text: str, argv: list[str], kill_at: int, timeout: float = 120) -> Killed:
        """The child script ``text`` as ``python script argv…`` would run it, killed at ``kill_at``."""

        return _forked(lambda: _run_script(text, argv), kill_at, timeout)

    def spawn(self, text: str, argv: list[str]) -> Spawned:
        """The child script ``text`` started as ``python script argv…`` would start it, left to run."""
        return Spawned(lambda: _run_script(text, argv))


@pytest.fixture
def fork() -> Fork:
    """``fork.call(fn, kill_at)`` / ``fork.script(text, argv, kill_at)``: a change killed before a durable step."""
    return Fork()


def _helper_module(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pg_server = _helper_module("pg_server")


@pytest.fixture(scope="session")
def postgres_server():
    """A private PostgreSQL server for the whole session (initdb + pg_ctl into a temp folder).

    Skipped, loudly, only where the binaries cannot be had; in CI (``CI`` set) that is a failure."""
    why = pg_server.why_unavailable()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"The PostgreSQL store tests cannot run in CI: {why}.")
        pytest.skip(f"PostgreSQL STORE TESTS SKIPPED: {why}.")
    server = pg_server.Server().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """A new database on the session's server, its tables created (``db upgrade``)."""
    from calibration_policy.default_plugins.postgresql.schema import upgrade
    from calibration_policy.stores import close_all

    url = postgres_server.new_database()
    upgrade(url)
    yield url
    close_all()


@pytest.fixture(params=["files", "postgresql"])
def store_url(request, monkeypatch):
    """Each test that takes it runs on both stores: the data folder ("files") and a fresh PostgreSQL database."""
    from calibration_policy.stores import STORE_ENV

    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv(STORE_ENV, url)
        return url
    monkeypatch.delenv(STORE_ENV, raising=False)
    return "files"


def _digest(root: Path, store_url: str = "files") -> dict[str, str]:
    """Every file below ``root`` and, on PostgreSQL, every row of every table, as hashes: what "nothing was
    written" is checked against."""
    import hashlib

    found = {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    if store_url != "files":
        import psycopg

        with psycopg.connect(store_url) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
            ).fetchall()
            for (table,) in tables:
                rows = conn.execute(f'SELECT * FROM "{table}" ORDER BY 1').fetchall()
                found[f"table {table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return found


@pytest.fixture
def data_digest() -> Callable[..., dict[str, str]]:
    """``data_digest(root, store_url="files")``: hashes of the data root's files and the database's rows."""
    return _digest
