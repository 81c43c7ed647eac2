"""The host's OLD command-line scripts, run as a user would run them."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from src.calibration_config import CalibrationConfig
from src.calibration_extended import run_historical_calibration_from_harvest

REPO_ROOT = Path(__file__).resolve().parents[2]
HARVEST_ROOT = REPO_ROOT / "data" / "harvest"
UPDATE = "update_vol_surface_from_calibration.py"


def test_old_cli_writes_the_recommendation_into_the_config(run_script, surface_file: Path) -> None:
    done = run_script(UPDATE, "--underlying", "SPY", "--source", "harvested", "--date", "2025-12-10",
                      "--config", str(surface_file))  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = run_historical_calibration_from_harvest(CalibrationConfig(), HARVEST_ROOT / "SPY", "2025-12-10")
    written = json.loads(surface_file.read_text())
    assert written["iv_multiplier"] == expected["recommended_vol_surface"]["iv_multiplier"]
    assert {k: v["iv_multiplier"] for k, v in written["bands"].items()} == expected["recommended_vol_surface"]["bands"]
    assert "Calibrated SPY on 2025-12-10 (harvested)" in done.stdout
    assert f"Wrote {surface_file}." in done.stdout


def test_old_cli_runs_from_inside_the_agent_folder_with_live_source(run_script, surface_file: Path) -> None:
    before = surface_file.read_bytes()
    done = run_script(UPDATE, "--underlying", "qqq", "--source", "live", "--config", str(surface_file),
                      cwd=REPO_ROOT / "examples" / "options_agent")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Calibrated QQQ on 2025-12-10 (live)" in done.stdout  # latest harvested date, replayed as live
    assert "no broker" in done.stdout
    assert surface_file.read_bytes() != before


def test_realism_check_is_read_only(run_script, surface_file: Path) -> None:
    before = surface_file.read_bytes()
    done = run_script("realism_check.py", "--underlying", "SPY", "--date", "2025-12-10", "--config", str(surface_file))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Realism of {surface_file} for SPY on 2025-12-10 (")
    assert [line.split()[0] for line in lines[1:]] == ["global", "monthly", "weekly"]
    assert all("vol points" in line for line in lines[1:])
    assert surface_file.read_bytes() == before


def _broken_harvest(tmp_path: Path) -> Path:
    """A harvest root whose SPY folder holds one garbage file and one file without a vega column."""
    folder = tmp_path / "harvest" / "SPY"
    folder.mkdir(parents=True)
    (folder / "2025-12-10.parquet").write_bytes(b"PAR1 garbage")
    table = pq.read_table(HARVEST_ROOT / "SPY" / "2025-12-09.parquet").drop_columns(["vega"])
    pq.write_table(table, folder / "2025-12-09.parquet")
    return tmp_path / "harvest"


BAD_INPUTS = [
    (["--underlying", "../etc", "--date", "2025-12-10"], "'../etc' is not a valid underlying symbol"),
    (["--underlying", "SPY/../../x", "--date", "2025-12-10"], "is not a valid underlying symbol"),
    (["--underlying", "SPY", "--date", "2025-12-25"],
     "No harvested data for SPY on 2025-12-25 in {harvest}/SPY: available dates run 2025-09-11 to 2025-12-10"),
    (["--underlying", "SPY", "--date", "2025-13-01"], "'2025-13-01' is not a valid date: use YYYY-MM-DD"),
    (["--underlying", "XYZ"], "No harvested data for XYZ in {harvest}/XYZ: the folder does not exist"),
    (["--underlying", "SPY", "--date", "2025-12-10", "--harvest-dir", "{broken}"],
     "{broken}/SPY/2025-12-10.parquet is not a readable Parquet file ("),
    (["--underlying", "SPY", "--date", "2025-12-09", "--harvest-dir", "{broken}"],
     "{broken}/SPY/2025-12-09.parquet is missing the column(s) vega"),
]  # fmt: skip


@pytest.mark.parametrize("script", [UPDATE, "realism_check.py"])
@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_exits_with_one_sentence_and_leaves_the_config(
    run_script, surface_file: Path, tmp_path: Path, script: str, args: list[str], message: str
) -> None:
    broken = _broken_harvest(tmp_path)
    fill = {"harvest": str(HARVEST_ROOT), "broken": str(broken)}
    before = surface_file.read_bytes()
    done = run_script(script, *[a.format(**fill) for a in args], "--config", str(surface_file))
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and message.format(**fill) in done.stderr
    assert surface_file.read_bytes() == before


@pytest.mark.parametrize("script", [UPDATE, "realism_check.py"])
@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "No vol surface config at"), ("{oops", "is not valid JSON"), ('{"iv_multiplier": -1}', "iv_multiplier")],
)
def test_missing_or_corrupt_config_is_explained_and_left_alone(
    run_script, tmp_path: Path, script: str, content: str | None, message: str
) -> None:
    path = tmp_path / "vol_surface.json"
    if content is not None:
        path.write_text(content)
    done = run_script(script, "--underlying", "SPY", "--date", "2025-12-10", "--config", str(path))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert (path.read_text() if path.exists() else None) == content


def test_missing_required_flag_is_reported_by_argparse(run_script) -> None:
    done = run_script(UPDATE)
    assert done.returncode == 2 and "the following arguments are required: --underlying" in done.stderr
