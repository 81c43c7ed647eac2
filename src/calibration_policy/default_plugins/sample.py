"""The demo's own calibration source and live config, on the sample data shipped inside the package.

``calibration-policy demo`` uses the host's ``harvested`` source and ``vol_surface`` target when a
host plugin provides them (the options agent's, with ``--plugins-dir``). Installed on its own
(``pip install calibration-policy``, run from any folder) there is no host, so the demo falls back to
these: they read the same bundled chains (``sample_data/harvest/<UNDERLYING>/<YYYY-MM-DD>.parquet``)
with the same math as the options agent's historical calibration — the vega-weighted mean market IV
over the vega-weighted mean model IV, globally and per DTE band, after illiquid quotes are dropped —
so the demo's summary is the same either way. Neither is registered as a plugin: they exist for the
demo and must not clash with a host's names.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any

from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.naming import check_underlying
from calibration_policy.target import JsonFileTarget

from .vol_surface import surface_values, surface_with

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"
HARVEST = SAMPLE_DATA / "harvest"
TRADES = SAMPLE_DATA / "trades.parquet"
WEIGHTS = SAMPLE_DATA / "scoring_weights.json"
VOL_SURFACE = SAMPLE_DATA / "vol_surface.json"

NUMERIC = (
    "dte",
    "strike",
    "spot",
    "bid",
    "ask",
    "volume",
    "open_interest",
    "market_iv",
    "synthetic_iv",
    "delta",
    "vega",
)
# The options agent's default liquidity filters: drop quotes that say little about fair volatility.
MIN_VOLUME, MIN_OPEN_INTEREST, MAX_REL_SPREAD, MIN_VEGA = 1, 10, 0.5, 0.5
DIGITS = 6
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _bands() -> dict[str, tuple[int, int]]:
    surface = json.loads(VOL_SURFACE.read_text(encoding="utf-8"))
    ranked = sorted(surface["bands"].items(), key=lambda item: item[1]["min_dte"])
    return {name: (band["min_dte"], band["max_dte"]) for name, band in ranked}


def _metrics(group: Any, weighted_error: bool = False) -> dict[str, Any]:
    vega, market, synthetic = (group[c].to_numpy() for c in ("vega", "market_iv", "synthetic_iv"))
    multiplier = float(vega @ market / (vega @ synthetic))
    import numpy as np

    error = np.abs(market - synthetic * multiplier)
    metrics = {
        "n": len(group),
        "vega_sum": round(float(vega.sum()), DIGITS),
        "mae_vol_points": round(float(error.mean() * 100.0), DIGITS),
        "recommended_iv_multiplier": round(multiplier, DIGITS),
    }
    if weighted_error:
        metrics["vega_weighted_mae_pct"] = round(float(vega @ (error / market) / vega.sum() * 100.0), DIGITS)
    return metrics


class SampleSource:
    """Historical calibration from the bundled harvested chains (the demo's source without a host)."""

    name = "harvested"

    def __init__(self, root: Path = HARVEST) -> None:
        self.root = root

    def underlyings(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [folder.name for folder in sorted(self.root.iterdir()) if folder.is_dir() and self._days(folder)]

    def dates(self, underlying: str) -> list[date]:
        return [date.fromisoformat(day) for day in self._days(self.root / check_underlying(underlying))]

    @staticmethod
    def _days(folder: Path) -> list[str]:
        return sorted(p.stem for p in folder.glob("*.parquet") if _DAY.fullmatch(p.stem))

    def calibrate(self, underlying: str, day: date | None = None) -> dict[str, Any]:
        import numpy as np
        import pandas as pd

        folder = self.root / check_underlying(underlying)
        days = self._days(folder)
        if not days:
            raise CalibrationPolicyError(
                f"The sample data has no chains for {underlying}; the demo has "
                f"{', '.join(self.underlyings()) or 'none'}."
            )
        when = day.isoformat() if day else days[-1]
        if when not in days:
            raise CalibrationPolicyError(f"The sample data for {underlying} runs {days[0]} to {days[-1]}, not {when}.")
        chain = pd.read_parquet(folder / f"{when}.parquet")
        x = chain[list(NUMERIC)].apply(pd.to_numeric, errors="coerce").astype(float)
        mid = (x["bid"] + x["ask"]) / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_spread = (x["ask"] - x["bid"]) / mid
        usable = np.isfinite(x).all(axis=1) & (x[["market_iv", "synthetic_iv", "vega", "strike", "spot"]] > 0).all(
            axis=1
        )
        liquid_mask = (
            usable
            & (x["dte"] >= 0)
            & (x["volume"] >= MIN_VOLUME)
            & (x["open_interest"] >= MIN_OPEN_INTEREST)
            & (mid > 0)
            & (x["ask"] >= x["bid"])
            & (rel_spread <= MAX_REL_SPREAD)
            & (x["vega"] >= MIN_VEGA)
        )
        liquid = x[liquid_mask]
        if liquid.empty:
            raise CalibrationPolicyError(f"All {len(x)} options of {underlying} on {when} fail the liquidity filters.")
        bands, empty = {}, []
        for name, (low, high) in _bands().items():
            group = liquid[(liquid["dte"] >= low) & (liquid["dte"] <= high)]
            if group.empty:
                empty.append(name)
            else:
                bands[name] = {"min_dte": low, "max_dte": high, **_metrics(group)}
        metrics = _metrics(liquid, weighted_error=True)
        return {
            "dropped_count": int((~liquid_mask).sum()),
            "global_metrics": metrics,
            "bands": bands,
            "empty_bands": empty,
            "recommended_vol_surface": {
                "iv_multiplier": metrics["recommended_iv_multiplier"],
                "bands": {n: b["recommended_iv_multiplier"] for n, b in bands.items()},
            },
            "snapshot_sensors": {
                "underlying": underlying.upper(),
                "date": when,
                "source": self.name,
                "n_total": len(x),
                "n_liquid": len(liquid),
            },
        }


def sample_target(underlying: str, path: str | Path | None = None) -> JsonFileTarget:
    """The bundled vol surface (the demo copies it into its folder), adding a sample band when a run has it."""
    check_underlying(underlying)
    return JsonFileTarget(
        path or VOL_SURFACE,
        values=surface_values,
        with_values=lambda snapshot, values: surface_with(snapshot, values, _bands()),
    )
