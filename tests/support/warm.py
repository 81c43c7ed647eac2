"""A warm interpreter for the tests' command lines: `calibration-policy …`, `python script.py …` and
`python -c …` run in a child forked from a process that has already imported the library, instead of a new
interpreter paying half a second of imports each time (about 80 such commands a suite run).

The child is what a new process would be after its imports: forked from a server process that did nothing
but import (it never built the plugin manager, read a data folder or set a kill point), so no state of a test
leaks in; it gets the command's own working folder, environment (``PYTHONPATH`` put on ``sys.path`` as the
interpreter would), arguments and standard streams, runs the same ``main()`` the installed script runs, and
exits with its code. What it cannot reproduce is a module that reads the environment when imported; the
library has one such value (the kill point), set again in the child. Tests that are about a fresh
interpreter, another environment or another installation (an installed wheel, a pip-installed plugin, the
first decision's time) keep real subprocesses. ``CALIBRATION_POLICY_TEST_COLD=1`` runs every command in a
new interpreter, to check that both ways agree.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SERVER = Path(__file__).resolve()
BIN = Path(sys.executable).parent


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


class Warm:
    """One server per test process (the xdist worker), started at the first command, one command at a time."""

    def __init__(self) -> None:
        self._server: subprocess.Popen[bytes] | None = None
        self._pending = b""
        self._one_at_a_time = threading.Lock()  # a test's threads may each run a command

    def _start(self) -> subprocess.Popen[bytes]:
        if self._server is None or self._server.poll() is not None:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CALIBRATION_", "OPTIONS_AGENT_"))}
            self._server = subprocess.Popen(
                [sys.executable, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
            )
            self._pending = b""
            assert self._read(self._server, 120) == {"ready": True}, "the warm interpreter did not start"
        return self._server

    def _read(self, server: subprocess.Popen[bytes], timeout: float) -> dict[str, Any] | None:
        """The server's next answer (one JSON line), or None when ``timeout`` passed first."""
        assert server.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([server.stdout], [], [], left)[0]:
                return None
            chunk = os.read(server.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("the warm interpreter ended unexpectedly")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self._server is not None and self._server.poll() is None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            self._server.wait(timeout=30)

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
        argv = [str(a) for a in argv]
        env = dict(os.environ if env is None else env)
        cwd = str(cwd if cwd is not None else os.getcwd())
        if not warmable(argv, env):
            return subprocess.run(argv, cwd=cwd, env=env, input=input, capture_output=True, text=True, timeout=timeout)
        with self._one_at_a_time:
            return self._run(argv, cwd, env, input, timeout)

    def _run(
        self, argv: list[str], cwd: str, env: dict[str, str], input: str | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        server = self._start()
        assert server.stdin is not None
        with tempfile.TemporaryDirectory(prefix="warm-") as folder:
            streams = {name: os.path.join(folder, name) for name in ("stdin", "stdout", "stderr")}
            for path in streams.values():
                Path(path).write_text(input or "" if path == streams["stdin"] else "")
            server.stdin.write((json.dumps({"argv": argv, "cwd": cwd, "env": env, **streams}) + "\n").encode())
            server.stdin.flush()
            started = self._read(server, 60)
            assert started is not None, "the warm interpreter did not fork the command"
            ended = self._read(server, timeout)  # the server answers when the child has ended
            if ended is None:
                os.kill(started["pid"], 9)
                self._read(server, 60)
                raise subprocess.TimeoutExpired(argv, timeout)
            out, err = Path(streams["stdout"]).read_text(), Path(streams["stderr"]).read_text()
        return subprocess.CompletedProcess(argv, ended["code"], out, err)


_WARM = Warm()
atexit.register(_WARM.close)
run = _WARM.run


# -- the server, in its own process ----------------------------------------------------------------------


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the command, run it, exit with its code (no clean-up of the server's)."""
    import runpy
    import signal
    import traceback

    code = 0
    try:
        for number, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
            fd = os.open(request[name], os.O_RDONLY if number == 0 else os.O_WRONLY)
            os.dup2(fd, number)
            os.close(fd)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGINT else signal.default_int_handler)
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


def serve() -> None:
    import importlib

    atexit.unregister(_WARM.close)  # the client's, not the server's: a command's child runs only its own at exit

    for name in _modules_a_command_imports():
        if name not in sys.modules and not name.startswith("__"):
            try:
                importlib.import_module(name)
            except Exception:  # a module that only imports as part of its package's own start: left to the child
                pass
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    sys.path.pop(0)  # the tests folder: the commands see the installed packages only
    serve()
