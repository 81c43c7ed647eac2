"""Make the options-agent stand-in importable as ``src`` and share paths and helpers.

The repo's own package lives at ``src/calibration_policy`` and is installed; there is no
``/work/main/src/__init__.py``, so ``src`` resolves to ``examples/options_agent/src``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import warm

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_DIR = REPO_ROOT / "examples" / "options_agent"
HARVEST_ROOT = REPO_ROOT / "data" / "harvest"
DEFAULT_SURFACE = AGENT_DIR / "config" / "vol_surface.json"

if str(AGENT_DIR) not in sys.path:
    sys.path.insert(0, str(AGENT_DIR))


@pytest.fixture(scope="session")
def manifest() -> dict[str, Any]:
    return json.loads((HARVEST_ROOT / "MANIFEST.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def generator() -> ModuleType:
    """``data/generate_sample_data.py`` loaded as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location(
        "generate_sample_data", REPO_ROOT / "data" / "generate_sample_data.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def surface_file(tmp_path: Path) -> Path:
    """A private copy of the shipped vol surface config for a test to overwrite."""
    path = tmp_path / "vol_surface.json"
    shutil.copyfile(DEFAULT_SURFACE, path)
    return path


@pytest.fixture(scope="session")
def run_script() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run one of the agent's CLI scripts the way a user would: ``run_script(name, *args, cwd=...)``."""

    def run(name: str, *args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
        return warm.run([sys.executable, str(AGENT_DIR / name), *args], cwd=cwd, timeout=120)

    return run
