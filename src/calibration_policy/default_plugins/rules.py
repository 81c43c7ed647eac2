"""Built-in apply rules. Each returns a verdict with plain-English text and its numbers."""

from __future__ import annotations

from calibration_policy.decide import RuleContext
from calibration_policy.engine import BatchContext, BatchVerdict
from calibration_policy.hookspecs import hookimpl
from calibration_policy.humanize import fmt_against, fmt_count, fmt_num, fmt_pair
from calibration_policy.models import RuleVerdict
from calibration_policy.plugins import get_domain
from calibration_policy.specs import Rule


def min_sample_size(ctx: RuleContext) -> RuleVerdict:
    unit = get_domain(ctx.policy.domain).sample_unit
    minimum = ctx.policy.min_sample_size
    n = ctx.evidence.get("sample_size")
    numbers = {"sample_size": n, "minimum": minimum}
    if n is None:
        return RuleVerdict("min_sample_size", False, f"the number of {unit} in the sample is unknown", numbers)
    if n >= minimum:
        return RuleVerdict("min_sample_size", True, f"{fmt_count(n)} {unit} (minimum {fmt_count(minimum)})", numbers)
    return RuleVerdict(
        "min_sample_size",
        False,
        f"too few {unit} in the sample ({fmt_count(n)}, minimum {fmt_count(minimum)})",
        numbers,
        needs=f"needs {fmt_count(minimum - n)} more {unit}",
    )


def min_vega_sum(ctx: RuleContext) -> RuleVerdict:
    """The sample's second evidence figure (total vega; a domain names its own: notional, volume)."""
    domain = get_domain(ctx.policy.domain)
    label, amount = domain.evidence_label, domain.evidence_amount
    minimum = ctx.policy.min_vega_sum
    vega = ctx.evidence.get("vega_sum")
    numbers = {"vega_sum": vega, "minimum": minimum}
    if vega is None:
        return RuleVerdict("min_vega_sum", False, f"the {label} of the sample is unknown", numbers)
    if vega >= minimum:
        return RuleVerdict("min_vega_sum", True, f"{label} {amount(vega)} (minimum {amount(minimum)})", numbers)
    more = fmt_count(max(1, minimum - vega))
    return RuleVerdict(
        "min_vega_sum",
        False,
        f"{label} too low ({amount(vega)}, minimum {amount(minimum)})",
        numbers,
        needs=f"needs {more} more {domain.evidence_unit or label}",
    )


def min_delta(ctx: RuleContext) -> RuleVerdict:
    changes = [ctx.change(scope) for scope in ctx.proposed]
    numbers = {c.scope: {"old": c.old, "new": c.new, "delta": c.delta, "threshold": c.threshold} for c in changes}
    moved = [c for c in changes if c.changed]
    parts = []
    for c in changes:
        if not c.changed:
            delta, threshold = fmt_against(abs(c.delta), c.threshold)
            parts.append(f"{ctx.label(c.scope)} {delta} < {threshold}")
    if moved:  # the checklist says which scopes passed and which did not, never "passed" for all of them
        names = ", ".join(ctx.label(c.scope) for c in moved)
        text = f"change large enough for {names}" + (f"; not for {'; '.join(parts)}" if parts else "")
        partly = f"{len(moved)} of {len(changes)}" if parts else None
        return RuleVerdict("min_delta", True, text, numbers, counts_in_reason=False, partly=partly)
    closest = min(changes, key=lambda c: c.threshold - abs(c.delta))
    gap, _ = fmt_pair(closest.threshold - abs(closest.delta), 0.0)
    return RuleVerdict(
        "min_delta",
        False,
        f"change too small ({'; '.join(parts)})",
        numbers,
        needs=f"{ctx.label(closest.scope)} needs to move {gap} more",
    )


def max_step(ctx: RuleContext) -> RuleVerdict:
    step = ctx.policy.max_step
    if step is None:
        return RuleVerdict("max_step", True, "no limit on the size of one step", {}, counts_in_reason=False, idle=True)
    clipped, notes = dict(ctx.proposed), []
    for scope, new in ctx.proposed.items():
        old = ctx.current.get(scope)
        if old is None or abs(new - old) <= step:
            continue
        clipped[scope] = old + step if new > old else old - step
        notes.append(
            f"{ctx.label(scope)} limited to {fmt_num(clipped[scope])} (smoothed {fmt_num(new)}, step limit {fmt_num(step)})"
        )
    if not notes:
        return RuleVerdict(
            "max_step",
            True,
            f"every change within the step limit {fmt_num(step)}",
            {"max_step": step},
            counts_in_reason=False,
        )
    return RuleVerdict("max_step", True, "; ".join(notes), {"max_step": step}, adjusted=clipped)


