"""The update flow: result → run → history → smoothing → rules → decision → target.

The host computes a calibration result (its math, not ours) and hands it here; this module
records it, smooths, decides under the policy, and applies through :mod:`.apply` or leaves
the live config byte-for-byte untouched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal, Mapping

from .apply import apply_values, live_but_not_recorded, locked
from .archive import ArchiveEntry, now_utc
from .decide import should_apply_update
from .errors import CalibrationPolicyError, HistoryError
from .history import build_run, open_store
from .models import CalibrationRun, Decision
from .naming import check_underlying
from .plugins import get_plugin_manager
from .policy import CalibrationUpdatePolicy
from .smoothing import get_smoothed_multipliers
from .target import Target

FORCED_REASON = "Applied: forced by user"


@dataclass(frozen=True)
class UpdateOutcome:
    """What one update did: the run as stored, the decision, and the archived change if any."""

    run: CalibrationRun
    decision: Decision
    change: ArchiveEntry | None = None
    dry_run: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def applied(self) -> bool:
        return self.change is not None

    def summary(self) -> str:
        """One line a trader can read: underlying, run time, source, and the reason."""
        when = self.run.timestamp.strftime("%Y-%m-%d %H:%M UTC")
        prefix = "Dry run, nothing written. " if self.dry_run else ""
        return f"{prefix}{self.run.underlying} {when} ({self.run.source}): {self.decision.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "underlying": self.run.underlying,
            "run_id": self.run.run_id or None,
            "timestamp": self.run.timestamp.isoformat(),
            "source": self.run.source,
            "dry_run": self.dry_run,
            "applied": self.applied,
            "would_apply": self.decision.apply,
            "reason": self.decision.reason,
            "recommended": self.run.recommended,
            "smoothed": self.run.smoothed,
            "applied_values": self.change.new_values if self.change else None,
            "change_id": self.change.change_id if self.change else None,
            "decision": self.decision.to_dict(),
        }


def run_time_for(day: date | None) -> datetime | None:
    """A calibration of a past market date is stamped at that day's US close (21:00 UTC), so a
    replay of old dates sorts by market date; today's (or no date) is stamped now."""
    if day is None or day == now_utc().date():
        return None
    return datetime(day.year, day.month, day.day, 21, 0, tzinfo=timezone.utc)


def smoothed_for(run: CalibrationRun, policy: CalibrationUpdatePolicy, history_dir: str | os.PathLike[str] | None) -> dict[str, float]:
    """Smooth ``run`` over the stored runs in its window (the run itself counted once)."""
    store = open_store(history_dir)
    start = run.timestamp - timedelta(days=policy.smoothing_window_days)
    return get_smoothed_multipliers(store.between(run.underlying, start, run.timestamp), run, policy)


def _decided(run: CalibrationRun, decision: Decision, smoothed: dict[str, float], change: ArchiveEntry | None) -> CalibrationRun:
    return run.model_copy(
        update={
            "smoothed_iv_multiplier": smoothed,
            "applied": change is not None,
            "applied_reason": decision.reason,
            "applied_values": change.new_values if change else None,
            "decided_at": now_utc(),
            "forced": decision.forced,
            "decision": decision.to_dict(),
        }
    )


def _forced(decision: Decision, values: dict[str, float]) -> Decision:
    policy_said = decision.reason.removeprefix("Not applied: ").removeprefix("Applied: ")
    return replace(decision, apply=True, forced=True, values=values, reason=f"{FORCED_REASON} (the policy alone said: {policy_said})")


def run_update(
    result: Mapping[str, Any],
    *,
    underlying: str,
    source: str,
    target: Target,
    policy: CalibrationUpdatePolicy | None = None,
    history_dir: str | os.PathLike[str] | None = None,
    archive_dir: str | os.PathLike[str] | None = None,
    timestamp: datetime | None = None,
    config: Mapping[str, Any] | None = None,
    force: bool = False,
    force_values: Literal["smoothed", "recommended"] = "smoothed",
    dry_run: bool = False,
    suggestions_dir: str | os.PathLike[str] | None = None,
) -> UpdateOutcome:
    """Record a calibration result and apply it to ``target`` if the policy says so.

    With ``force`` the update applies whatever the rules say (reason "forced by user"); with
    ``dry_run`` nothing at all is written and the outcome says what would have happened; when
    the policy requires approval, an update that would apply becomes a pending suggestion.
    """
    if force_values not in ("smoothed", "recommended"):
        raise CalibrationPolicyError(f"force_values must be 'smoothed' or 'recommended', not {force_values!r:.40}.")
    policy = policy or CalibrationUpdatePolicy()
    run = build_run(result, underlying, source, timestamp, config, policy.domain)
    if dry_run:
        smoothed = smoothed_for(run, policy, history_dir)  # the unrecorded run still counts once
        current = target.values(target.load())
        decision = should_apply_update(current, smoothed, policy, _evidence(run))
        return UpdateOutcome(run=_decided(run, decision, smoothed, None), decision=decision, dry_run=True)
    target.values(target.load())  # a missing or corrupt live config fails here, before anything is written
    run = open_store(history_dir).record(run)
    smoothed = smoothed_for(run, policy, history_dir)
    return _decide_and_apply(run, smoothed, policy, target, history_dir, archive_dir, force, force_values, suggestions_dir)


