"""The out-of-sample gate: its options and the ``out_of_sample`` rule.

Kept apart from :mod:`.evidence` (numpy, pandas) so registering the rule and validating a
policy that names it stay cheap; the evidence itself is computed by the weights flow.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from calibration_policy.errors import PolicyError
from calibration_policy.models import RuleVerdict

Window = Literal["expanding", "rolling"]
Measure = Literal["equal_volume", "at_threshold"]
Require = Literal["interval", "p_value", "both"]
MEASURES: tuple[Measure, ...] = ("equal_volume", "at_threshold")

DEFAULT_FOLDS = 4
DEFAULT_MIN_TRADES_PER_FOLD = 50
DEFAULT_RESAMPLES = 1000
DEFAULT_PERMUTATIONS = 200
DEFAULT_CONFIDENCE = 0.9
DEFAULT_BAR_PCT = 2.0  # auto mode's default min_improvement_pct, for the baseline's "clears the bar" share


def _friendly(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            problems.append(f"{name} is not a setting (check the spelling)")
        elif not name:
            problems.append(item["msg"].removeprefix("Value error, "))
        else:
            problems.append(
                f"{name} {item['msg'].replace('Input should be', 'must be')} (got {item.get('input')!r:.40})"
            )
    return "Invalid out-of-sample settings: " + "; ".join(problems) + "."


class OutOfSampleOptions(BaseModel):
    """When out-of-sample evidence is strong enough for auto mode to apply new weights on its own."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    require: Require = Field(
        default="both",
        description="interval: the bootstrap interval lies above zero; "
        "p_value: the permutation p-value is at most max_p_value; both: both.",
    )
    measure: Measure = Field(
        default="equal_volume",
        description="equal_volume: PnL with both sets taking the same "
        "number of trades (a gain cannot come from trading more); at_threshold: PnL at 0.6.",
    )
    confidence: float = Field(
        default=DEFAULT_CONFIDENCE, gt=0, lt=1, description="Two-sided confidence of the interval."
    )
    max_p_value: float = Field(default=0.05, gt=0, le=1, description="Largest permutation p-value that passes.")
    folds: int = Field(default=DEFAULT_FOLDS, ge=1, le=50, description="Walk-forward folds.")
    window: Window = Field(default="expanding", description="Fit on all earlier trades, or on the last train_blocks.")
    train_blocks: int = Field(default=1, ge=1, description="Blocks of earlier trades a rolling window fits on.")
    min_trades_per_fold: int = Field(default=DEFAULT_MIN_TRADES_PER_FOLD, ge=2, description="Fewest trades per block.")
    resamples: int = Field(default=DEFAULT_RESAMPLES, ge=100, le=100_000, description="Bootstrap resamples.")
    permutations: int = Field(default=DEFAULT_PERMUTATIONS, ge=1, le=10_000, description="Shuffles of the outcomes.")
    seed: int = Field(default=0, ge=0, description="Seed of the bootstrap and the shuffles.")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise PolicyError(_friendly(error)) from None

    @model_validator(mode="after")
    def _tests_for_signal(self) -> OutOfSampleOptions:
        if self.require == "interval" and self.measure == "at_threshold":
            raise ValueError(
                'require = "interval" with measure = "at_threshold" does not test for signal: on trades with no '
                "signal but a positive average PnL, weights that take more trades make more PnL and pass it; "
                'use measure = "equal_volume", or require = "p_value" or "both"'
            )
        return self

    @model_validator(mode="after")
    def _p_value_reachable(self) -> OutOfSampleOptions:
        smallest = 1 / (self.permutations + 1)
        if self.require != "interval" and smallest > self.max_p_value:
            raise ValueError(
                f"with {self.permutations:,} permutations the smallest possible p-value is {smallest:.3g}, above "
                f"max_p_value {self.max_p_value:g}, so the gate could never pass; use at least "
                f"{math.ceil(1 / self.max_p_value) - 1:,} permutations"
            )
        return self


def out_of_sample_rule(ctx: Any) -> Any:
    """The ``out_of_sample`` rule: passes when the evidence the weights flow measured stands up."""
    evidence = ctx.evidence.get("out_of_sample")  # an evidence.Evidence, measured by the weights flow
    if not callable(getattr(evidence, "verdict", None)):
        return RuleVerdict(
            "out_of_sample",
            False,
            "the suggested weights were not checked on unseen trades",
            {},
            needs="let the scoring-weights flow measure them (weights suggest or auto)",
        )
    passed, text, measured = evidence.verdict(ctx.options)
    return RuleVerdict(
        "out_of_sample",
        passed,
        text,
        measured,
        needs=None if passed else "more trades, or a suggestion whose gain holds out of sample",
    )
