"""The ``max_widen_bp`` rule and the ``trimmed_mean`` smoother.

Widening a venue's markup a lot in one day loses the venue's flow to the other makers, so a calibration
asking for it waits for a person: the rule fails, naming the venue. The smoother drops the highest and
lowest of a venue's recent fits (one bad day of fills moves nothing) and averages the rest.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from calibration_policy.plugin import RuleVerdict

RULE_NAME = "max_widen_bp"
SMOOTHER_NAME = "trimmed_mean"


class MaxWidenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    max_widen_bp: Annotated[float, Strict()] = Field(
        0.5,
        gt=0,
        title="largest widening",
        description="Largest widening of one venue's markup in one update, in bp.",
        json_schema_extra={"unit": "bp"},
    )


def max_widen_bp(ctx: Any) -> RuleVerdict:
    limit = ctx.options.max_widen_bp
    too_wide = [
        f"{ctx.label(venue)} +{new - ctx.current[venue]:.2f} bp"
        for venue, new in sorted(ctx.proposed.items())
        if venue in ctx.current and new - ctx.current[venue] > limit
    ]
    if too_wide:
        return RuleVerdict(RULE_NAME, False, f"widens too far ({', '.join(too_wide)}; at most {limit:g} bp)")
    return RuleVerdict(RULE_NAME, True, f"no venue widens by more than {limit:g} bp", counts_in_reason=False)


class TrimOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    trim: Annotated[int, Strict()] = Field(1, ge=0, le=3, description="Fits dropped at each end of the window.")


def trimmed_mean(times: Any, values: Any, options: Any) -> float:
    ordered = sorted(float(v) for v in values)
    trim = options.trim if options is not None else TrimOptions().trim
    if len(ordered) <= 2 * trim:  # too few fits to drop any: the plain mean
        trim = 0
    kept = ordered[trim : len(ordered) - trim]
    return sum(kept) / len(kept)