def _evidence(run: CalibrationRun) -> dict[str, Any]:
    return {"sample_size": run.sample_size, "vega_sum": run.vega_sum}


def _propose(run: CalibrationRun, decision: Decision, current: dict[str, float], target: Target, suggestions_dir) -> Any:
    from .review import ReviewStore, Suggestion

    return ReviewStore(suggestions_dir).propose(Suggestion(
        domain=run.domain, target=target.name, underlying=run.underlying, created_at=now_utc(),
        values=decision.values, current_values=current, reason=decision.reason, run_id=run.run_id,
        details={"decision": decision.to_dict(), "calibration_timestamp": run.timestamp.isoformat()},
    ))


def _decide_and_apply(run, smoothed, policy, target, history_dir, archive_dir, force, force_values, suggestions_dir=None) -> UpdateOutcome:
    store = open_store(history_dir)
    with locked(target):
        current = target.values(target.load())
        decision = should_apply_update(current, smoothed, policy, _evidence(run))
        if force:
            values = dict(smoothed if force_values == "smoothed" else run.recommended)
            decision = _forced(decision, values)
        change = None
        needs_review = decision.apply and policy.require_approval and not decision.forced
        if decision.apply and not needs_review:
            change = apply_values(
                target, decision.values, archive_dir=archive_dir, already_locked=True,
                kind="force" if decision.forced else "update", actor="user" if decision.forced else "policy",
                reason=decision.reason, domain=run.domain, underlying=run.underlying, run_id=run.run_id,
                calibration_timestamp=run.timestamp,
            )
        if not needs_review:
            run = _decided(run, decision, smoothed, change)
            try:
                store.save(run)
            except ValueError as error:
                if change is None:
                    raise
                raise live_but_not_recorded(target.name, f"updating run {run.run_id} in the history", error,
                                            f"the archive has the change ({change.change_id}).") from error
    if needs_review:  # outside the target lock: approving takes the suggestion lock, then the target's
        suggestion = _propose(run, decision, current, target, suggestions_dir)
        decision = replace(decision, apply=False, reason="Waiting for approval: " + decision.reason.removeprefix("Applied: "))
        run = _decided(run, decision, smoothed, None).model_copy(update={"pending_suggestion": suggestion.suggestion_id})
        store.save(run)
    get_plugin_manager().hook.decision_made(run=run, decision=decision, policy=policy)
    return UpdateOutcome(run=run, decision=decision, change=change)


def force_apply(
    underlying: str,
    *,
    target: Target,
    policy: CalibrationUpdatePolicy | None = None,
    history_dir: str | os.PathLike[str] | None = None,
    archive_dir: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    use: Literal["smoothed", "recommended"] = "smoothed",
) -> UpdateOutcome:
    """Apply the latest (or the given) run now, whatever the rules say: the panel's button."""
    underlying = check_underlying(underlying)
    if use not in ("smoothed", "recommended"):
        raise CalibrationPolicyError(f"use must be 'smoothed' or 'recommended', not {use!r:.40}.")
    policy = policy or CalibrationUpdatePolicy()
    store = open_store(history_dir)
    if run_id is not None:
        run = store.get(run_id)
        if run.underlying != underlying.upper():
            raise CalibrationPolicyError(f"Run {run_id} is a {run.underlying} run, not {underlying}.")
    else:
        latest = store.latest(underlying, limit=1)
        if not latest:
            raise HistoryError(f"There is no calibration run for {underlying.upper()} to apply yet; run an update first.")
        run = latest[0]
    if run.domain != policy.domain:
        raise CalibrationPolicyError(
            f"Run {run.run_id} holds {run.domain} values, not {policy.domain}; it cannot be applied to this target."
        )
    smoothed = run.smoothed or smoothed_for(run, policy, history_dir)
    return _decide_and_apply(run, smoothed, policy, target, history_dir, archive_dir, True, use)
