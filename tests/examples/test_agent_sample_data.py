"""The bundled harvest data: deterministic, and each MANIFEST day kind shows in the calibration."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from statistics import mean
from types import ModuleType
from typing import Any

import pyarrow.parquet as pq
import pytest

from src.calibration_config import CalibrationConfig
from src.calibration_extended import available_dates, run_historical_calibration_from_harvest

HARVEST_ROOT = Path(__file__).resolve().parents[2] / "data" / "harvest"


@pytest.fixture(scope="module")
def results(manifest: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Default-config calibration of every bundled chain."""
    config = CalibrationConfig()
    return {
        (underlying, day): run_historical_calibration_from_harvest(config, HARVEST_ROOT / underlying, day)
        for underlying, days in manifest["underlyings"].items()
        for day in days
    }


def test_bundle_covers_65_business_days_for_spy_and_qqq(manifest: dict[str, Any]) -> None:
    assert set(manifest["underlyings"]) == {"SPY", "QQQ"}
    for underlying, days in manifest["underlyings"].items():
        dates = available_dates(HARVEST_ROOT / underlying)
        assert dates == sorted(days) and len(dates) == 65 and dates[-1] == "2025-12-10"
        kinds = [days[d]["kind"] for d in dates]
        assert set(kinds[:5]) == {"ordinary"}
        assert (kinds.count("thin"), kinds.count("low_vega"), kinds.count("noisy"), kinds.count("regime_shift")) == (
            5, 4, 6, 1,
        )  # fmt: skip
        assert all(300 <= days[d]["options"] <= 500 for d in dates)
    assert sum(p.stat().st_size for p in HARVEST_ROOT.rglob("*")) < 5_000_000


def test_results_match_the_manifest_counts(manifest: dict[str, Any], results: dict) -> None:
    for underlying, days in manifest["underlyings"].items():
        for day, entry in days.items():
            g = results[underlying, day]["global_metrics"]
            assert g["n"] == entry["expected_liquid_n"], (underlying, day)
            assert g["vega_sum"] == pytest.approx(entry["expected_liquid_vega_sum"], abs=0.05)


def test_day_kinds_show_in_the_results(manifest: dict[str, Any], results: dict) -> None:
    for underlying, days in manifest["underlyings"].items():
        for day, entry in days.items():
            g = results[underlying, day]["global_metrics"]
            if entry["kind"] == "thin":
                assert g["n"] < 150, (underlying, day)
            elif entry["kind"] == "low_vega":
                assert g["n"] >= 150 and g["vega_sum"] < 5000, (underlying, day)
            else:
                assert g["n"] >= 150 and g["vega_sum"] >= 10000, (underlying, day)


def test_ordinary_days_recover_the_true_band_multipliers(manifest: dict[str, Any], results: dict) -> None:
    for underlying, days in manifest["underlyings"].items():
        for day, entry in days.items():
            if entry["kind"] in ("ordinary", "regime_shift"):
                bands = results[underlying, day]["bands"]
                for name, true in entry["true_multiplier_bands"].items():
                    assert bands[name]["recommended_iv_multiplier"] == pytest.approx(true, abs=0.01), (day, name)


def _mean_over(days: dict[str, Any], kinds: set[str], value: Callable[[str, dict[str, Any]], float]) -> float:
    return mean(value(day, entry) for day, entry in days.items() if entry["kind"] in kinds)


def test_regime_shift_lifts_the_recommendation_by_about_0_15(manifest: dict[str, Any], results: dict) -> None:
    for underlying, days in manifest["underlyings"].items():
        shift = manifest["regime_shift"][underlying]
        assert days[shift]["kind"] == "regime_shift"
        assert all((day >= shift) == (entry["regime"] == "post_shift") for day, entry in days.items())
        pre = {day: entry for day, entry in days.items() if day < shift}
        post = {day: entry for day, entry in days.items() if day >= shift}

        def recommended(day: str, entry: dict[str, Any], u: str = underlying) -> float:
            return results[u, day]["global_metrics"]["recommended_iv_multiplier"]

        lift = _mean_over(post, {"ordinary"}, recommended) - _mean_over(pre, {"ordinary"}, recommended)
        assert lift == pytest.approx(manifest["regime_jump"], abs=0.02)


def test_noisy_days_scatter_more_than_ordinary_days(manifest: dict[str, Any], results: dict) -> None:
    jump = manifest["regime_jump"]
    for underlying, days in manifest["underlyings"].items():

        def weekly_error(day: str, entry: dict[str, Any], u: str = underlying) -> float:
            regime_level = 1.08 + (jump if entry["regime"] == "post_shift" else 0.0)
            return abs(results[u, day]["bands"]["weekly"]["recommended_iv_multiplier"] - regime_level)

        assert _mean_over(days, {"noisy"}, weekly_error) > 3 * _mean_over(days, {"ordinary"}, weekly_error)


def test_generator_is_byte_deterministic(generator: ModuleType, tmp_path: Path) -> None:
    first = generator.generate(tmp_path / "a", limit_days=2)
    second = generator.generate(tmp_path / "b", limit_days=2)
    assert first == second
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 5  # 2 days x 2 underlyings + MANIFEST.json
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_bundled_files_are_what_the_generator_writes(
    generator: ModuleType, manifest: dict[str, Any], tmp_path: Path
) -> None:
    """Compared by content, so a different pyarrow version (other 'created_by' bytes) still passes."""
    fresh = generator.generate(tmp_path, limit_days=2)
    for underlying, days in fresh["underlyings"].items():
        for day, entry in days.items():
            assert entry == manifest["underlyings"][underlying][day]
            name = f"{underlying}/{day}.parquet"
            assert pq.read_table(tmp_path / name).equals(pq.read_table(HARVEST_ROOT / name)), name
    assert json.loads((tmp_path / "MANIFEST.json").read_text())["description"] == manifest["description"]
