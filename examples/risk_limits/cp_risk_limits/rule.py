"""The ``max_cut_pct`` rule: never cut a desk's limit by more than a set share in one update.

A volatility spike can halve a desk's recommended limit overnight. Cutting it in one go forces
the desk to dump half its book into the very market that spiked; this rule cuts at most
``max_cut_pct`` percent per update instead (like ``max_step`` clips a move), and the next updates
finish the cut while the spike lasts. Raising a limit is never slowed down by it.

    rules = ["min_sample_size", "bounds", "max_cut_pct", "min_delta"]
    [rule_options.max_cut_pct]
    max_cut_pct = 15
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from calibration_policy.plugin import RuleVerdict

from .domain import money

RULE_NAME = "max_cut_pct"


class MaxCutOptions(BaseModel):
    """The options a policy gives the rule under ``[rule_options.max_cut_pct]``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    # Strict: in TOML `max_cut_pct = true` or `"20"` is an error, not a number.
    max_cut_pct: Annotated[float, Strict()] = Field(
        20.0, gt=0, le=100, description="Largest cut of one desk's limit in one update, in % of the live limit."
    )


def max_cut_pct(ctx: Any) -> Any:
    """Clip every cut deeper than the option allows to exactly that cut; pass with the numbers."""
    limit = ctx.options.max_cut_pct
    clipped, notes, cuts = dict(ctx.proposed), [], {}
    for desk, new in ctx.proposed.items():
        old = ctx.current.get(desk)
        if old is None or old <= 0 or new >= old:
            continue
        cut = (old - new) / old * 100
        cuts[desk] = round(cut, 4)
        if cut <= limit:
            continue
        clipped[desk] = old * (1 - limit / 100)
        notes.append(
            f"{ctx.label(desk)} limit cut to {money(clipped[desk])}, {limit:g}% below {money(old)} "
            f"(the calibration asks for {money(new)}, a {cut:.1f}% cut; at most {limit:g}% per update)"
        )
    numbers = {"max_cut_pct": limit, "cuts_pct": cuts}
    if not notes:
        return RuleVerdict(
            RULE_NAME, True, f"every cut within {limit:g}% of the live limit", numbers, counts_in_reason=False
        )
    return RuleVerdict(RULE_NAME, True, "; ".join(notes), numbers, adjusted=clipped)
