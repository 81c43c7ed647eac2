"""The ``risk_limits`` domain: one position limit per desk, in currency units, and its live file.

A desk's limit is the largest position it may hold. It is recalibrated from the desk's realized
volatility (:mod:`.source`), so a calm desk may hold more and a desk whose market turned wild must
hold less. Every limit is a positive, finite amount; a set with a zero, negative or missing-number
limit never goes live, and the error names the desk.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from calibration_policy.plugin import Domain, Extracted, InvalidRunError, JsonFileTarget

DOMAIN_NAME = "risk_limits"
SOURCE_NAME = "realized-vol"  # a source name is lower-case letters, digits and '-' (it names the run files)
DEFAULT_LIMITS_FILE = Path("data") / "risk_limits.json"
DESK_LABELS = {"fx": "FX"}


def desk_label(desk: str) -> str:
    """ "Rates", "Equities", "FX": how a person names the desk."""
    return DESK_LABELS.get(desk, desk.replace("_", " ").capitalize())


def money(value: float) -> str:
    """25000000.0 → "25,000,000": limits are read in whole currency units."""
    return f"{value:,.0f}"


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidRunError(f"The realized-vol result's {where} must be a finite number, not {value!r:.40}.")
    return float(value)


class RiskLimitsDomain(Domain):
    name = DOMAIN_NAME
    title = "Desk position limits"
    parameter_label = "position limit"
    parameter_label_plural = "position limits"
    sample_unit = "trading days"
    sources = (SOURCE_NAME,)
    # The safety net when a policy sets no bounds: a limit under 100 thousand or over 10 billion
    # is a broken calibration (a desk with almost no price moves), not a sizing decision.
    default_bounds = (100_000.0, 10_000_000_000.0)

    def extract(self, result: Mapping[str, Any]) -> Extracted:
        """Read a realized-vol result: ``desks.<desk>.recommended_limit`` and the days it measured."""
        if not isinstance(result, Mapping):
            raise InvalidRunError(f"A realized-vol result must be a dict, not {type(result).__name__}.")
        desks = result.get("desks")
        if not isinstance(desks, Mapping) or not desks:
            raise InvalidRunError(
                "The realized-vol result has no desks table (desk → realized_vol, recommended_limit)."
            )
        recommended: dict[str, float] = {}
        for desk, row in desks.items():
            if not isinstance(row, Mapping):
                raise InvalidRunError(f"desks.{desk} must be a table with realized_vol and recommended_limit.")
            vol = _number(row.get("realized_vol"), f"desks.{desk}.realized_vol")
            limit = _number(row.get("recommended_limit"), f"desks.{desk}.recommended_limit")
            if vol <= 0:
                raise InvalidRunError(
                    f"The {desk_label(str(desk))} desk's realized volatility is {vol:g}; "
                    "it must be positive to size a limit from it."
                )
            if limit <= 0:
                raise InvalidRunError(
                    f"The recommended {desk_label(str(desk))} limit is {limit:g}; it must be positive."
                )
            recommended[str(desk)] = limit
        n = result.get("n_days")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidRunError(f"The realized-vol result's n_days must be a whole number ≥ 0, not {n!r:.40}.")
        details = {
            key: result[key] for key in ("book", "as_of", "first_day", "window_days", "currency") if key in result
        }
        details["desks"] = {str(desk): dict(row) for desk, row in desks.items()}
        return Extracted(recommended=recommended, sample_size=n, vega_sum=None, details=details)

    def validate(self, values: Mapping[str, Any]) -> dict[str, float]:
        checked = super().validate(values)
        for desk, value in checked.items():
            if value <= 0:
                raise InvalidRunError(f"The {desk_label(desk)} position limit must be positive, not {value:g}.")
        return checked

    def scope_label(self, scope: str, details: Mapping[str, Any] | None = None) -> str:
        return desk_label(scope)


def _write_limits(snapshot: dict[str, Any], values: Mapping[str, float]) -> dict[str, Any]:
    # Checked again here: whatever path a value set takes to the file, a non-positive limit never lands.
    return {**snapshot, **RiskLimitsDomain().validate(values)}


def limits_target(
    underlying: str | None = None, path: str | os.PathLike[str] | None = None, name: str | None = None
) -> JsonFileTarget:
    """The live limits file, flat ``{desk: limit}``; archived under its file name's stem.

    ``underlying`` is the book; one file holds one book's limits, so it does not pick the file
    (it is accepted so the target factory has the shape every domain's has).
    """
    return JsonFileTarget(path or DEFAULT_LIMITS_FILE, name=name, with_values=_write_limits)
