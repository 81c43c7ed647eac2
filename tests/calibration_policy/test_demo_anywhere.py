"""The demo works wherever the package is installed: sample data inside the package, no host, no flags."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from calibration_policy.default_plugins.demo import run_demo
from calibration_policy.default_plugins.sample import SAMPLE_DATA, SampleSource
from calibration_policy.plugins import collect, load_plugins_dir
from calibration_policy.policy import CalibrationUpdatePolicy

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "examples" / "options_agent" / "plugins"
UV = REPO / ".venv" / "uv-tool" / "bin" / "uv"


def comparable(text: str, out: Path) -> str:
    """The summary without what differs between two runs: the folder and the suggestion's time stamp."""
    return re.sub(r"\d{8}T\d{6}\.\d{6}Z", "<id>", text.replace(str(out), "<out>"))


def test_the_host_and_the_built_in_sample_source_calibrate_every_day_alike():
    """What the policy decides on (recommended values, sample size, vega) is equal for every bundled day."""
    from calibration_policy.plugins import get_domain

    load_plugins_dir(PLUGINS)
    host, builtin, domain = collect("sources").found["harvested"], SampleSource(), get_domain("vol_surface")
    for underlying in builtin.underlyings():
        assert host.dates(underlying) == builtin.dates(underlying)
        for day in builtin.dates(underlying):
            theirs, ours = (
                domain.extract(host.calibrate(underlying, day)),
                domain.extract(builtin.calibrate(underlying, day)),
            )
            assert (ours.recommended, ours.sample_size, ours.vega_sum) == (
                theirs.recommended,
                theirs.sample_size,
                theirs.vega_sum,
            )


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("CALIBRATION_POLICY_LONG_TESTS") != "1",
    reason="two full replays; the test above checks what they decide on, CALIBRATION_POLICY_LONG_TESTS=1 runs it",
)
def test_the_host_and_the_built_in_sample_source_give_the_same_summary(tmp_path):
    load_plugins_dir(PLUGINS)
    assert "harvested" in collect("sources").found and "vol_surface" in collect("targets").found
    policy = CalibrationUpdatePolicy()
    host = run_demo(tmp_path / "host", policy, progress=False)
    builtin = run_demo(tmp_path / "builtin", policy, progress=False, builtin=True)
    assert comparable(host.text(), tmp_path / "host") == comparable(builtin.text(), tmp_path / "builtin")
    assert host.weights and host.weights.startswith("Suggested")
    assert [u.runs for u in builtin.underlyings] == [65, 65]


def test_the_repository_data_folder_points_at_the_packaged_sample_data():
    for name in ("harvest", "trades.parquet", "scoring_weights.json"):
        assert (REPO / "data" / name).resolve() == (SAMPLE_DATA / name).resolve()
    assert SampleSource().underlyings() == ["QQQ", "SPY"]


def test_the_sample_source_explains_a_day_it_does_not_have():
    with pytest.raises(ValueError, match="runs 2025-09-11 to"):
        SampleSource().calibrate("SPY", __import__("datetime").date(2020, 1, 1))


@pytest.mark.skipif(not UV.exists(), reason="uv is bootstrapped by scripts/setup.sh")
def test_an_installed_wheel_runs_the_demo_from_an_empty_folder(tmp_path):
    """Build the wheel from a copy of the sources, install it into a fresh venv that borrows the locked
    dependencies (a .pth line, so the checkout's editable install stays out), run the demo elsewhere."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALIBRATION_", "PYTHON", "VIRTUAL_ENV"))}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.setdefault("UV_SYSTEM_CERTS", "true")  # as scripts/setup.sh: a company proxy's CA is in the system store

    def run(*args: str | Path, cwd: Path = tmp_path) -> str:
        done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        return done.stdout

    build = [UV, "build", "--quiet", "--wheel", "--out-dir", tmp_path / "dist", "--python", sys.executable, source]
    built = subprocess.run([str(a) for a in build], env=env, capture_output=True, text=True, timeout=300)
    if built.returncode and "Failed to fetch" in built.stderr:  # the build backend (setuptools) comes from the index
        pytest.skip("no package index reachable for the build backend: " + built.stderr.strip().splitlines()[-1])
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("calibration_policy-*.whl"))
    assert wheel.stat().st_size < 5_000_000, "the sample data should keep the wheel small"
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "locked_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(UV, "pip", "install", "--quiet", "--no-deps", "--python", python, wheel)

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    where = run(python, "-c", "import calibration_policy; print(calibration_policy.__file__)", cwd=empty)
    assert where.startswith(str(venv)), where
    out = run(venv / "bin" / "calibration-policy", "demo", "--out", "demo", cwd=empty)
    assert "SPY: 65 daily runs (2025-09-11 to 2025-12-10)" in out and "QQQ: 65 daily runs" in out
    assert "Scoring weights: Suggested" in out
    assert sorted(p.name for p in empty.iterdir()) == ["demo"]
    assert run(venv / "bin" / "calibration-policy", "history", "SPY", "--data", "demo", cwd=empty).startswith(
        "Last 10 calibration runs for SPY"
    )
