"""Rules the policy lab makes safe to try: replay them over the history before they go live.

- ``min_delta_directional``: a different minimum change up and down (use it instead of ``min_delta``).
- ``stabilization_window``: like Kubernetes' autoscaler, move only as far as the most conservative
  smoothed value of the last N days (put it before ``min_delta``, which then measures the result).
- ``cooldown_period``: no change within N days of the last one.

``stabilization_window`` has no batch form (it reads each run's own list of recent values): the
engine asks it run by run, as it asks any plugin rule without one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

from calibration_policy.decide import EPSILON, RuleContext, reaches
from calibration_policy.engine import BatchContext, BatchVerdict
from calibration_policy.hookspecs import hookimpl
from calibration_policy.humanize import fmt_num, fmt_pair
from calibration_policy.models import RuleVerdict
from calibration_policy.specs import Rule

NonNegative = Annotated[float, Strict(), Field(ge=0)]
Days = Annotated[float, Strict(), Field(gt=0, le=3650)]


class DirectionalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    up: NonNegative = Field(0.03, description="Smallest rise worth applying.")
    down: NonNegative = Field(0.03, description="Smallest fall worth applying.")


class WindowOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    days: Days = Field(3.0, description="How many days of smoothed values to look back over.")


class CooldownOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    days: Days = Field(3.0, description="Fewest days between two changes.")


def _now(ctx: RuleContext) -> datetime:
    return ctx.evidence.get("run_time") or datetime.now(UTC)


def min_delta_directional(ctx: RuleContext) -> RuleVerdict:
    up, down = ctx.options.up, ctx.options.down
    numbers, moved, parts = {}, [], []
    for scope, new in ctx.proposed.items():
        old = ctx.current.get(scope)
        if old is None:
            moved.append(scope)
            continue
        delta = new - old
        threshold = up if delta >= 0 else down
        numbers[scope] = {"old": old, "new": new, "delta": delta, "threshold": threshold}
        if reaches(delta, threshold):
            moved.append(scope)
        else:
            shown, thr = fmt_pair(abs(delta), threshold)
            parts.append(f"{ctx.label(scope)} {'up' if delta >= 0 else 'down'} {shown} < {thr}")
    if moved:
        return RuleVerdict(
            "min_delta_directional",
            True,
            "change large enough for " + ", ".join(map(ctx.label, moved)),
            numbers,
            counts_in_reason=False,
        )
    return RuleVerdict(
        "min_delta_directional",
        False,
        f"change too small ({'; '.join(parts)})",
        numbers,
        needs=f"a rise needs at least {fmt_num(up)}, a fall at least {fmt_num(down)}",
    )


def stabilization_window(ctx: RuleContext) -> RuleVerdict:
    days = ctx.options.days
    now = _now(ctx)
    start = now - timedelta(days=days)
    recent = [values for when, values in ctx.evidence.get("recent_smoothed") or () if start <= when < now]
    adjusted, notes = dict(ctx.proposed), []
    for scope, new in ctx.proposed.items():
        old = ctx.current.get(scope)
        if old is None:
            continue
        seen = [values[scope] for values in recent if scope in values] + [new]
        if all(value >= old for value in seen):
            pick = min(seen)
        elif all(value <= old for value in seen):
            pick = max(seen)
        else:
            pick = old  # the last days point both ways: hold
        if pick != new:
            adjusted[scope] = pick
            if pick == old:
                notes.append(f"{ctx.label(scope)} held at {fmt_num(old)} (the last {days:g} days point both ways)")
            else:
                notes.append(
                    f"{ctx.label(scope)} limited to {fmt_num(pick)} (smoothed {fmt_num(new)}; "
                    f"the most conservative value of the last {days:g} days)"
                )
    numbers = {"days": days, "runs_in_window": len(recent)}
    if not notes:
        return RuleVerdict(
            "stabilization_window", True, f"steady over the last {days:g} days", numbers, counts_in_reason=False
        )
    return RuleVerdict("stabilization_window", True, "; ".join(notes), numbers, adjusted=adjusted)


def cooldown(ctx: RuleContext) -> RuleVerdict:
    days = ctx.options.days
    last = ctx.evidence.get("last_applied_at")
    if last is None:
        return RuleVerdict("cooldown_period", True, "no earlier change", {"days": days}, counts_in_reason=False)
    elapsed = (_now(ctx) - last).total_seconds() / 86400
    numbers = {"days": days, "days_since_last_change": round(elapsed, 6)}
    if elapsed + 1e-9 >= days:
        return RuleVerdict(
            "cooldown_period", True, f"last change {elapsed:.1f} days ago", numbers, counts_in_reason=False
        )
    return RuleVerdict(
        "cooldown_period",
        False,
        f"cooling down (last change {elapsed:.1f} days ago, {days:g} days between changes)",
        numbers,
        needs=f"wait {days - elapsed:.1f} more days",
    )


# -- batch forms (the engine's; each passes as its fn does) -------------------------------------------


def min_delta_directional_batch(ctx: BatchContext) -> BatchVerdict:
    import numpy as np

    up, down = ctx.options.up, ctx.options.down
    moved = np.zeros(ctx.size, dtype=bool)
    for scope, new in ctx.proposed.items():
        old = ctx.current.get(scope)
        if old is None:
            moved[:] = True
            continue
        delta = new - old
        threshold = np.where(delta >= 0, up, down)
        moved |= np.abs(delta) >= threshold - EPSILON * np.maximum(1.0, np.abs(threshold))
    return BatchVerdict(moved)


def cooldown_batch(ctx: BatchContext) -> BatchVerdict:
    import numpy as np

    last = ctx.evidence["last_applied_at"]  # NaT: no earlier change
    now = ctx.evidence["run_time"].astype("datetime64[us]").view(np.int64)
    since = last.astype("datetime64[us]").view(np.int64)
    elapsed = (now - since).astype(np.float64) / 1e6 / 86400  # as timedelta.total_seconds() / 86400
    return BatchVerdict(np.isnat(last) | (elapsed + 1e-9 >= ctx.options.days))


@hookimpl
def register_rules(register):
    register(
        Rule(
            "min_delta_directional",
            min_delta_directional,
            "Change large enough, by direction",
            "A rise must reach 'up' and a fall must reach 'down' (use instead of min_delta).",
            options=DirectionalOptions,
            batch=min_delta_directional_batch,
        )
    )
    register(
        Rule(
            "stabilization_window",
            stabilization_window,
            "Stabilization window",
            "Move only as far as the most conservative smoothed value of the last 'days' days; "
            "hold when they point both ways (put it before min_delta).",
            options=WindowOptions,
            evidence=("run_time", "recent_smoothed"),
        )
    )
    register(
        Rule(
            "cooldown_period",
            cooldown,
            "Cooldown",
            "No change within 'days' days of the last one.",
            options=CooldownOptions,
            evidence=("run_time", "last_applied_at"),
            batch=cooldown_batch,
        )
    )
