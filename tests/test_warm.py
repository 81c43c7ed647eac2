"""The warm interpreter (tests/support/warm.py) runs a command line as a new interpreter would: same output,
exit code, arguments, working folder, environment, standard input and ``sys.path``, and no state from the server
or from the command before it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import warm

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("CALIBRATION_POLICY_TEST_COLD")),
    reason="CALIBRATION_POLICY_TEST_COLD=1 turns the warm interpreter off, so there is none to test",
)

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from calibration_policy import durable
    from calibration_policy.plugins import get_plugin_manager
    print(json.dumps({
        "argv": sys.argv, "cwd": os.getcwd(), "word": os.environ.get("WORD"), "stdin": sys.stdin.read(),
        "path0": sys.path[0], "extra_on_path": os.environ.get("EXTRA", "-") in sys.path,
        "kill_at": durable._kill_at, "plugins": sorted(n for n, _ in get_plugin_manager().list_name_plugin()),
    }))
    sys.exit(int(os.environ.get("CODE", "0")))
    """
)


def both(argv: list[str], **kwargs) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    assert warm.warmable(argv, kwargs.get("env") or dict(os.environ))
    cold = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
    return warm.run(argv, **kwargs), cold


@pytest.mark.parametrize("how", ["script", "-c"])
def test_a_python_command_sees_what_a_new_interpreter_sees(tmp_path, how):
    script = tmp_path / "where" / "show.py"
    script.parent.mkdir()
    script.write_text(SCRIPT)
    (tmp_path / "extra").mkdir()
    env = dict(os.environ, WORD="hello", CODE="3", EXTRA=str(tmp_path / "extra"), PYTHONPATH=str(tmp_path / "extra"))
    env["CALIBRATION_POLICY_KILL_AT"] = "7"
    argv = [sys.executable, str(script), "a b", "--x"] if how == "script" else [sys.executable, "-c", SCRIPT, "a b"]
    hot, cold = both(argv, cwd=tmp_path, env=env, input="typed\n")
    assert (hot.returncode, hot.stdout, hot.stderr) == (cold.returncode, cold.stdout, cold.stderr)
    assert cold.returncode == 3 and '"kill_at": 7' in cold.stdout and '"extra_on_path": true' in cold.stdout


def test_the_command_line_prints_and_exits_alike(tmp_path):
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1")
    for argv in (
        ["calibration-policy", "--help"],
        ["calibration-policy", "update", "--bogus"],
        ["calibration-policy", "history", "SPY", "--data", str(tmp_path / "nothing")],
    ):
        hot, cold = both(argv, cwd=tmp_path, env=env)
        assert (hot.returncode, hot.stdout, hot.stderr) == (cold.returncode, cold.stdout, cold.stderr), argv


def test_a_plugin_folder_in_one_command_is_not_in_the_next(tmp_path):
    plugins = Path(__file__).resolve().parents[1] / "examples" / "options_agent" / "plugins"
    argv = ["calibration-policy", "plugins"]
    with_host = warm.run(argv, cwd=tmp_path, env=dict(os.environ, CALIBRATION_PLUGINS_DIR=str(plugins)))
    env = {k: v for k, v in os.environ.items() if k != "CALIBRATION_PLUGINS_DIR"}
    without, cold = both(argv, cwd=tmp_path, env=env)
    assert without.stdout == cold.stdout
    assert "calibration_policy_host" in with_host.stdout and "calibration_policy_host" not in without.stdout


def test_commands_it_cannot_run_alike_run_in_a_new_process(tmp_path):
    assert not warm.warmable([sys.executable, "-m", "calibration_policy", "--help"], dict(os.environ))
    assert not warm.warmable(["bash", "-c", "echo hi"], dict(os.environ))
    other = tmp_path / "bin"
    other.mkdir()
    (other / "calibration-policy").write_text("#!/bin/sh\necho another install\n")
    (other / "calibration-policy").chmod(0o755)
    env = dict(os.environ, PATH=f"{other}{os.pathsep}{os.environ['PATH']}")
    assert not warm.warmable(["calibration-policy", "--help"], env)
    assert warm.run(["calibration-policy", "--help"], env=env).stdout == "another install\n"


def test_a_command_past_its_time_is_killed():
    with pytest.raises(subprocess.TimeoutExpired):
        warm.run([sys.executable, "-c", "import time; time.sleep(60)"], timeout=1)
    assert warm.run([sys.executable, "-c", "print('next')"]).stdout == "next\n"  # the server goes on


def test_commands_started_at_once_run_at_once_with_popens_streams(tmp_path):
    """``warm.popen`` is ``subprocess.Popen``: commands run side by side (the first waits for a file only the
    second writes), a pipe is read while the command runs, a file and /dev/null take its output, SIGKILL ends
    it as it ends any process."""
    flag = str(tmp_path / "flag")
    wait_for_flag = f"""if True:
        import os, time
        print("waiting", flush=True)
        end = time.time() + 60
        while not os.path.exists({flag!r}) and time.time() < end:
            time.sleep(0.01)
        print("seen")"""
    waiter = warm.popen([sys.executable, "-c", wait_for_flag], stdout=subprocess.PIPE, text=True)
    assert isinstance(waiter, warm.Process) and waiter.stdout.readline() == "waiting\n"
    raise_flag = f"import sys; open({flag!r}, 'w').close(); print('to the file', file=sys.stderr)"
    with open(tmp_path / "err.txt", "wb") as err:
        writer = warm.popen([sys.executable, "-c", raise_flag], stdout=subprocess.DEVNULL, stderr=err)
    assert writer.wait(60) == 0 and (tmp_path / "err.txt").read_text() == "to the file\n"
    assert waiter.communicate(timeout=60) == ("seen\n", None) and waiter.returncode == 0
    sleep = "import time; print('up', flush=True); time.sleep(60)"
    sleeper = warm.popen([sys.executable, "-c", sleep], stdout=subprocess.PIPE)
    assert sleeper.stdout.readline() == b"up\n" and sleeper.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        sleeper.wait(0.05)
    sleeper.kill()
    assert sleeper.wait(60) == -9 and sleeper.communicate() == (b"", None)
