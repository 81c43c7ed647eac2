"""Every test runs against its own data folders: nothing a test does reaches the repository's data/."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_data_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path_factory.mktemp("data")
    monkeypatch.setenv("CALIBRATION_HISTORY_DIR", str(root / "calibration_runs"))
    monkeypatch.setenv("CALIBRATION_ARCHIVE_DIR", str(root / "config_archive"))
    monkeypatch.setenv("CALIBRATION_SUGGESTIONS_DIR", str(root / "suggestions"))
    monkeypatch.delenv("CALIBRATION_POLICY", raising=False)
    monkeypatch.delenv("CALIBRATION_PLUGINS_DIR", raising=False)


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A fresh copy of what the host's plugin and README's examples read and write: the checkout never changes."""
    for folder in ("examples", "data"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns(
            "__pycache__", "calibration_runs", "config_archive", "suggestions", "*.lock"))
    return tmp_path


def _within(seconds: float, call: Callable[[], Any]) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for more than {seconds} s"
    if "error" in box:
        raise box["error"]
    return box.get("value")


@pytest.fixture
def within() -> Callable[[float, Callable[[], Any]], Any]:
    """``within(seconds, call)``: ``call()`` in a thread; fails instead of hanging if it blocks (a FIFO opened for reading)."""
    return _within
