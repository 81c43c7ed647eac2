"""``run_update`` and ``force_apply``: what a host's script and the panel's force button call.

Each builds a :class:`~calibration_policy.context.Context` and a change, and lets the governor run it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..changes import Force, Update
from ..context import Context, policy_in_force
from ..errors import CalibrationPolicyError
from ..governor import Governor
from ..history import build_run
from ..naming import check_underlying
from ..policy import CalibrationUpdatePolicy
from ..rule_evidence import live_evidence
from ..steps import ForcedValues, UpdateOutcome, _decided, _decision, _default_actor, _waiting, route, smoothed_for
from ..stores import follow, govern
from ..target import Target

Folder = str | os.PathLike[str] | None


def run_update(
    result: Mapping[str, Any],
    *,
    underlying: str,
    source: str,
    target: Target,
    policy: CalibrationUpdatePolicy | None = None,
    history_dir: Folder = None,
    archive_dir: Folder = None,
    timestamp: datetime | None = None,
    config: Mapping[str, Any] | None = None,
    force: bool = False,
    force_values: ForcedValues = "smoothed",
    dry_run: bool = False,
    suggestions_dir: Folder = None,
    expected_version: str | None = None,
    actor: Any = None,
    via: str = "python",
    permissions: Any = None,
) -> UpdateOutcome:
    """Record a calibration result and apply it to ``target`` if the policy says so.

    With ``force`` the update applies whatever the rules say (reason "forced by user"); with
    ``dry_run`` nothing at all is written and the outcome says what would have happened; when
    the policy requires approval, an update that would apply becomes a pending suggestion.
    With ``expected_version`` (see :func:`live_version`) the live config must still be the one
    the caller saw, else :class:`StaleChangeError` before anything goes live.

    ``actor`` (who; default "policy", or "user" when forced) and ``via`` (panel, api, cli, auto,
    python) are checked first against ``permissions`` (a host callable) or the policy in force's
    ``[permissions]`` table, and recorded with the run, the suggestion and the archived change.
    """
    if force_values not in ("smoothed", "recommended"):
        raise CalibrationPolicyError(f"force_values must be 'smoothed' or 'recommended', not {force_values!r:.40}.")
    rules = policy if policy is not None else policy_in_force(history_dir)
    follow(rules)  # a policy that names a store is followed before anything is read or written
    if dry_run:
        return _dry_run(
            result,
            underlying,
            source,
            govern(target),
            rules,
            history_dir,
            archive_dir,
            timestamp,
            config,
            force,
            force_values,
        )
    ctx = Context.build(
        actor=_default_actor(actor, force),
        via=via,
        permissions=permissions,
        history_dir=history_dir,
        archive_dir=archive_dir,
        suggestions_dir=suggestions_dir,
    )
    change = Update(result, underlying, source, target, rules, timestamp, config, force, force_values, expected_version)
    return Governor(ctx).execute(change)


def _dry_run(
    result, underlying, source, target, policy, history_dir, archive_dir, timestamp, config, force, force_values
):
    """The same decision and route as the real call, nothing written (and so nothing to permit)."""
    run = build_run(result, underlying, source, timestamp, config, policy.domain)
    smoothed = smoothed_for(run, policy, history_dir)  # the unrecorded run still counts once
    evidence = live_evidence(run, policy, history_dir=history_dir, archive_dir=archive_dir, target_name=target.name)
    decision = _decision(run, target.values(target.load()), smoothed, policy, force, force_values, evidence)
    would = route(decision, policy)
    if would == "propose":
        decision = replace(decision, apply=False, reason=_waiting(decision))
    return UpdateOutcome(run=_decided(run, decision, smoothed, None), decision=decision, dry_run=True, route=would)


def force_apply(
    underlying: str,
    *,
    target: Target,
    policy: CalibrationUpdatePolicy | None = None,
    history_dir: Folder = None,
    archive_dir: Folder = None,
    run_id: str | None = None,
    use: ForcedValues = "smoothed",
    expected_version: str | None = None,
    actor: Any = None,
    via: str = "python",
    permissions: Any = None,
    suggestions_dir: Folder = None,
) -> UpdateOutcome:
    """Apply the latest (or the given) run now, whatever the rules say: the panel's button.

    With ``expected_version`` (what the page or caller saw, :func:`live_version`) a newer change
    made meanwhile is never overwritten: :class:`StaleChangeError`, nothing changed (D10).
    With ``force_requires_approval`` the forced values wait as a suggestion for a second person.
    """
    underlying = check_underlying(underlying)
    if use not in ("smoothed", "recommended"):
        raise CalibrationPolicyError(f"use must be 'smoothed' or 'recommended', not {use!r:.40}.")
    ctx = Context.build(
        actor=_default_actor(actor, True),
        via=via,
        permissions=permissions,
        history_dir=history_dir,
        archive_dir=archive_dir,
        suggestions_dir=suggestions_dir,
    )
    rules = policy if policy is not None else ctx.policy
    return Governor(ctx).execute(Force(underlying, target, rules, run_id, use, expected_version))
