"""Shared helpers of the proof suite: realistic host results, file-tree snapshots, driver launch.

Imported by the tests *and* by ``drivers.py`` (which runs in separate processes), so it
imports nothing from pytest.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVERS = HERE / "drivers.py"
HOST_PLUGINS = REPO / "examples" / "options_agent" / "plugins"
LONG = os.environ.get("CALIBRATION_POLICY_LONG_TESTS") == "1"

T0 = datetime(2025, 12, 10, 15, 30, tzinfo=UTC)
ORIGINAL_JSON_CONFIG = {"global": 1.0, "weekly": 1.0, "monthly": 1.0}
ORIGINAL_VOL_SURFACE = {
    "bands": {
        "monthly": {"iv_multiplier": 1.0, "max_dte": 40, "min_dte": 20},
        "weekly": {"iv_multiplier": 1.0, "max_dte": 10, "min_dte": 3},
    },
    "iv_multiplier": 1.0,
}
ENV_VARS = (
    "CALIBRATION_POLICY",
    "CALIBRATION_HISTORY_DIR",
    "CALIBRATION_ARCHIVE_DIR",
    "CALIBRATION_SUGGESTIONS_DIR",
    "CALIBRATION_PLUGINS_DIR",
)


def build_result(
    global_m: float = 1.05,
    bands: dict[str, float] | None = None,
    n: int = 412,
    vega_sum: float = 12400.0,
    mae_vol_points: float = 1.84,
    dropped_count: int = 37,
    sensors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A host calibration result in the shape ``run_calibration_extended`` returns (DESIGN §1)."""
    if bands is None:
        bands = {"weekly": round(global_m * 1.02, 6), "monthly": round(global_m * 0.98, 6)}
    dte = {"weekly": (3, 10), "monthly": (20, 40)}
    share = max(1, len(bands))
    band_table = {}
    for i, (name, multiplier) in enumerate(bands.items()):
        lo, hi = dte.get(name, (50 + 10 * i, 55 + 10 * i))
        band_table[name] = {
            "min_dte": lo,
            "max_dte": hi,
            "n": n // share,
            "vega_sum": round(vega_sum / share, 2),
            "mae_vol_points": round(mae_vol_points * (1 + 0.1 * i), 4),
            "vega_weighted_mae_pct": 4.1 + i,
            "recommended_iv_multiplier": multiplier,
        }
    return copy.deepcopy(
        {
            "dropped_count": dropped_count,
            "global_metrics": {
                "n": n,
                "vega_sum": vega_sum,
                "mae_vol_points": mae_vol_points,
                "vega_weighted_mae_pct": 4.37,
                "recommended_iv_multiplier": global_m,
            },
            "bands": band_table,
            "buckets": [
                {
                    "dte_bucket": "3-10",
                    "abs_delta_bucket": "0.10-0.25",
                    "n": n // 4,
                    "vega_sum": vega_sum / 8,
                    "mae_vol_points": 2.1,
                    "recommended_iv_multiplier": round(global_m * 1.01, 4),
                },
                {
                    "dte_bucket": "20-40",
                    "abs_delta_bucket": "0.25-0.50",
                    "n": n // 3,
                    "vega_sum": vega_sum / 2,
                    "mae_vol_points": 1.2,
                    "recommended_iv_multiplier": round(global_m * 0.99, 4),
                },
            ],
            "anchor_ratios": {"0.1": 1.12, "0.25": 1.05, "0.5": 1.0},
            "recommended_vol_surface": {"iv_multiplier": global_m, "bands": dict(bands)},
            "snapshot_sensors": {
                "spot": 601.25,
                "as_of": "2025-12-10",
                "chain_rows": n + dropped_count,
                **(sensors or {}),
            },
        }
    )


# -- file trees -----------------------------------------------------------------------------------


def tree(root: Path) -> dict[str, str]:
    """``{relative path: sha256 of content | "<dir>"}`` of everything below ``root``."""
    found: dict[str, str] = {}
    if not root.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            found[os.path.relpath(os.path.join(dirpath, name), root)] = "<dir>"
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
            except OSError:
                found[os.path.relpath(path, root)] = "<unreadable>"
    return found


def files_only(snapshot: dict[str, str], *, ignore_locks: bool = True) -> dict[str, str]:
    """Regular files of a :func:`tree` snapshot (lock files are scratch, not data)."""
    return {
        path: digest
        for path, digest in snapshot.items()
        if digest != "<dir>" and not (ignore_locks and path.endswith(".lock"))
    }


def data_state(root: Path) -> dict[str, str]:
    """:func:`tree` without what is not data: the run index (a rebuildable cache), empty lock files
    and their folders, and folders themselves (a created-but-empty folder holds nothing)."""

    def scratch(path: str) -> bool:
        parts = path.split(os.sep)
        return ".index" in parts or ".locks" in parts or path.endswith(".lock")

    return {path: digest for path, digest in tree(root).items() if digest != "<dir>" and not scratch(path)}


def temp_files(root: Path) -> list[str]:
    """Every ``.tmp-*`` file below ``root``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(".tmp-*")) if root.exists() else []


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Lines of a driver log; a torn last line (the writer died mid-append) is dropped."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_bytes().split(b"\n"):
        if not raw.strip():
            continue
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue
    return lines


def append_durably(path: Path | str, record: dict[str, Any]) -> None:
    """Append one JSON line and fsync it: once this returns, the line survives a SIGKILL."""
    data = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# -- processes ----------------------------------------------------------------------------------


def driver_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH", "")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def start_driver(command: str, spec: dict[str, Any], **popen: Any) -> Any:
    """Start ``python drivers.py <command> <json spec>`` as a process of its own (in the warm interpreter,
    tests/support/warm.py: the imports paid once, each driver still its own process to run beside the others
    and to kill); a ``Popen`` or its twin."""
    import warm

    return warm.popen(
        [sys.executable, str(DRIVERS), command, json.dumps(spec)],
        env=driver_env(),
        stdout=popen.pop("stdout", subprocess.PIPE),
        stderr=popen.pop("stderr", subprocess.PIPE),
        **popen,
    )


def run_drivers(command: str, specs: list[dict[str, Any]], timeout: float = 300.0) -> list[dict[str, Any]]:
    """Run one driver per spec concurrently; each prints one JSON report as its last line."""
    procs = [start_driver(command, spec) for spec in specs]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"driver {command} failed ({proc.returncode}):\n{err.decode()[-4000:]}")
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    return reports


def host_create_app():
    """``examples/options_agent/app.py``'s ``create_app``; None while the panel (``calibration_policy_ui``)
    or the host app does not exist yet."""
    import importlib.util

    path = HOST_PLUGINS.parent / "app.py"
    if (
        importlib.util.find_spec("fastapi") is None
        or importlib.util.find_spec("calibration_policy_ui") is None
        or not path.exists()
    ):
        return None
    try:
        import calibration_policy_ui.router  # noqa: F401
    except ImportError:
        return None
    spec = importlib.util.spec_from_file_location("proof_options_agent_app", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.create_app
