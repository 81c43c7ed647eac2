"""Evidence some rules need beyond the run's own numbers, supplied by whoever decides.

A rule declares what it reads in its record (``Rule(..., evidence=("last_applied_at",))``); the
live pipeline reads it from the archive and the history, the replay from its simulation, so a
rule sees the same thing in both and a replay of the policy that ran gives the decisions it gave.

- ``run_time``: the run's timestamp (the rule's "now"; a replay of last year is not decided today).
- ``last_applied_at``: when the live values last changed, as the calibration time of that change
  (``None`` when they never did).
- ``recent_smoothed``: ``[(timestamp, {scope: smoothed})]`` of the earlier runs of the same
  underlying, oldest first (the live path reads as many days back as the rules' ``days`` option).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from .models import CalibrationRun
from .policy import CalibrationUpdatePolicy

KNOWN = ("run_time", "last_applied_at", "recent_smoothed")


def needed(policy: CalibrationUpdatePolicy) -> set[str]:
    """The evidence keys the policy's rules declare."""
    from .plugins import get_rule

    keys: set[str] = set()
    for name in policy.rules:
        keys.update(get_rule(name).evidence)
    return keys


def lookback_days(policy: CalibrationUpdatePolicy) -> float:
    """How far back ``recent_smoothed`` must reach: the largest ``days`` option of a rule that reads it."""
    from .plugins import get_rule

    days = 0.0
    for name in policy.rules:
        if "recent_smoothed" in get_rule(name).evidence:
            days = max(days, float(getattr(policy.validated_rule_options(name), "days", 0) or 0))
    return days


def live_evidence(
    run: CalibrationRun,
    policy: CalibrationUpdatePolicy,
    *,
    history_dir: str | os.PathLike[str] | None,
    archive_dir: str | os.PathLike[str] | None,
    target_name: str,
) -> dict[str, Any]:
    """What the policy's rules need for ``run`` in the live path (nothing is read unless a rule asks)."""
    keys = needed(policy)
    if not keys:
        return {}
    found: dict[str, Any] = {"run_time": run.timestamp}
    if "last_applied_at" in keys:
        from .stores import open_archive

        last = open_archive(archive_dir, target_name).last_change()
        found["last_applied_at"] = last.live_from if last else None
    if "recent_smoothed" in keys:
        from .stores import open_store

        start = run.timestamp - timedelta(days=lookback_days(policy))
        found["recent_smoothed"] = [
            (earlier.timestamp, dict(earlier.smoothed))
            for earlier in open_store(history_dir).between(run.underlying, start, run.timestamp)
            if earlier.smoothed and earlier.run_id != run.run_id and earlier.timestamp < run.timestamp
        ]
    return found
