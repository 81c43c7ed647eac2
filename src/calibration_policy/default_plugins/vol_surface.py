"""The ``vol_surface`` domain: a global IV multiplier plus one per DTE band, and its live config file.

The target is a vol-surface JSON file (``{"iv_multiplier": x, "bands": {name: {"min_dte", "max_dte",
"iv_multiplier"}}}``), the options agent's format. It is the library's own, so an installed package
governs a demo folder (``<data>/config/vol_surface_<U>.json``) with no host present; a host that writes
its file through its own code registers its ``vol_surface`` target with ``replaces=True``.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from calibration_policy.domain import Domain, Extracted, tracking_error_parts
from calibration_policy.errors import InvalidRunError, TargetError
from calibration_policy.hookspecs import hookimpl
from calibration_policy.naming import check_underlying
from calibration_policy.paths import data_root, live_config_copy
from calibration_policy.specs import TargetFactory
from calibration_policy.target import JsonFileTarget


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRunError(f"The calibration result's {where} must be a number, not {value!r:.40}.")
    return float(value)


class VolSurfaceDomain(Domain):
    name = "vol_surface"
    title = "IV multipliers"
    parameter_label = "IV multiplier"
    parameter_label_plural = "IV multipliers"
    sample_unit = "options"
    sources = ("live", "harvested")
    default_bounds = (0.25, 4.0)  # a quarter or four times the model's vol is no calibration
    glossary = (
        (
            "IV multiplier",
            "The number the options agent multiplies its model's implied volatility by, so that its "
            "synthetic option prices match the market's. 1.00 changes nothing; 1.05 makes the model's "
            "volatility 5% higher.",
        ),
        (
            "Global, Weekly (3–10d), Monthly (20–40d)",
            "The global multiplier counts for every option; a band's "
            "(weekly: 3 to 10 days to expiry, monthly: 20 to 40) counts for the options whose days "
            "to expiry (DTE) fall in its range. Each is one “scope”.",
        ),
        (
            "Options in the sample, total vega",
            "How many option quotes the run compared with the model, and how "
            "sensitive those options are to volatility, added up: the more of both, the more the "
            "run's recommendation can be trusted.",
        ),
    )

    def extract(self, result: Mapping[str, Any]) -> Extracted:
        if not isinstance(result, Mapping):
            raise InvalidRunError(f"A calibration result must be a dict, not {type(result).__name__}.")
        metrics = result.get("global_metrics")
        if not isinstance(metrics, Mapping):
            raise InvalidRunError("The calibration result has no global_metrics table.")
        surface = result.get("recommended_vol_surface") or {}
        recommended: dict[str, float] = {}
        if "recommended_iv_multiplier" in metrics:
            recommended["global"] = _number(
                metrics["recommended_iv_multiplier"], "global_metrics.recommended_iv_multiplier"
            )
        elif isinstance(surface, Mapping) and "iv_multiplier" in surface:
            recommended["global"] = _number(surface["iv_multiplier"], "recommended_vol_surface.iv_multiplier")
        else:
            raise InvalidRunError("The calibration result has no global_metrics.recommended_iv_multiplier.")
        bands = result.get("bands") or {}
        if not isinstance(bands, Mapping):
            raise InvalidRunError("The calibration result's bands must be a table of band name to metrics.")
        for band, band_metrics in bands.items():
            if band == "global":
                raise InvalidRunError("'global' is reserved and cannot be a band name.")
            if isinstance(band_metrics, Mapping) and "recommended_iv_multiplier" in band_metrics:
                recommended[str(band)] = _number(
                    band_metrics["recommended_iv_multiplier"], f"bands.{band}.recommended_iv_multiplier"
                )
        for scope, value in recommended.items():
            self.check_number(scope, value, result)
            if not value > 0:
                raise InvalidRunError(
                    f"The recommended {self.value_name(scope, result)} is {value}; it must be a positive number."
                )
        n = metrics.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidRunError(
                f"The calibration result's global_metrics.n must be a whole number ≥ 0, not {n!r:.40}."
            )
        vega = _number(metrics.get("vega_sum"), "global_metrics.vega_sum")
        details = {key: value for key, value in result.items() if key not in ("rows",)}
        return Extracted(recommended=recommended, sample_size=n, vega_sum=vega, details=details)

    def validate(self, values: Mapping[str, Any]) -> dict[str, float]:
        checked = super().validate(values)
        for scope, value in checked.items():
            if value <= 0:
                raise InvalidRunError(f"The {scope} IV multiplier must be positive, not {value}.")
        return checked

    def score_parts(self, values: Mapping[str, float], run: Any) -> dict[str, float] | None:
        """How badly the multipliers make the model match the market on the run's own bands, per bucket; lower is
        better, and the score (:meth:`~calibration_policy.domain.Domain.score`) is the parts' mean.

        Each band of the run is a bucket of options: the multiplier that prices it (the band's own, else the
        global one, as the options agent does) scales its vega-weighted mean model IV, and the bucket's error is
        |model IV × multiplier − market IV| as a share of the market IV. When the band gives only its
        recommended multiplier r (vega-weighted mean market IV over model IV, as the calibration computes it),
        that share is exactly |multiplier / r − 1|; a band that also gives ``market_iv`` and ``synthetic_iv``
        (its vega-weighted means) is scored on them. A part is a bucket's error × √(sample size) × its vega over
        the priced buckets' mean vega, so their mean is the vega-weighted error scaled like the default; the
        options no band covers (the run's total vega minus the bands') count with the global multiplier against
        the run's global recommendation. A run without band vega falls back to the default tracking error per
        scope; a broken band entry raises (the watch then says it cannot score the run, never a roll back)."""
        buckets = _buckets(run)
        if buckets is None:
            return tracking_error_parts(values, run)
        priced: list[tuple[str, float, float, float, float]] = []
        for scope, vega, market, model in buckets:
            multiplier = values.get(scope, values.get("global"))
            if multiplier is not None:  # as score: a bucket no value prices does not count
                priced.append((scope, vega, market, model, float(multiplier)))
        total = sum(item[1] for item in priced)
        if not total > 0:
            return None
        scale = len(priced) / total * math.sqrt(max(int(run.sample_size), 1))
        parts: dict[str, float] = {}
        for scope, vega, market, model, multiplier in priced:
            key = scope if scope not in parts else f"{scope} (uncovered)"
            parts[key] = vega * abs(multiplier * model - market) / market * scale
        return parts

    def scope_label(self, scope: str, details: Mapping[str, Any] | None = None) -> str:
        if scope == "global":
            return "Global"
        band = ((details or {}).get("bands") or {}).get(scope) or {}
        label = scope.replace("_", " ").capitalize()
        if "min_dte" in band and "max_dte" in band:
            label += f" ({band['min_dte']}–{band['max_dte']}d)"
        return label


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where} is {value!r:.40}, not a positive number")
    return float(value)


def _buckets(run: Any) -> list[tuple[str, float, float, float]] | None:
    """``(scope, vega, market IV, model IV)`` per bucket of options the run calibrated on: its bands, and the
    options no band covers (scored with the global multiplier; their IVs are the run's global recommendation,
    model IV 1). None: the run has no band vega to score on. A broken entry raises ``ValueError``."""
    bands = getattr(run, "bands", None) or {}
    if not isinstance(bands, Mapping) or not any(isinstance(b, Mapping) and "vega_sum" in b for b in bands.values()):
        return None
    found: list[tuple[str, float, float, float]] = []
    for name, band in bands.items():
        if not isinstance(band, Mapping):
            raise ValueError(f"band {name!r:.40} is {band!r:.40}, not a table of metrics")
        vega = band.get("vega_sum")
        if isinstance(vega, bool) or not isinstance(vega, (int, float)) or not math.isfinite(vega) or vega < 0:
            raise ValueError(f"band {name!r:.40}'s vega_sum is {vega!r:.40}, not a number ≥ 0")
        if "market_iv" in band or "synthetic_iv" in band:
            market = _positive(band.get("market_iv"), f"band {name!r:.40}'s market_iv")
            model = _positive(band.get("synthetic_iv"), f"band {name!r:.40}'s synthetic_iv")
        else:
            market = _positive(band.get("recommended_iv_multiplier"), f"band {name!r:.40}'s recommended_iv_multiplier")
            model = 1.0
        found.append((str(name), float(vega), market, model))
    metrics = getattr(run, "global_metrics", None) or {}
    rest = metrics.get("vega_sum") if isinstance(metrics, Mapping) else None
    if isinstance(rest, (int, float)) and not isinstance(rest, bool) and math.isfinite(rest):
        uncovered = float(rest) - sum(vega for _, vega, _, _ in found)
        if uncovered > 1e-9 * max(float(rest), 1.0):
            recommended = run.recommended_iv_multiplier.get("global")
            found.append(("global", uncovered, _positive(recommended, "the global recommended multiplier"), 1.0))
    return found


def surface_values(snapshot: Mapping[str, Any]) -> dict[str, float]:
    """``{"global": x, band: y, …}`` from a vol-surface snapshot; a missing or non-number value is an error."""
    bands = snapshot.get("bands") or {}
    found = {"global": snapshot["iv_multiplier"], **{name: band["iv_multiplier"] for name, band in bands.items()}}
    for scope, value in found.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"the {scope} iv_multiplier is {value!r:.40}, not a number")
    return {scope: float(value) for scope, value in found.items()}


def surface_with(
    snapshot: Mapping[str, Any],
    values: Mapping[str, float],
    known_bands: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The snapshot with new multipliers; a band the file lacks is added only when its DTE range is known."""
    new = copy.deepcopy(dict(snapshot))
    bands = new.setdefault("bands", {})
    for scope, value in values.items():
        if scope == "global":
            new["iv_multiplier"] = value
        elif scope in bands:
            bands[scope]["iv_multiplier"] = value
        elif known_bands and scope in known_bands:
            low, high = known_bands[scope]
            bands[scope] = {"min_dte": low, "max_dte": high, "iv_multiplier": value}
        else:
            raise TargetError(
                f"The vol surface has no band {scope!r} (it has {', '.join(sorted(bands)) or 'none'}); "
                "add the band with its min_dte and max_dte to the file first."
            )
    return new


def default_surface_file() -> Path:
    """Where a data folder keeps a vol surface shared by every underlying: ``<data>/config/vol_surface.json``."""
    return data_root() / "config" / "vol_surface.json"


def vol_surface_target(underlying: str, path: str | os.PathLike[str] | None = None) -> JsonFileTarget:
    """The underlying's vol surface: ``path``, else the data folder's copy for it, else its shared file."""
    check_underlying(underlying)
    if path is None:
        own = live_config_copy("vol_surface", underlying)
        path = own if own.is_file() else default_surface_file()
    return JsonFileTarget(path, values=surface_values, with_values=surface_with)


@hookimpl
def register_domains(register):
    register(VolSurfaceDomain())


@hookimpl
def register_targets(register):
    register(
        TargetFactory(
            "vol_surface",
            vol_surface_target,
            "Vol surface file",
            "A vol-surface JSON file (a global IV multiplier and one per DTE band) in the data folder's config/.",
        )
    )
