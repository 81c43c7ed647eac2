"""The ``vol_surface`` domain: a global IV multiplier plus one per DTE band, and its live config file.

The target is a vol-surface JSON file (``{"iv_multiplier": x, "bands": {name: {"min_dte", "max_dte",
"iv_multiplier"}}}``), the options agent's format. It is the library's own, so an installed package
governs a demo folder (``<data>/config/vol_surface_<U>.json``) with no host present; a host that writes
its file through its own code registers its ``vol_surface`` target with ``replaces=True``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from calibration_policy.domain import Domain, Extracted
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

    def scope_label(self, scope: str, details: Mapping[str, Any] | None = None) -> str:
        if scope == "global":
            return "Global"
        band = ((details or {}).get("bands") or {}).get(scope) or {}
        label = scope.replace("_", " ").capitalize()
        if "min_dte" in band and "max_dte" in band:
            label += f" ({band['min_dte']}–{band['max_dte']}d)"
        return label


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
