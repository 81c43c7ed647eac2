"""Shared fixtures for the calibration_policy tests.

Calibration results are built in the host's real shape (DESIGN §1), never as mocks of our code.
Every test gets its own history folder under ``tmp_path`` and passes ``history_dir=`` explicitly.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calibration_policy import history as history_module
from calibration_policy import index as index_module
from calibration_policy import plugins as plugins_module

T0 = datetime(2025, 12, 10, 15, 30, tzinfo=UTC)
EVIDENCE_OK = {"sample_size": 412, "vega_sum": 12400.0}


def build_result(
    global_m: float = 1.05,
    bands: dict[str, float] | None = None,
    n: int = 412,
    vega_sum: float = 12400.0,
    mae_vol_points: float = 1.84,
    dropped_count: int = 37,
) -> dict[str, Any]:
    """A host calibration result as ``run_calibration_extended`` returns it."""
    if bands is None:
        bands = {"weekly": 1.07, "monthly": 1.03}
    dte = {"weekly": (3, 10), "monthly": (20, 40)}
    band_table = {}
    share = max(1, len(bands))
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
    return {
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
        "snapshot_sensors": {"spot": 601.25, "as_of": "2025-12-10", "chain_rows": n + dropped_count},
    }


@pytest.fixture
def make_result() -> Callable[..., dict[str, Any]]:
    """Factory: ``make_result(global_m=1.05, bands={...}, n=412, vega_sum=12400.0, ...)``."""
    return lambda **kw: copy.deepcopy(build_result(**kw))


@pytest.fixture
def history_dir(tmp_path: Path) -> Path:
    return tmp_path / "calibration_runs"


@pytest.fixture
def t0() -> datetime:
    return T0


@pytest.fixture
def days() -> Callable[[float], datetime]:
    """``days(3)`` is T0 + 3 days."""
    return lambda d: T0 + timedelta(days=d)


def listing(directory: Path) -> list[str]:
    """Every path below ``directory`` (relative), or [] if it does not exist."""
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.fixture
def dir_listing() -> Callable[[Path], list[str]]:
    return listing


@pytest.fixture
def record_series() -> Callable[..., list]:
    """``record_series(history_dir, count, underlying="SPY", start=T0, step=1 day, source="live", g0=1.0)``:
    record ``count`` daily runs whose global multiplier rises by 0.001 a run."""
    from calibration_policy import record_calibration_result

    def record(history_dir, count, underlying="SPY", start=T0, step=timedelta(days=1), source="live", g0=1.0):
        return [
            record_calibration_result(
                build_result(global_m=round(g0 + 0.001 * i, 6)),
                underlying,
                source,
                history_dir=history_dir,
                timestamp=start + i * step,
            )
            for i in range(count)
        ]

    return record


@pytest.fixture(autouse=True)
def _close_new_stores():
    """Close the SQLite connections of stores opened during a test (tmp dirs are unique)."""
    before = set(history_module._stores)
    yield
    for key in set(history_module._stores) - before:
        store = history_module._stores.pop(key, None)
        if store is not None:
            store._index.close()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch):
    """No test may read the developer's real policy or history through the environment."""
    monkeypatch.delenv("CALIBRATION_POLICY", raising=False)
    monkeypatch.delenv("CALIBRATION_HISTORY_DIR", raising=False)


@pytest.fixture
def fresh_plugins():
    """Rebuild the plugin manager before and after a test that changes what is installed."""
    plugins_module.reset_plugin_manager()
    yield
    plugins_module.reset_plugin_manager()


def index_listings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders the run index lists from now on: each of its listings is one ``index._Listing``."""
    calls: list[str] = []
    real = index_module._Listing.__init__

    def listing(self: Any, directory: Path) -> None:
        calls.append(os.fsdecode(directory))
        real(self, directory)

    monkeypatch.setattr(index_module._Listing, "__init__", listing)
    return calls
