"""The host's update flow under the policy: the old invocation, the gate, the archive, the demo."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import warm

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions, load_recent_calibration_history
from calibration_policy.archive import Archive
from calibration_policy.default_plugins.demo import run_demo
from calibration_policy.plugins import load_plugins_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_DIR = REPO_ROOT / "examples" / "options_agent"
SCRIPT = AGENT_DIR / "update_vol_surface_from_calibration.py"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_old_cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return warm.run([sys.executable, str(SCRIPT), *args], cwd=cwd, timeout=120)


@pytest.fixture
def dirs(tmp_path: Path, surface_file: Path) -> dict[str, Path]:
    return {"config": surface_file, "history": tmp_path / "runs", "archive": tmp_path / "archive"}


def old_invocation(dirs, day: str, underlying: str = "SPY", *extra: str) -> subprocess.CompletedProcess[str]:
    return run_old_cli(
        "--underlying",
        underlying,
        "--source",
        "harvested",
        "--date",
        day,
        "--config",
        str(dirs["config"]),
        "--history-dir",
        str(dirs["history"]),
        "--archive-dir",
        str(dirs["archive"]),
        *extra,
    )


def test_old_invocation_applies_an_ordinary_day_and_archives_the_old_surface(dirs):
    before = json.loads(dirs["config"].read_text())
    done = old_invocation(dirs, "2025-09-11")
    assert done.returncode == 0, done.stderr
    assert "Applied: Global 1.00 → 1.05" in done.stdout
    after = json.loads(dirs["config"].read_text())
    assert after["iv_multiplier"] == pytest.approx(1.05, abs=0.01)
    [entry] = Archive(dirs["archive"], "vol_surface").entries()
    assert entry.previous_snapshot == before and entry.new_snapshot == after
    assert entry.run_id == load_recent_calibration_history("SPY", history_dir=dirs["history"])[-1].run_id


def test_policy_says_no_on_a_thin_day_and_the_config_keeps_its_bytes(dirs, manifest):
    thin = next(day for day, info in manifest["underlyings"]["SPY"].items() if info["kind"] == "thin")
    before = digest(dirs["config"])
    done = old_invocation(dirs, thin)
    assert done.returncode == 0, done.stderr
    assert "Not applied: too few options in the sample" in done.stdout
    assert "left unchanged" in done.stdout
    assert digest(dirs["config"]) == before
    assert not (dirs["archive"] / "vol_surface").exists()


def test_new_flags_dry_run_force_json_and_policy(dirs, tmp_path):
    before = digest(dirs["config"])
    dry = old_invocation(dirs, "2025-09-11", "SPY", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = json.loads(dry.stdout)
    assert report["dry_run"] and report["would_apply"] and not report["applied"]
    assert digest(dirs["config"]) == before and not dirs["history"].exists()
    strict = tmp_path / "strict.toml"
    strict.write_text("min_delta_global = 0.5\nmin_delta_band = 0.5\n")
    held = old_invocation(dirs, "2025-09-11", "SPY", "--policy", str(strict), "--json")
    assert json.loads(held.stdout)["applied"] is False and digest(dirs["config"]) == before
    forced = old_invocation(dirs, "2025-09-12", "SPY", "--policy", str(strict), "--force")
    assert forced.returncode == 0 and "forced by user" in forced.stdout
    assert digest(dirs["config"]) != before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--underlying", "NOPE", "--date", "2025-12-10"], "No harvested data for NOPE"),
        (["--underlying", "SPY", "--date", "2025-12-25"], "SPY"),
        (["--underlying", "../etc", "--date", "2025-12-10"], "not a valid underlying"),
    ],
)
def test_bad_input_is_one_sentence_exit_2_and_nothing_changes(dirs, args, message):
    before = digest(dirs["config"])
    done = run_old_cli(*args, "--config", str(dirs["config"]), "--history-dir", str(dirs["history"]))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert digest(dirs["config"]) == before and not dirs["history"].exists()


def test_invalid_policy_file_and_corrupt_parquet(dirs, tmp_path):
    bad_policy = tmp_path / "bad.toml"
    bad_policy.write_text("min_delta_global = -1\n")
    before = digest(dirs["config"])
    done = old_invocation(dirs, "2025-09-11", "SPY", "--policy", str(bad_policy))
    assert done.returncode == 2 and "min_delta_global" in done.stderr and "Traceback" not in done.stderr
    harvest = tmp_path / "harvest" / "SPY"
    harvest.mkdir(parents=True)
    (harvest / "2025-09-11.parquet").write_bytes(b"PAR1 this is not parquet")
    broken = run_old_cli(
        "--underlying",
        "SPY",
        "--date",
        "2025-09-11",
        "--harvest-dir",
        str(tmp_path / "harvest"),
        "--config",
        str(dirs["config"]),
        "--history-dir",
        str(dirs["history"]),
    )
    assert broken.returncode == 2 and "Parquet" in broken.stderr
    assert digest(dirs["config"]) == before and not dirs["history"].exists()


def _worker(args):
    config, history, archive, index = args
    sys.path.insert(0, str(AGENT_DIR))
    from calibration_policy.pipeline import force_apply, run_update
    from plugins.calibration_policy_host import HarvestedSource, VolSurfaceTarget

    target = VolSurfaceTarget(config)
    day = date(2025, 9, 15) + timedelta(days=index % 3)
    outcome = run_update(
        HarvestedSource().calibrate("SPY", day),
        underlying="SPY",
        source="harvested",
        target=target,
        options=UpdateOptions(force=index % 2 == 0),
        context=Context.build(history_dir=history, archive_dir=archive),
    )
    force_apply(
        "SPY", target=target, use="recommended", context=Context.build(history_dir=history, archive_dir=archive)
    )
    return int(outcome.applied) + 1


def test_concurrent_updates_and_force_applies_lose_nothing(dirs):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        applied = sum(pool.map(_worker, [(dirs["config"], dirs["history"], dirs["archive"], i) for i in range(8)]))
    entries = Archive(dirs["archive"], "vol_surface").entries()
    assert len(entries) == applied
    for earlier, later in zip(entries, entries[1:]):
        assert later.previous_snapshot == earlier.new_snapshot  # no change was overwritten unseen
    assert json.loads(dirs["config"].read_text()) == entries[-1].new_snapshot
    assert len(load_recent_calibration_history("SPY", limit=100, history_dir=dirs["history"])) == 8


def test_demo_over_the_bundled_data_follows_its_known_structure(demo_once, manifest):
    """The test run's demo (tests/conftest.py: `calibration-policy demo` with this host's plugins)."""
    demo = demo_once.folder
    assert sorted(p.name for p in (demo / "config").glob("vol_surface_*.json")) == [
        "vol_surface_QQQ.json",
        "vol_surface_SPY.json",
    ]
    for underlying in ("SPY", "QQQ"):
        days = manifest["underlyings"][underlying]
        runs = {
            r.timestamp.date().isoformat(): r
            for r in load_recent_calibration_history(underlying, limit=200, history_dir=demo / "calibration_runs")
        }
        assert len(runs) == len(days) >= 60
        for day, info in days.items():
            if info["kind"] in ("thin", "low_vega"):
                assert runs[day].applied is False, (underlying, day, runs[day].applied_reason)
        shift = manifest["regime_shift"][underlying]
        after_shift = sorted(d for d in runs if d >= shift)[:5]
        assert any(runs[d].applied for d in after_shift), f"{underlying}: shift on {shift} not applied within 5 days"
        live = json.loads((demo / "config" / f"vol_surface_{underlying}.json").read_text())
        assert live["iv_multiplier"] == pytest.approx(days[max(days)]["true_multiplier_global"], abs=0.05)


def test_running_the_demo_twice_gives_the_same_summary(tmp_path, demo_once):
    """Once here, in process, and once by the command in another process (the test run's demo_once)."""
    load_plugins_dir(AGENT_DIR / "plugins")
    summary = run_demo(tmp_path / "again", policy=CalibrationUpdatePolicy(), progress=False)
    again = summary.text().replace(str(tmp_path / "again"), "OUT")
    first = demo_once.printed.replace(str(demo_once.folder), "OUT").replace("demo-output", "OUT")
    assert again == first.rstrip("\n")
    assert "Review it: calibration-policy weights show --data OUT" in again
