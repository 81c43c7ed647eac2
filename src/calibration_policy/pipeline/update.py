"""``run_update`` and ``force_apply``: what a host's script and the panel's force button call.

Each builds a :class:`~calibration_policy.context.Context` and a change, and lets the governor run it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..changes import Force, Update
from ..context import Context
from ..errors import CalibrationPolicyError
from ..governor import Governor
from ..history import build_run
from ..naming import check_underlying
from ..policy import CalibrationUpdatePolicy
from ..rule_evidence import live_evidence
from ..steps import ForcedValues, UpdateOutcome, _decided, _decision, _waiting, route, smoothed_for
from ..stores import govern
from ..target import Target


@dataclass(frozen=True)
class UpdateOptions:
    """How one update runs, beside what it records and where: when the calibration ran (None: now), whether
    a person forces it live and with which values, whether to only say what would happen, and the live
    version the caller saw (:func:`live_version`; a change made since refuses this one)."""

    timestamp: datetime | None = None
    force: bool = False
    force_values: ForcedValues = "smoothed"
    dry_run: bool = False
    expected_version: str | None = None


def run_update(
    result: Mapping[str, Any],
    *,
    underlying: str,
    source: str,
    target: Target,
    context: Context | None = None,
    options: UpdateOptions | None = None,
) -> UpdateOutcome:
    """Record a calibration result and apply it to ``target`` if the policy says so.

    ``context`` (:meth:`Context.build`) says where the data lives, which policy decides (the caller's own,
    else the policy in force), who acts (default "policy", or "user" when forced) and from where; the actor
    is checked against the policy in force's ``[permissions]`` (or the host's callable) before anything is
    written, and recorded with the run, the suggestion and the archived change. ``options``: with
    ``force`` the update applies whatever the rules say (reason "forced by user"); with ``dry_run`` nothing
    at all is written and the outcome says what would have happened; with ``expected_version`` the live
    config must still be the one the caller saw, else :class:`StaleChangeError` before anything goes live.
    When the policy requires approval, an update that would apply becomes a pending suggestion.
    """
    how = options or UpdateOptions()
    if how.force_values not in ("smoothed", "recommended"):
        raise CalibrationPolicyError(f"force_values must be 'smoothed' or 'recommended', not {how.force_values!r:.40}.")
    ctx = context if context is not None else Context.build()
    rules = ctx.rules_of_changes
    if how.dry_run:
        return _dry_run(result, underlying, source, govern(target), rules, ctx, how)
    ctx = ctx.acting("user" if how.force else "policy")
    change = Update(
        result,
        underlying,
        source,
        target,
        rules,
        how.timestamp,
        how.force,
        how.force_values,
        how.expected_version,
    )
    return Governor(ctx).execute(change)


def _dry_run(
    result: Mapping[str, Any],
    underlying: str,
    source: str,
    target: Target,
    policy: CalibrationUpdatePolicy,
    ctx: Context,
    how: UpdateOptions,
) -> UpdateOutcome:
    """The same decision and route as the real call, nothing written (and so nothing to permit)."""
    run = build_run(result, underlying, source, how.timestamp, None, policy.domain)
    smoothed = smoothed_for(run, policy, ctx.history_dir)  # the unrecorded run still counts once
    evidence = live_evidence(
        run, policy, history_dir=ctx.history_dir, archive_dir=ctx.archive_dir, target_name=target.name
    )
    decision = _decision(run, target.values(target.load()), smoothed, policy, how.force, how.force_values, evidence)
    would = route(decision, policy)
    if would == "propose":
        decision = replace(decision, apply=False, reason=_waiting(decision))
    return UpdateOutcome(run=_decided(run, decision, smoothed, None), decision=decision, dry_run=True, route=would)


def force_apply(
    underlying: str,
    *,
    target: Target,
    run_id: str | None = None,
    use: ForcedValues = "smoothed",
    expected_version: str | None = None,
    context: Context | None = None,
) -> UpdateOutcome:
    """Apply the latest (or the given) run now, whatever the rules say: the panel's button.

    With ``expected_version`` (what the page or caller saw, :func:`live_version`) a newer change
    made meanwhile is never overwritten: :class:`StaleChangeError`, nothing changed (D10).
    With ``force_requires_approval`` the forced values wait as a suggestion for a second person.
    ``context`` as for :func:`run_update` (who acts defaults to "user").
    """
    underlying = check_underlying(underlying)
    if use not in ("smoothed", "recommended"):
        raise CalibrationPolicyError(f"use must be 'smoothed' or 'recommended', not {use!r:.40}.")
    ctx = (context or Context.build()).acting("user")
    change = Force(underlying, target, ctx.rules_of_changes, run_id, use, expected_version)
    return Governor(ctx).execute(change)
