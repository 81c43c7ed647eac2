"""Scoring-weights settings: the weights policy and auto mode, from one TOML file.

``[policy]`` is an ordinary :class:`~calibration_policy.CalibrationUpdatePolicy` for the
``scoring_weights`` domain; ``[auto]`` says when auto mode may apply a suggestion on its own, and
``[auto.out_of_sample]`` how strong the evidence on unseen trades must be (:mod:`.evidence`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from calibration_policy.errors import PolicyError
from calibration_policy.paths import data_root
from calibration_policy.policy import CalibrationUpdatePolicy, read_toml

from .analysis import weights_policy
from .gate import OutOfSampleOptions

SETTINGS_ENV = "CALIBRATION_WEIGHTS_SETTINGS"


def _friendly(error: ValidationError, what: str) -> str:
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or what
        message = (
            "is not a setting (check the spelling)"
            if item["type"] == "extra_forbidden"
            else (item["msg"].replace("Input should be", "must be"))
        )
        problems.append(f"{name} {message} (got {item.get('input')!r:.40})")
    return f"Invalid {what}: " + "; ".join(problems) + "."


class AutoSettings(BaseModel):
    """Auto mode: suggest when enough new trades arrived; apply within bounds when it clearly helps."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    enabled: bool = Field(default=False, description="Off by default: weights change only when a person approves.")
    min_trades_between: int = Field(default=100, ge=1, description="New trades needed since the last suggestion.")
    max_weight_change: float = Field(
        default=0.1, gt=0, le=1, description="Largest move of one weight in one automatic change."
    )
    min_improvement_pct: float = Field(
        default=2.0, ge=0, description="Least estimated gain in winning trades taken, in %."
    )
    require_approval: bool = Field(default=False, description="Only suggest; a person approves every change.")
    out_of_sample_gate: bool = Field(
        default=True,
        description="Apply on its own only when the gain holds on later "
        "trades the weights never saw; otherwise leave it for a person.",
    )
    out_of_sample: OutOfSampleOptions = Field(
        default_factory=OutOfSampleOptions, description="How strong that out-of-sample evidence must be."
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise PolicyError(_friendly(error, "auto-mode settings")) from None


@dataclass(frozen=True)
class WeightsSettings:
    policy: CalibrationUpdatePolicy
    auto: AutoSettings


def load_weights_settings(path: str | os.PathLike[str] | None = None) -> WeightsSettings:
    """The ``[policy]`` and ``[auto]`` tables of a TOML file, over the built-in defaults.

    The file is ``path``, else ``$CALIBRATION_WEIGHTS_SETTINGS``, else ``data/scoring_weights.toml``
    when it exists; without any, the defaults apply (auto mode off).
    """
    default = data_root() / "scoring_weights.toml"
    chosen = path or os.environ.get(SETTINGS_ENV) or (default if default.is_file() else None)
    if chosen is None:
        return WeightsSettings(weights_policy(), AutoSettings())
    chosen = Path(chosen)
    data = read_toml(chosen, "Weights settings file")
    extra = sorted(set(data) - {"policy", "auto"})
    if extra:
        raise PolicyError(f"{chosen}: {extra[0]!r} is not a table of weights settings; use [policy] and [auto].")
    try:
        return WeightsSettings(weights_policy(**data.get("policy", {})), AutoSettings(**data.get("auto", {})))
    except PolicyError as error:
        raise PolicyError(f"{chosen}: {error}") from None
