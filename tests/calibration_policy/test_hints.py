"""Every next step the CLI prints works: each test makes a hint appear, runs the command it names, checks it succeeds.

The commands run as a user runs them — `calibration-policy …` in a shell — from a copy of the repository's
examples and data (the host's plugin writes its own config there, never into the checkout), on a temporary
data root. The demo (65 days of two underlyings) runs once per session: the tests that need its folder or its
printed summary get a fresh copy of both.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import warm
from shell import environment, host_environment

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src" / "calibration_policy" / "sample_data"
HINT = re.compile(r"(calibration-policy [^`'\n]*?)(?=`|'|\s{3}\(|\.?$)", re.MULTILINE)


@pytest.fixture
def workdir(repo_copy: Path) -> Path:
    """Commands run from a copy of the repository's examples and data (tests/conftest.py), as from its root."""
    return repo_copy


def run(command: str, cwd: Path, code: int = 0, **env: str) -> str:
    """Run a command line as printed; check its exit code; return stdout and stderr together."""
    done = warm.run(shlex.split(command), cwd=cwd, env=host_environment(cwd, **env))
    output = done.stdout + done.stderr
    assert done.returncode == code, f"`{command}` exited {done.returncode}, not {code}:\n{output}"
    return output


def hints(output: str) -> list[str]:
    found = HINT.findall(output)
    assert found, f"no calibration-policy command in:\n{output}"
    return [hint.strip() for hint in found]


def the_hint(output: str, *words: str) -> str:
    """The one printed command that contains every word of ``words``."""
    matching = [hint for hint in hints(output) if all(word in hint.split() for word in words)]
    assert len(matching) == 1, f"expected one hint with {words} in:\n{output}"
    return matching[0]


def test_no_runs_yet_suggests_an_update_on_the_same_data_root(workdir):
    output = run("calibration-policy history SPY --data runs-root", workdir)
    hint = the_hint(output, "update")
    assert hint == "calibration-policy update --underlying SPY --data runs-root"
    assert "Applied" in run(hint, workdir)
    assert "Last 1 calibration runs for SPY" in run("calibration-policy history SPY --data runs-root", workdir)


