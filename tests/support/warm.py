"""A warm interpreter for the tests' command lines: `calibration-policy …`, `python script.py …` and
`python -c …` run in a child forked from a process that has already imported the library, instead of a new
interpreter paying half a second of imports each time (about 80 such commands a suite run, and a few hundred
drivers the concurrency, crash and kill tests start and SIGKILL).

``run`` is ``subprocess.run(capture_output=True, text=True)``; ``popen`` is ``subprocess.Popen``: any number at
once, each its own process (its own pid to signal, its own memory, its exit code or the signal that ended it),
its standard streams the very pipes, files or ``/dev/null`` asked for (handed to the server as descriptors).

The child is what a new process would be after its imports: forked from a server process that did nothing
but import (it never built the plugin manager, read a data folder or set a kill point), so no state of a test
leaks in; it gets the command's own working folder, environment (``PYTHONPATH`` put on ``sys.path`` as the
interpreter would), arguments and standard streams, runs the same ``main()`` the installed script runs, and
exits with its code. What it cannot reproduce is a module that reads the environment when imported; the
library has one such value (the kill point), set again in the child. Tests that are about a fresh
interpreter, another environment or another installation (an installed wheel, a pip-installed plugin, the
first decision's time, what an import loads) keep real subprocesses. ``CALIBRATION_POLICY_TEST_COLD=1`` runs
every command in a new interpreter, to check that both ways agree.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

SERVER = Path(__file__).resolve()
BIN = Path(sys.executable).parent
PIPE, DEVNULL, STDOUT = subprocess.PIPE, subprocess.DEVNULL, subprocess.STDOUT
Stream = int | IO[Any] | None


def _ours(word: str, env: dict[str, str], program: Path) -> bool:
    """``word``, looked up on the command's own PATH, is ``program`` of this environment (not another install's)."""
    found = shutil.which(word, path=env.get("PATH")) if os.sep not in word else word
    return found is not None and os.path.realpath(found) == os.path.realpath(program)


def warmable(argv: list[str], env: dict[str, str]) -> bool:
    """The command lines the warm interpreter runs exactly as a new one would."""
    if not argv or os.environ.get("CALIBRATION_POLICY_TEST_COLD"):
        return False
    if os.path.basename(argv[0]) == "calibration-policy":
        return _ours(argv[0], env, BIN / "calibration-policy")
    python = _ours(argv[0], env, Path(sys.executable))
    return python and len(argv) > 1 and (argv[1] == "-c" or not argv[1].startswith("-"))


class Process:
    """A command running in the warm interpreter, with ``subprocess.Popen``'s methods the tests use: ``pid``,
    ``poll``, ``wait``, ``communicate``, ``send_signal``/``kill``/``terminate``, and ``stdin``/``stdout``/
    ``stderr`` as real pipes when asked for with ``PIPE``."""

    def __init__(self, warm: Warm, number: int, args: list[str], pid: int, pipes: dict[str, IO[Any] | None]) -> None:
        self._warm, self._number, self.args, self.pid = warm, number, args, pid
        self.stdin, self.stdout, self.stderr = pipes["stdin"], pipes["stdout"], pipes["stderr"]
        self.returncode: int | None = None
        self._readers: dict[str, tuple[threading.Thread, list[bytes | str]]] = {}

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._warm._code(self._number, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._warm._code(self._number, timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None:  # not reaped yet, so the pid is still this child's
            os.kill(self.pid, number)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def communicate(self, input: Any = None, timeout: float | None = None) -> tuple[Any, Any]:
        """Feed ``input``, read both pipes to their end and wait, as ``Popen.communicate`` does (a second call
        after a timeout goes on where the first stopped)."""
        if self.stdin is not None and not self.stdin.closed:
            try:
                if input:
                    self.stdin.write(input)
                self.stdin.close()
            except BrokenPipeError:  # the command ended without reading it all, as Popen allows
                pass
        for name in ("stdout", "stderr"):
            stream = getattr(self, name)
            if stream is not None and name not in self._readers:
                chunks: list[bytes | str] = []
                reader = threading.Thread(target=lambda s=stream, c=chunks: c.append(s.read()), daemon=True)
                reader.start()
                self._readers[name] = (reader, chunks)
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader, _ in self._readers.values():
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        got = []
        for name in ("stdout", "stderr"):
            if name in self._readers:
                getattr(self, name).close()
                got.append(self._readers[name][1][0])
            else:
                got.append(None)
        return got[0], got[1]

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        self.wait()


class Warm:
    """One server per test process (the xdist worker), started at the first command; any number of commands
    at once. The standard streams go to the server as file descriptors (``socket.send_fds``), so a command's
    pipes, files and ``/dev/null`` are the very ones a ``Popen`` would give it."""

    def __init__(self) -> None:
        self._server: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        self._numbers = itertools.count(1)
        self._answers: dict[int, dict[str, Any]] = {}
        self._changed = threading.Condition()
        self._sending = threading.Lock()

    def _start(self) -> socket.socket:
        if self._server is None or self._server.poll() is not None or self._socket is None:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CALIBRATION_", "OPTIONS_AGENT_"))}
            self._server = subprocess.Popen(
                [sys.executable, str(SERVER), str(theirs.fileno())], pass_fds=[theirs.fileno()], env=env
            )
            theirs.close()
            ours.settimeout(120)
            assert json.loads(ours.recv(1024)) == {"ready": True}, "the warm interpreter did not start"
            ours.settimeout(None)
            self._socket = ours
            threading.Thread(target=self._listen, args=(ours,), daemon=True).start()
        return self._socket

    def _listen(self, server: socket.socket) -> None:
        """Answers from the server: each command's pid once forked, its exit code once reaped."""
        while answer := server.recv(1024):
            message = json.loads(answer)
            with self._changed:
                self._answers.setdefault(message.pop("number"), {}).update(message)
                self._changed.notify_all()
        with self._changed:  # the server is gone: no command of it will ever end
            for answer in self._answers.values():
                answer.setdefault("code", -signal.SIGKILL)
            self._changed.notify_all()

    def _await(self, number: int, key: str, timeout: float | None) -> Any:
        with self._changed:
            self._changed.wait_for(lambda: key in self._answers.get(number, {}), timeout)
            return self._answers.get(number, {}).get(key)

    def _code(self, number: int, timeout: float | None) -> int | None:
        code = self._await(number, "code", timeout)
        if code is not None:
            with self._changed:
                del self._answers[number]
        return code

    def close(self) -> None:
        if self._socket is not None and self._server is not None:
            with contextlib.suppress(OSError):  # a server already gone has nothing left to end
                self._socket.shutdown(socket.SHUT_RDWR)  # the server kills what still runs, then ends
            self._server.wait(timeout=30)

    def popen(
        self,
        argv: list[str],
        *,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        stdin: Stream = None,
        stdout: Stream = None,
        stderr: Stream = None,
        text: bool = False,
    ) -> Process | subprocess.Popen[Any]:
        """``subprocess.Popen(argv, …)``, in the warm interpreter when it can run the command alike."""
        argv = [str(a) for a in argv]
        env = dict(os.environ if env is None else env)
        cwd = str(cwd if cwd is not None else os.getcwd())
        if not warmable(argv, env):
            return subprocess.Popen(argv, cwd=cwd, env=env, stdin=stdin, stdout=stdout, stderr=stderr, text=text)
        sent: list[int] = []  # the child's ends, closed here once the server has them
        pipes: dict[str, IO[Any] | None] = {}
        for number, (name, spec) in enumerate((("stdin", stdin), ("stdout", stdout), ("stderr", stderr))):
            pipes[name] = None
            if spec == STDOUT and name == "stderr":
                sent.append(os.dup(sent[1]))
            elif spec == PIPE:
                read, write = os.pipe()
                ours, theirs = (write, read) if number == 0 else (read, write)
                pipes[name] = os.fdopen(ours, ("w" if number == 0 else "r") + ("" if text else "b"))
                sent.append(theirs)
            elif spec == DEVNULL:
                sent.append(os.open(os.devnull, os.O_RDWR))
            else:
                sent.append(os.dup(number if spec is None else spec if isinstance(spec, int) else spec.fileno()))
        number = next(self._numbers)
        request = json.dumps({"number": number, "argv": argv, "cwd": cwd, "env": env}).encode()
        try:
            with self._sending:
                socket.send_fds(self._start(), [request], sent)
        finally:
            for fd in sent:
                os.close(fd)
        pid = self._await(number, "pid", 60)
        assert pid is not None, "the warm interpreter did not fork the command"
        return Process(self, number, argv, pid, pipes)

    def run(
        self,
        argv: list[str],
        *,
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """``subprocess.run(argv, capture_output=True, text=True, …)``, in the warm interpreter when it can."""
        process = self.popen(argv, cwd=cwd, env=env, stdin=PIPE, stdout=PIPE, stderr=PIPE, text=True)
        try:
            out, err = process.communicate(input, timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        assert process.returncode is not None
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)


_WARM = Warm()
atexit.register(_WARM.close)
run = _WARM.run
popen = _WARM.popen


# -- the server, in its own process ----------------------------------------------------------------------


def _child(request: dict[str, Any]) -> None:
    """In the forked child, its standard streams already in place: become the command, run it, exit with its
    code (no clean-up of the server's)."""
    import runpy
    import traceback

    code = 0
    try:
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # SIGPIPE stays ignored, as Python sets it
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from calibration_policy import durable

        durable.set_kill_point(int(os.environ.get("CALIBRATION_POLICY_KILL_AT", "0") or 0))
        argv: list[str] = request["argv"]
        extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if os.path.basename(argv[0]) == "calibration-policy":
            sys.argv = [argv[0], *argv[1:]]
            sys.path[:1] = [*extra, os.path.dirname(sys.executable)]
            from calibration_policy.cli import main

            code = main() or 0
        elif argv[1] == "-c":
            sys.argv = ["-c", *argv[3:]]
            sys.path[:1] = ["", *extra]
            exec(compile(argv[2], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        else:
            script = os.path.abspath(argv[1])
            sys.argv = [argv[1], *argv[2:]]
            sys.path[:1] = [os.path.dirname(script), *extra]
            runpy.run_path(script, run_name="__main__")
    except SystemExit as exit:
        if exit.code is None or isinstance(exit.code, int):
            code = exit.code or 0
        else:
            print(exit.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            atexit._run_exitfuncs()  # what the interpreter runs at its exit
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _modules_a_command_imports() -> list[str]:
    """What a `calibration-policy` process has imported once its commands are built, found in a forked probe
    so that this process holds no plugin manager, only the modules."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            from calibration_policy.cli import build_cli

            build_cli()
            os.write(write, json.dumps(sorted(sys.modules)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        names: list[str] = json.loads(answer.read() or b"[]")
    os.waitpid(pid, 0)
    return names


def serve(fd: int) -> None:
    import importlib

    atexit.unregister(_WARM.close)  # the client's, not the server's: a command's child runs only its own at exit
    client = socket.socket(fileno=fd)
    for name in _modules_a_command_imports():
        if name not in sys.modules and not name.startswith("__"):
            try:
                importlib.import_module(name)
            except Exception:  # a module that only imports as part of its package's own start: left to the child
                pass
    wake, woken = os.pipe()  # a byte here when a child ends (SIGCHLD), so one select waits for both
    os.set_blocking(woken, False)
    signal.set_wakeup_fd(woken)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    running: dict[int, int] = {}  # pid → the client's number for the command

    def reap() -> None:
        for pid in list(running):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                answer = {"number": running.pop(pid), "code": os.waitstatus_to_exitcode(status)}
                client.send(json.dumps(answer).encode())

    client.send(json.dumps({"ready": True}).encode())
    while True:
        if wake in select.select([client, wake], [], [])[0]:
            os.read(wake, 4096)
            reap()
            continue
        message, fds, _, _ = socket.recv_fds(client, 1 << 20, 3)
        if not message:  # the client is gone: so is what it started
            for pid in running:
                os.kill(pid, signal.SIGKILL)
            return
        request = json.loads(message)
        pid = os.fork()
        if pid == 0:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            for number, stream in enumerate(fds):
                os.dup2(stream, number)
            os.closerange(3, 1 << 16)  # the server's socket and pipe, and whatever else it held
            _child(request)
        for stream in fds:
            os.close(stream)
        running[pid] = request["number"]
        client.send(json.dumps({"number": request["number"], "pid": pid}).encode())
        reap()  # one that ended before it was in ``running`` woke the select too early


if __name__ == "__main__":
    sys.path.pop(0)  # the tests folder: the commands see the installed packages only
    serve(int(sys.argv[1]))
