"""A starting policy for desk limits: what a ``[policy]`` TOML for this domain would say.

The core's default rules include ``min_vega_sum``, an options idea: a limits run has no vega, so
that rule would block every update. This policy names the rules that fit instead.
"""

from __future__ import annotations

from typing import Any

from calibration_policy import CalibrationUpdatePolicy

from .domain import DOMAIN_NAME

RULES = ("min_sample_size", "bounds", "max_cut_pct", "min_delta")
DEFAULTS: dict[str, Any] = {
    "domain": DOMAIN_NAME,
    "rules": RULES,
    "min_sample_size": 40,  # trading days of returns behind a volatility
    "min_delta_global": 500_000.0,  # a limit moves only when it moves by half a million or more
    "smoothing_window_days": 5.0,
}


def limits_policy(**overrides: Any) -> CalibrationUpdatePolicy:
    """The starting policy, with any setting overridden (``limits_policy(min_sample_size=20)``)."""
    return CalibrationUpdatePolicy(**{**DEFAULTS, **overrides})