def test_no_runs_and_no_source_installed_suggests_the_demo(tmp_path):
    output = run(f"calibration-policy history SPY --data {tmp_path / 'root'}", tmp_path)  # no host plugin here
    demo, history = the_hint(output, "demo"), the_hint(output, "history")
    assert "65 daily runs" in run(demo, tmp_path)
    assert "Last 10 calibration runs for SPY" in run(history, tmp_path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def command_server(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, page: str = "/calibration/"
) -> Iterator[tuple[str, str]]:
    """Run a `calibration-policy serve …` command line on a free port until ``page`` answers 200; yields the
    server's base URL and that page's text; stops the server afterwards."""
    port = free_port()
    server = warm.popen(  # its own process, as typed; the imports paid once (tests/support/warm.py)
        [*argv, "--port", str(port)],
        cwd=cwd,
        env=env or environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline, body = time.monotonic() + 60, None
        while body is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=5) as response:
                    body = response.read().decode() if response.status == 200 else None
            except OSError:
                time.sleep(0.2)
        assert body is not None, (
            f"`{shlex.join(argv)}` did not serve {page}: {server.poll()} {server.stderr.read() if server.poll() is not None else ''}"
        )
        yield f"http://127.0.0.1:{port}", body
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def serving_command(
    argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None, page: str = "/calibration/"
) -> Iterator[str]:
    """:func:`command_server`, for a test that reads only the one page."""
    with command_server(argv, cwd, env, page) as (_, body):
        yield body


DEMO = "calibration-policy demo --out demo-output"


@pytest.fixture
def demo_output(demo_once, workdir: Path) -> str:
    """``workdir`` as if `calibration-policy demo --out demo-output` had just run there (tests/conftest.py's
    demo_once); returns what it printed."""
    shutil.copytree(demo_once.folder, workdir / "demo-output", symlinks=True)
    return demo_once.printed


def test_the_demo_summary_commands_work(workdir, demo_output):
    assert "Last 10 calibration runs for SPY" in run(the_hint(demo_output, "history"), workdir)
    with serving_command(shlex.split(the_hint(demo_output, "serve")), cwd=workdir):
        pass  # the panel answered 200


def test_the_older_runs_hint_pages_back_on_the_same_data_root(workdir, demo_output):
    first = run("calibration-policy history SPY --data demo-output --limit 3", workdir)
    hint = the_hint(first, "history", "--before")
    assert "--data demo-output" in hint and "--limit 3" in hint  # it once dropped the root: "no runs yet"
    older = run(hint, workdir)
    assert (
        "Last 3 calibration runs for SPY" in older and older.split("newest first")[1] != first.split("newest first")[1]
    )


def test_a_host_source_without_days_points_to_the_sample_data(workdir):
    (workdir / "empty").mkdir()
    output = run("calibration-policy demo --out demo-output", workdir, code=2, OPTIONS_AGENT_HARVEST_DIR="empty")
    assert "65 daily runs" in run(the_hint(output, "demo"), workdir, OPTIONS_AGENT_HARVEST_DIR="empty")


def test_serve_without_data_suggests_the_demo_into_that_folder(workdir, demo_once):
    """The hint is the session's demo command with the folder named: that command ran (demo_once) and made its
    folder, so the hint is not replayed for a second time here."""
    output = run("calibration-policy serve --data not-yet", workdir, code=2)
    assert the_hint(output, "demo") == DEMO.replace("demo-output", "not-yet")
    folder = demo_once.folder
    assert (folder / "calibration_runs").is_dir() and (folder / "config" / "vol_surface_SPY.json").is_file()


def test_a_usage_error_points_to_help_that_works(workdir):
    output = run("calibration-policy update --underlying SPY --bogus", workdir, code=2)
    assert "--exit-code" in run(the_hint(output, "--help"), workdir)


def test_the_group_help_points_to_plugins(workdir):
    run(the_hint(run("calibration-policy --help", workdir), "plugins"), workdir)


def test_the_weights_review_hints_work_in_turn(workdir):
    root = workdir / "weights-root"
    root.mkdir()
    for name in ("trades.parquet", "scoring_weights.json"):
        shutil.copyfile(SAMPLE / name, root / name)
    data = "--data weights-root"

    output = run(f"calibration-policy weights list {data}", workdir)  # nothing suggested yet
    assert the_hint(output, "suggest") == f"calibration-policy weights suggest {data}"
    output = run(f"calibration-policy weights approve pending --by tester {data}", workdir, code=2)
    assert "Suggested" in run(the_hint(output, "suggest"), workdir)

    output = run(f"calibration-policy weights show {data}", workdir)
    assert "approved by" in run(the_hint(output, "approve"), workdir)

    output = run(f"calibration-policy weights history {data}", workdir)
    change = re.search(r"^\[([^\]]+)\]", output, re.MULTILINE).group(1)
    assert "live weights now" in run(the_hint(output, "rollback").replace("CHANGE", change), workdir)


def test_weights_suggest_without_a_trades_table_asks_for_one(workdir):
    root = workdir / "no-trades"
    root.mkdir()
    shutil.copyfile(SAMPLE / "scoring_weights.json", root / "scoring_weights.json")
    hint = the_hint(run("calibration-policy weights list --data no-trades", workdir), "suggest")
    assert hint.endswith("--trades FILE")
    assert "Suggested" in run(hint.replace("FILE", str(SAMPLE / "trades.parquet")), workdir)


def test_update_exit_code_is_opt_in(workdir):
    update = "calibration-policy update --underlying SPY --data r --date {} --config {}"
    shutil.copyfile(workdir / "examples/options_agent/config/vol_surface.json", workdir / "surface.json")
    run(update.format("2025-09-11", "surface.json") + " --exit-code", workdir)  # applied: 0
    output = run(update.format("2025-09-12", "surface.json") + " --exit-code", workdir, code=1)
    assert "Not applied" in output
    run(update.format("2025-09-15", "surface.json"), workdir)  # not applied, without the flag: 0
    run(update.format("2025-09-16", "surface.json") + " --dry-run --exit-code", workdir, code=1)


def test_force_without_runs_suggests_an_update_first(workdir):
    output = run("calibration-policy force --underlying SPY --data force-root", workdir, code=2)
    run(the_hint(output, "update"), workdir)
    run("calibration-policy force --underlying SPY --data force-root", workdir)
