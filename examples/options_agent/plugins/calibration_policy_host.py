"""How the options agent plugs into calibration-policy: its calibration sources and its live config.

The library never changes the agent's calibration math; it only calls it (the sources) and
writes the vol surface file through the agent's own ``VolSurfaceConfig`` (the target). Load it
with ``calibration-policy --plugins-dir examples/options_agent/plugins`` (or ``$CALIBRATION_PLUGINS_DIR``)
or ``calibration_policy.plugins.load_plugins_dir``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

AGENT_DIR = Path(__file__).resolve().parents[1]
if str(AGENT_DIR) not in sys.path:
    sys.path.insert(0, str(AGENT_DIR))

from calibration_policy import TargetError, TargetFactory, hookimpl
from calibration_policy.naming import check_underlying
from src.calibration_config import CalibrationConfig, HarvestSettings
from src.calibration_extended import (
    available_dates,
    harvest_dir_for,
    latest_date,
    run_historical_calibration_from_harvest,
)
from src.cli_support import DEFAULT_HARVEST_DIR, DEFAULT_VOL_SURFACE
from src.synthetic import VolSurfaceConfig

HARVEST_ENV = "OPTIONS_AGENT_HARVEST_DIR"


def harvest_root() -> Path:
    return Path(os.environ.get(HARVEST_ENV) or DEFAULT_HARVEST_DIR)


class HarvestedSource:
    """The agent's historical calibration from harvested Parquet chains."""

    name = "harvested"

    def __init__(self, root: Path | None = None) -> None:
        self.root = root

    def config(self) -> CalibrationConfig:
        return CalibrationConfig(source=self.name, harvest=HarvestSettings(dir=str(self.root or harvest_root())))

    def calibrate(self, underlying: str, day: date | None = None) -> dict[str, Any]:
        folder = harvest_dir_for(self.root or harvest_root(), underlying)
        config = self.config()
        result = run_historical_calibration_from_harvest(config, folder, day or latest_date(folder))
        return {**result, "config": config.to_dict()}

    def underlyings(self) -> list[str]:
        root = self.root or harvest_root()
        found = []
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            try:
                if folder.is_dir() and available_dates(folder):
                    found.append(check_underlying(folder.name))
            except ValueError:
                continue
        return found

    def dates(self, underlying: str) -> list[date]:
        return [
            date.fromisoformat(d) for d in available_dates(harvest_dir_for(self.root or harvest_root(), underlying))
        ]


class LiveSource(HarvestedSource):
    """The stand-in has no broker: "live" replays the harvested chain of the day as if just fetched."""

    name = "live"


class VolSurfaceTarget:
    """The agent's vol surface config file, read and written only through ``VolSurfaceConfig``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = self.path.stem
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def _config(self, snapshot: Mapping[str, Any]) -> VolSurfaceConfig:
        try:
            return VolSurfaceConfig.model_validate(snapshot)
        except ValueError as error:
            raise TargetError(
                f"{self.path} does not hold a valid vol surface config: {str(error).splitlines()[0]}"
            ) from None

    def load(self) -> dict[str, Any]:
        try:
            return VolSurfaceConfig.load(self.path).model_dump(mode="json")
        except ValueError as error:
            raise TargetError(str(error)) from None

    def values(self, snapshot: Mapping[str, Any]) -> dict[str, float]:
        return self._config(snapshot).multipliers()

    def with_values(self, snapshot: Mapping[str, Any], values: Mapping[str, float]) -> dict[str, Any]:
        try:
            return self._config(snapshot).with_multipliers(dict(values), CalibrationConfig()).model_dump(mode="json")
        except ValueError as error:
            raise TargetError(str(error)) from None

    def save(self, snapshot: Mapping[str, Any]) -> None:
        try:
            self._config(snapshot).save(self.path)
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or error
            raise TargetError(f"Could not write {self.path}: {reason}; nothing was changed.") from None


def vol_surface_target(underlying: str, path: str | os.PathLike[str] | None = None) -> VolSurfaceTarget:
    """The agent keeps one vol surface file; ``path`` points the library at another (demo, tests)."""
    check_underlying(underlying)
    return VolSurfaceTarget(path or DEFAULT_VOL_SURFACE)


@hookimpl
def register_sources(register):
    register(HarvestedSource())
    register(LiveSource())


@hookimpl
def register_targets(register):
    register(
        TargetFactory(
            "vol_surface",
            vol_surface_target,
            "Options agent vol surface",
            "The agent's config/vol_surface.json, written through its VolSurfaceConfig.",
            replaces=True,  # the library's own vol_surface target writes the same format without the agent's code
        )
    )
