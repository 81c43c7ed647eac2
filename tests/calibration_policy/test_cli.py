"""The ``calibration-policy`` command: plain output, stable JSON, exit 2 with one sentence on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from calibration_policy.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = REPO_ROOT / "examples" / "options_agent" / "plugins"
SURFACE = REPO_ROOT / "examples" / "options_agent" / "config" / "vol_surface.json"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "vol_surface.json"
    shutil.copyfile(SURFACE, config)
    return {"config": str(config), "history": str(tmp_path / "runs"), "archive": str(tmp_path / "archive")}


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def update(capsys, env, day: str, *extra: str):
    return cli(capsys, "update", "--underlying", "SPY", "--date", day, "--plugins-dir", str(PLUGINS),
               "--config", env["config"], "--history-dir", env["history"], "--archive-dir", env["archive"], *extra)


def test_explain_uses_the_policy_file(capsys, tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text("min_delta_global = 0.07\nmin_sample_size = 300\nsmoothing_window_days = 21\n")
    code, out, _ = cli(capsys, "explain", "--policy", str(policy))
    assert code == 0
    assert "last 21 days" in out and "at least 0.07 for the global value" in out and "at least 300 options" in out


def test_update_history_status_and_force(capsys, env):
    code, out, err = update(capsys, env, "2025-09-11")
    assert code == 0, err
    assert out.startswith("SPY 2025-09-11 21:00 UTC (harvested): Applied: global 1.00 → 1.05")
    code, out, _ = update(capsys, env, "2025-09-12")
    assert "Not applied: change too small" in out

    code, out, _ = cli(capsys, "history", "spy", "--history-dir", env["history"])
    lines = out.splitlines()
    assert lines[0] == "Last 2 calibration runs for SPY, newest first:"
    assert lines[2].split() == ["Time", "(UTC)", "Source", "Rec", "Global", "Smoothed", "Applied?", "Reason"]
    assert "2025-09-12" in lines[4] and "– no" in lines[4] and "2025-09-11" in lines[5] and "✓ yes" in lines[5]

    code, out, _ = cli(capsys, "history", "SPY", "--history-dir", env["history"], "--json", "--limit", "1")
    [run] = json.loads(out)
    assert run["applied"] is False and run["underlying"] == "SPY" and "recommended_iv_multiplier" in run

    code, out, _ = cli(capsys, "status", "SPY", "--plugins-dir", str(PLUGINS), "--config", env["config"],
                       "--history-dir", env["history"], "--archive-dir", env["archive"])
    assert "Current IV multipliers for SPY" in out and "Weekly (3–10d)" in out and "Policy: The system smooths" in out

    code, out, _ = cli(capsys, "force", "--underlying", "SPY", "--plugins-dir", str(PLUGINS), "--config", env["config"],
                       "--history-dir", env["history"], "--archive-dir", env["archive"], "--json")
    report = json.loads(out)
    assert report["applied"] and report["reason"].startswith("Applied: forced by user")


def test_update_json_is_stable(capsys, env):
    code, out, _ = update(capsys, env, "2025-09-11", "--json")
    report = json.loads(out)
    assert set(report) == {"underlying", "run_id", "timestamp", "source", "dry_run", "applied", "would_apply", "reason",
                           "recommended", "smoothed", "applied_values", "change_id", "decision"}
    assert set(report["decision"]) == {"apply", "reason", "forced", "values", "scopes", "verdicts"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["history", "../x"], "not a valid underlying symbol"),
        (["history", "SPY", "--limit", "0"], "limit must be a whole number"),
        (["explain", "--policy", "/nonexistent/p.toml"], "does not exist"),
        (["update", "--underlying", "SPY", "--source", "nosuch"], "Unknown calibration source 'nosuch'"),
        (["update", "--underlying", "SPY", "--date", "2030-01-01"], "No harvested data for SPY"),
        (["force", "--underlying", "QQQ"], "no calibration run for QQQ"),
    ],
)
def test_bad_input_exits_2_with_one_sentence(capsys, env, args, message):
    extra = ["--plugins-dir", str(PLUGINS), "--config", env["config"]] if args[0] in ("update", "force") else []
    code, out, err = cli(capsys, *args, *extra, *(["--history-dir", env["history"]] if args[0] != "explain" else []))
    assert code == 2
    assert message in err and err.startswith("Error: ") and len(err.strip().splitlines()) == 1
    assert not Path(env["history"]).exists()


def test_console_script_runs_and_bad_date_is_explained():
    done = subprocess.run([sys.executable, "-m", "calibration_policy.cli", "update", "--underlying", "SPY", "--date", "12/10/2025"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "use YYYY-MM-DD" in done.stderr and "Traceback" not in done.stderr
    help_text = subprocess.run(["calibration-policy", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "Decide when a new calibration" in help_text
