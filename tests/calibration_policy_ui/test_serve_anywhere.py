"""A pip-installed user's path works from any folder: demo → status → serve, with no host app and no examples/.

Each command runs as a user types it, in a temporary folder outside the repository, with no
CALIBRATION_* variable set: what the demo prints as next steps must work there.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import warm
from fastapi.testclient import TestClient

from calibration_policy.default_plugins.sample import VOL_SURFACE

from ..calibration_policy.test_hints import command_server, environment

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path, code: int = 0) -> str:
    done = warm.run(["calibration-policy", *args], cwd=cwd, env=environment(), timeout=300)
    assert done.returncode == code, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    assert REPO not in folder.parents
    return folder


def test_demo_then_status_then_serve_from_a_folder_outside_the_repository(elsewhere: Path):
    summary = run("demo", "--out", "demo", cwd=elsewhere)
    assert "calibration-policy serve --data demo" in summary
    status = run("status", "SPY", "--data", "demo", cwd=elsewhere)
    assert "Current IV multipliers for SPY" in status and "Global" in status
    live = json.loads((elsewhere / "demo" / "config" / "vol_surface_SPY.json").read_text())["iv_multiplier"]
    assert f"{live:.4f}" in status
    with command_server(
        ["calibration-policy", "serve", "--data", "demo"], cwd=elsewhere, page="/calibration/?underlying=SPY"
    ) as (url, page):
        assert "IV multipliers" in page and f"{live:.3f}" in page
        with urllib.request.urlopen(f"{url}/calibration/weights", timeout=30) as weights:
            assert weights.status == 200 and "wallet" in weights.read().decode().lower()
    # Nothing of the repository was read or written: only the demo folder exists here.
    assert sorted(p.name for p in elsewhere.iterdir()) == ["demo"]


def test_the_panel_on_its_own_governs_the_data_folders_copy(tmp_path: Path, monkeypatch):
    """The built-in app reads the data folder's own copy of the live config and writes nothing in the working directory."""
    from calibration_policy.default_plugins.demo import run_demo
    from calibration_policy.policy import CalibrationUpdatePolicy
    from calibration_policy_ui.app import create_app

    data = tmp_path / "demo"
    run_demo(data, CalibrationUpdatePolicy(), progress=False, builtin=True)
    monkeypatch.chdir(tmp_path)
    client = TestClient(create_app(data))
    assert client.get("/", follow_redirects=False).headers["location"] == "/calibration/"
    page = client.get("/calibration/?underlying=QQQ")
    assert page.status_code == 200 and "IV multipliers" in page.text
    status = client.get("/calibration/api/status", params={"underlying": "QQQ"}).json()
    copy = json.loads((data / "config" / "vol_surface_QQQ.json").read_text())
    current = {row["scope"]: row["value"] for row in status["current"]}
    assert current["global"] == pytest.approx(copy["iv_multiplier"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_the_library_target_refuses_a_band_the_file_does_not_have(tmp_path: Path):
    from calibration_policy.default_plugins.vol_surface import vol_surface_target
    from calibration_policy.errors import TargetError

    path = tmp_path / "surface.json"
    path.write_bytes(VOL_SURFACE.read_bytes())
    target = vol_surface_target("SPY", str(path))  # the library's own (a host's plugin may replace it in the registry)
    snapshot = target.load()
    assert set(target.values(snapshot)) == {"global", "weekly", "monthly"}
    with pytest.raises(TargetError, match="no band 'quarterly'.*add the band"):
        target.with_values(snapshot, {"quarterly": 1.1})
    target.save(target.with_values(snapshot, {"global": 1.07, "weekly": 1.02}))
    assert target.values(target.load()) == {"global": 1.07, "weekly": 1.02, "monthly": 1.0}
