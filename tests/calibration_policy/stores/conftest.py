"""The store tests read and write through the data root alone (no folder passed), as a host does."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CALIBRATION_DATA", str(tmp_path / "data"))
    for name in ("CALIBRATION_HISTORY_DIR", "CALIBRATION_ARCHIVE_DIR", "CALIBRATION_SUGGESTIONS_DIR"):
        monkeypatch.delenv(name, raising=False)
