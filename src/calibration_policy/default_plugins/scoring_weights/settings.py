"""Scoring-weights settings: the weights policy and auto mode, from one TOML file.

``[policy]`` is an ordinary :class:`~calibration_policy.CalibrationUpdatePolicy` for the
``scoring_weights`` domain; ``[auto]`` says when auto mode may apply a suggestion on its own, and
``[auto.out_of_sample]`` how strong the evidence on unseen trades must be (:mod:`.evidence`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from calibration_policy.errors import PolicyError
from calibration_policy.paths import data_root
from calibration_policy.policy import CalibrationUpdatePolicy, read_toml

from .analysis import weights_policy
from .gate import OutOfSampleOptions

SETTINGS_ENV = "CALIBRATION_WEIGHTS_SETTINGS"
AUTO_PERMUTATIONS = 1000  # enough shuffles to reach a look's share of the budget (0.05 / 13 needs 259)


def _friendly(error: ValidationError, what: str) -> str:
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            problems.append(f"{name} is not a setting (check the spelling)")
        elif not name or item["type"] == "value_error":  # a sentence from a validator, already in words
            problems.append(item["msg"].removeprefix("Value error, ").rstrip("."))
        else:
            message = item["msg"].replace("Input should be", "must be")
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
        default_factory=lambda: OutOfSampleOptions(permutations=AUTO_PERMUTATIONS),
        description="How strong that out-of-sample evidence must be.",
    )
    stream_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Largest chance, over all of auto mode's looks at one weights file, that noise is ever "
        "applied on its own; each look spends an equal share of it.",
    )
    max_looks: int = Field(
        default=13,
        ge=1,
        le=10_000,
        description="Looks the budget is shared over (each look that could apply spends stream_alpha / "
        "max_looks); once spent, auto mode only suggests.",
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise PolicyError(_friendly(error, "auto-mode settings")) from None

    @field_validator("out_of_sample", mode="before")
    @classmethod
    def _auto_permutations(cls, value: Any) -> Any:
        """Auto mode's own default shuffles: the per-rule default (200) cannot reach one look's level."""
        if isinstance(value, dict) and "permutations" not in value:
            return {**value, "permutations": AUTO_PERMUTATIONS}
        return value

    @property
    def look_level(self) -> float:
        """The p-value one look must reach: an equal share of the stream's budget (Bonferroni over max_looks)."""
        return self.stream_alpha / self.max_looks

    @model_validator(mode="after")
    def _budget_testable(self) -> AutoSettings:
        gate = self.out_of_sample
        if not self.out_of_sample_gate:
            return self
        if gate.require == "interval":
            raise ValueError(
                'auto mode keeps noise under its budget with the permutation p-value, which require = "interval" '
                'leaves out; use require = "both" (the default) or "p_value"'
            )
        smallest = 1 / (gate.permutations + 1)
        if smallest > self.look_level:
            raise ValueError(
                f"with {gate.permutations:,} permutations the smallest p-value is {smallest:.3g}, above one look's "
                f"share of the budget ({self.stream_alpha:g} / {self.max_looks} = {self.look_level:.3g}), so auto "
                f"mode could never apply; use at least {math.ceil(1 / self.look_level) - 1:,} permutations"
            )
        return self


@dataclass(frozen=True)
class WeightsSettings:
    policy: CalibrationUpdatePolicy
    auto: AutoSettings


def load_weights_settings(
    path: str | os.PathLike[str] | None = None, data_dir: str | os.PathLike[str] | None = None
) -> WeightsSettings:
    """The ``[policy]`` and ``[auto]`` tables of a TOML file, over the built-in defaults.

    The file is ``path``, else ``$CALIBRATION_WEIGHTS_SETTINGS``, else ``scoring_weights.toml`` in
    ``data_dir`` (default: the data root) when it exists; without any, the defaults apply (auto mode off).
    """
    default = Path(data_dir if data_dir is not None else data_root()) / "scoring_weights.toml"
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
