"""The decision: run the policy's rules in order; apply only if every one passes."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import CalibrationPolicyError
from .humanize import fmt_against, fmt_num, fmt_pair
from .models import Decision, RuleVerdict, ScopeChange
from .plugins import get_domain, get_rule
from .policy import CalibrationUpdatePolicy

# A change "reaches" its threshold despite binary float noise: 1.10 → 1.13 is a 0.03 change.
EPSILON = 1e-9


def reaches(delta: float, threshold: float) -> bool:
    return abs(delta) >= threshold - EPSILON * max(1.0, abs(threshold))


@dataclass
class RuleContext:
    """What a rule sees. ``proposed`` is what would be written if every rule passes."""

    current: dict[str, float]
    proposed: dict[str, float]
    policy: CalibrationUpdatePolicy
    evidence: dict[str, Any]
    scope_labels: dict[str, str] = field(default_factory=dict)
    options: Any = None  # the running rule's validated options (its pydantic model), if it declares any

    def label(self, scope: str) -> str:
        """The scope as the domain names it everywhere else ("NYSE Arca", "Weekly"), so a reason reads like the
        table beside it; ``scope_labels`` given by the caller win."""
        if scope in self.scope_labels:
            return self.scope_labels[scope]
        try:
            return get_domain(self.policy.domain).scope_label(scope)
        except Exception:  # an unknown domain or a plugin's failing label: its own name still says it
            return scope

    def change(self, scope: str) -> ScopeChange:
        old = self.current.get(scope)
        new = self.proposed[scope]
        delta = new - old if old is not None else math.inf
        threshold = self.policy.threshold_for(scope)
        # −1.7e308 → 1.7e308 is a change beyond the largest float: recorded as that largest float
        # (the run file is strict JSON, with no room for infinity), still counted as large enough.
        shown = delta if math.isfinite(delta) else math.copysign(sys.float_info.max, delta)
        return ScopeChange(
            scope, old, new, 0.0 if old is None else shown, threshold, old is None or reaches(delta, threshold)
        )


def _mapping(values: Any, what: str, allow_empty: bool) -> dict[str, float]:
    if not isinstance(values, Mapping):
        raise CalibrationPolicyError(f"{what} must be a dict of scope to number, not {type(values).__name__}.")
    checked = {}
    for scope, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CalibrationPolicyError(f"{what}[{scope!r}] must be a finite number, not {value!r:.40}.")
        checked[str(scope)] = float(value)
    if not checked and not allow_empty:
        raise CalibrationPolicyError(f"{what} is empty: there is nothing to decide on.")
    return checked


def _evidence(evidence: Any) -> dict[str, Any]:
    if evidence is None:
        return {}
    if not isinstance(evidence, Mapping):
        raise CalibrationPolicyError(
            f"evidence must be a dict such as {{'sample_size': 412, 'vega_sum': 12400.0}}, not {type(evidence).__name__}."
        )
    checked = dict(evidence)
    for key in ("sample_size", "vega_sum"):
        value = checked.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise CalibrationPolicyError(f"evidence {key} must be a finite number ≥ 0, not {value!r:.40}.")
    return checked


def _reason(apply: bool, scopes: list[ScopeChange], verdicts: list[RuleVerdict], ctx: RuleContext) -> str:
    if not apply:
        failed = [v.text for v in verdicts if not v.passed]
        return "Not applied: " + "; ".join(failed)
    changes = []
    for change in scopes:
        if not change.changed:
            continue
        if change.old is None:
            changes.append(f"{ctx.label(change.scope)} set to {fmt_num(change.new)} (no value before)")
        else:
            delta, thr = fmt_against(abs(change.delta), change.threshold)
            # the values as precisely as their change: "0.25 → 0.226 (change 0.024)", never "0.25 → 0.23 (change 0.024)"
            old, new = fmt_pair(change.old, change.new, max(2, len(delta.partition(".")[2])))
            changes.append(f"{ctx.label(change.scope)} {old} → {new} (change {delta}, threshold {thr})")
    if ctx.policy.apply_scopes == "all":  # the others are written too: the reason names every value that moves
        along = [
            f"{ctx.label(c.scope)} {' → '.join(fmt_pair(c.old, c.new))}"
            for c in scopes
            if not c.changed and c.old is not None and c.new != c.old
        ]
        if along:
            changes.append(f"also written with them, each below its threshold: {', '.join(along)}")
    notes = [v.text for v in verdicts if v.passed and v.counts_in_reason]
    return "Applied: " + "; ".join(changes + notes)


def should_apply_update(
    current_applied: Mapping[str, float],
    smoothed: Mapping[str, float],
    policy: CalibrationUpdatePolicy,
    evidence: Mapping[str, Any] | None = None,
    *,
    scope_labels: Mapping[str, str] | None = None,
) -> Decision:
    """Decide whether ``smoothed`` should replace ``current_applied``, and say why.

    Rules run in the policy's order; each sees the values as earlier rules left them (so
    ``max_step`` clips before ``min_delta`` measures). The update applies only if every rule
    passes; the reason lists every rule that blocked it, with its numbers.
    """
    if not isinstance(policy, CalibrationUpdatePolicy):
        raise CalibrationPolicyError("policy must be a CalibrationUpdatePolicy.")
    ctx = RuleContext(
        current=_mapping(current_applied, "current_applied", allow_empty=True),
        proposed=_mapping(smoothed, "smoothed", allow_empty=False),
        policy=policy,
        evidence=_evidence(evidence),
        scope_labels=dict(scope_labels or {}),
    )
    verdicts: list[RuleVerdict] = []
    for name in policy.rules:
        ctx.options = policy.validated_rule_options(name)
        verdict = get_rule(name).fn(ctx)
        if not isinstance(verdict, RuleVerdict):
            raise CalibrationPolicyError(f"Rule {name!r} returned {type(verdict).__name__}, not a RuleVerdict.")
        verdicts.append(verdict)
        if verdict.adjusted is not None:
            ctx.proposed = _mapping(verdict.adjusted, f"values adjusted by rule {name!r}", allow_empty=False)
    scopes = [ctx.change(scope) for scope in ctx.proposed]
    apply = all(v.passed for v in verdicts)
    if policy.apply_scopes == "changed":
        values = {c.scope: c.new for c in scopes if c.changed}
    else:
        values = dict(ctx.proposed)
    return Decision(
        apply=apply,
        reason=_reason(apply, scopes, verdicts, ctx),
        scopes=tuple(scopes),
        verdicts=tuple(verdicts),
        values=values if apply else {},
    )
