"""The host's vol surface config: strict loading, deterministic atomic saves, multiplier updates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.calibration_config import CalibrationConfig, DteBand
from src.errors import VolSurfaceConfigError
from src.synthetic import BandMultiplier, VolSurfaceConfig

SHIPPED = Path(__file__).resolve().parents[2] / "examples" / "options_agent" / "config" / "vol_surface.json"


def test_shipped_config_is_neutral_and_canonical() -> None:
    surface = VolSurfaceConfig.load(SHIPPED)
    assert surface.multipliers() == {"global": 1.0, "monthly": 1.0, "weekly": 1.0}
    assert (surface.bands["weekly"].min_dte, surface.bands["weekly"].max_dte) == (3, 10)
    assert (surface.bands["monthly"].min_dte, surface.bands["monthly"].max_dte) == (20, 40)
    assert SHIPPED.read_text(encoding="utf-8") == surface.to_json()


def test_unchanged_config_saves_to_identical_bytes(surface_file: Path) -> None:
    before = surface_file.read_bytes()
    VolSurfaceConfig.load(surface_file).save(surface_file)
    assert surface_file.read_bytes() == before
    assert before.endswith(b"}\n")
    assert [p.name for p in surface_file.parent.iterdir()] == [surface_file.name]  # no temp file left


def test_with_multipliers_returns_an_updated_copy(surface_file: Path) -> None:
    surface = VolSurfaceConfig.load(surface_file)
    updated = surface.with_multipliers({"global": 1.05, "weekly": 1.08})
    assert updated.multipliers() == {"global": 1.05, "monthly": 1.0, "weekly": 1.08}
    assert surface.multipliers()["global"] == 1.0
    assert updated.multiplier_for_dte(5) == 1.08
    assert updated.multiplier_for_dte(15) == 1.05
    assert updated.multiplier_for_dte(30) == 1.0


def test_new_band_takes_its_range_from_the_calibration_config() -> None:
    calibration = CalibrationConfig(bands={"quarterly": DteBand(min_dte=60, max_dte=100)})
    updated = VolSurfaceConfig().with_multipliers({"quarterly": 1.02}, calibration)
    assert updated.bands["quarterly"] == BandMultiplier(min_dte=60, max_dte=100, iv_multiplier=1.02)
    with pytest.raises(VolSurfaceConfigError, match="has no band 'daily' and no DTE range is known"):
        VolSurfaceConfig().with_multipliers({"daily": 1.1})


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf"), "1.1"])
def test_invalid_multipliers_are_refused(value: object) -> None:
    with pytest.raises(VolSurfaceConfigError, match="do not make a valid vol surface: iv_multiplier"):
        VolSurfaceConfig().with_multipliers({"global": value})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No vol surface config at"),
        ("{not json", "is not valid JSON \\(Expecting property name"),
        (json.dumps({"iv_multiplier": "1.0"}), "is not a valid vol surface config: iv_multiplier"),
        (json.dumps({"iv_multiplier": 1.0, "bandz": {}}), "is not a valid vol surface config: bandz"),
        (
            json.dumps({"bands": {"a": {"min_dte": 10, "max_dte": 3, "iv_multiplier": 1.0}}}),
            "min_dte \\(10\\) is larger than max_dte \\(3\\)",
        ),
    ],
)
def test_missing_or_corrupt_files_are_explained(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "vol_surface.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(VolSurfaceConfigError, match=message) as info:
        VolSurfaceConfig.load(path)
    assert "\n" not in str(info.value)


def test_save_into_a_missing_folder_is_explained(tmp_path: Path) -> None:
    with pytest.raises(VolSurfaceConfigError, match="Cannot write the vol surface config"):
        VolSurfaceConfig().save(tmp_path / "missing" / "vol_surface.json")