def bounds(ctx: RuleContext) -> RuleVerdict:
    limits = ctx.policy.effective_bounds()
    if limits is None:
        return RuleVerdict("bounds", True, "no absolute limits set", {}, counts_in_reason=False, idle=True)
    numbers = {"min": limits.min, "max": limits.max}
    outside = [
        f"{ctx.label(scope)} {fmt_num(value)} is outside the allowed range {fmt_num(limits.min)}–{fmt_num(limits.max)}"
        for scope, value in ctx.proposed.items()
        if not limits.min <= value <= limits.max
    ]
    if outside:
        return RuleVerdict(
            "bounds", False, "; ".join(outside), numbers, needs="check the calibration; the bounds are a safety net"
        )
    return RuleVerdict(
        "bounds", True, f"within {fmt_num(limits.min)}–{fmt_num(limits.max)}", numbers, counts_in_reason=False
    )


# -- the same rules over arrays of runs (the engine's batch forms; each passes and adjusts as its fn) --


def min_sample_size_batch(ctx: BatchContext) -> BatchVerdict:
    return BatchVerdict(ctx.evidence["sample_size"] >= ctx.policy.min_sample_size)  # unknown (NaN) fails


def min_vega_sum_batch(ctx: BatchContext) -> BatchVerdict:
    return BatchVerdict(ctx.evidence["vega_sum"] >= ctx.policy.min_vega_sum)


def min_delta_batch(ctx: BatchContext) -> BatchVerdict:
    import numpy as np

    moved = np.zeros(ctx.size, dtype=bool)
    for scope, new in ctx.proposed.items():
        old = ctx.current.get(scope)
        moved |= True if old is None else ctx.reaches(new - old, ctx.threshold_for(scope))
    return BatchVerdict(moved)


def max_step_batch(ctx: BatchContext) -> BatchVerdict:
    import numpy as np

    step = ctx.policy.max_step
    passed = np.ones(ctx.size, dtype=bool)
    if step is None:
        return BatchVerdict(passed)
    clipped = {}
    for scope, new in ctx.proposed.items():
        old = ctx.current.get(scope)
        if old is not None:
            far = np.abs(new - old) > step
            if far.any():
                clipped[scope] = np.where(far, np.where(new > old, old + step, old - step), new)
    return BatchVerdict(passed, clipped or None)


def bounds_batch(ctx: BatchContext) -> BatchVerdict:
    import numpy as np

    limits = ctx.once("bounds", ctx.policy.effective_bounds)
    inside = np.ones(ctx.size, dtype=bool)
    if limits is not None:
        for values in ctx.proposed.values():
            inside &= (limits.min <= values) & (values <= limits.max)
    return BatchVerdict(inside)


@hookimpl
def register_rules(register):
    register(
        Rule(
            "min_sample_size",
            min_sample_size,
            "Enough data",
            "The run's sample holds at least min_sample_size options (or trades).",
            batch=min_sample_size_batch,
            settings=("min_sample_size",),
            stateless=True,
            gates_evidence=True,
        )
    )
    register(
        Rule(
            "min_vega_sum",
            min_vega_sum,
            "Enough vega",
            "The sample's total vega reaches min_vega_sum.",
            batch=min_vega_sum_batch,
            settings=("min_vega_sum",),
            stateless=True,
            gates_evidence=True,
        )
    )
    register(
        Rule(
            "min_delta",
            min_delta,
            "Change large enough",
            "Some value moved at least its threshold (min_delta_global, min_delta_band, band_min_delta).",
            batch=min_delta_batch,
            settings=("min_delta_global", "min_delta_band"),
        )
    )
    register(
        Rule(
            "max_step",
            max_step,
            "Step limit",
            "A move bigger than max_step is clipped and made over several days.",
            batch=max_step_batch,
            settings=("max_step",),
        )
    )
    register(
        Rule(
            "bounds",
            bounds,
            "Safe range",
            "A value outside bounds (default: the domain's safety range) is never applied.",
            batch=bounds_batch,
            stateless=True,
        )
    )
