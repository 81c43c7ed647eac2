"""Fixtures of the proof suite (tests that try to break calibration-policy).

Long variants run with ``CALIBRATION_POLICY_LONG_TESTS=1``; the default run exercises every
kind of test with smaller counts.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The drivers and helpers live next to the tests; make them importable however pytest is started.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from proofkit import ENV_VARS

from calibration_policy import history as history_module


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """No environment leaks in, and a default data dir (``data/...``) could only land in tmp."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = set(history_module._stores)
    yield
    for key in set(history_module._stores) - before:
        store = history_module._stores.pop(key, None)
        if store is not None:
            store._index.close()


@pytest.fixture
def long_tests() -> bool:
    return os.environ.get("CALIBRATION_POLICY_LONG_TESTS") == "1"
