"""Every test runs against its own data folders: nothing a test does reaches the repository's data/."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_data_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("CALIBRATION_HISTORY_DIR", str(root / "calibration_runs"))
    monkeypatch.setenv("CALIBRATION_ARCHIVE_DIR", str(root / "config_archive"))
    monkeypatch.setenv("CALIBRATION_SUGGESTIONS_DIR", str(root / "suggestions"))
    monkeypatch.delenv("CALIBRATION_POLICY", raising=False)
    monkeypatch.delenv("CALIBRATION_PLUGINS_DIR", raising=False)
