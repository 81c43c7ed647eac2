"""The one flow: record → smooth → normalize → rules → decision → propose | apply → archive → notify.

Each step is one function here, and every caller composes these same functions: a host's
calibration result (:func:`run_update`), the panel's force button (:func:`force_apply`), and a
domain plugin with an analysis of its own (the scoring weights' suggest and auto mode). A step
is never spelled twice, so a guarantee added to a step holds for every domain and caller.

Lock order, everywhere: a suggestion's lock before the target's (approving holds the first and
takes the second), so proposing always happens outside the target lock.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal, Mapping

from .apply import apply_values, live_but_not_recorded, locked
from .archive import ArchiveEntry, ChangeKind, now_utc
from .decide import should_apply_update
from .errors import CalibrationPolicyError, HistoryError, StaleChangeError
from .history import build_run, open_store
from .models import CalibrationRun, Decision
from .naming import check_underlying
from .plugins import get_domain, get_plugin_manager
from .permissions import check as check_permission
from .policy import CalibrationUpdatePolicy
from .smoothing import get_smoothed_multipliers, window_runs
from .target import Target

FORCED_REASON = "Applied: forced by user"


Route = Literal["apply", "propose", "settle"]
_WOULD = {"apply": "go live", "propose": "wait for a person's approval", "settle": "change nothing"}


@dataclass(frozen=True)
class UpdateOutcome:
    """What one update did: the run as stored, the decision, and the archived change if any."""

    run: CalibrationRun
    decision: Decision
    change: ArchiveEntry | None = None
    dry_run: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    route: Route = "settle"  # where the decision went (or, in a dry run, would go)

    @property
    def applied(self) -> bool:
        return self.change is not None

    def summary(self) -> str:
        """One line a trader can read: underlying, run time, source, and the reason."""
        when = self.run.timestamp.strftime("%Y-%m-%d %H:%M UTC")
        prefix = f"Dry run, nothing written. It would {_WOULD[self.route]}. " if self.dry_run else ""
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


@dataclass(frozen=True)
class Smoothed:
    """The smoothed (and domain-normalized) values of a run, and how many runs the window held."""

    values: dict[str, float]
    window: int


def smooth(run: CalibrationRun, policy: CalibrationUpdatePolicy, history_dir: str | os.PathLike[str] | None) -> Smoothed:
    """Smooth ``run`` over the stored runs in its window (the run itself counted once), then let
    its domain repair what smoothing may break (weights must still sum to 1)."""
    store = open_store(history_dir)
    start = run.timestamp - timedelta(days=policy.smoothing_window_days)
    stored = store.between(run.underlying, start, run.timestamp)
    values = get_smoothed_multipliers(stored, run, policy)
    return Smoothed(get_domain(run.domain).normalize(values), len(window_runs(stored, run, policy)))


def smoothed_for(run: CalibrationRun, policy: CalibrationUpdatePolicy, history_dir: str | os.PathLike[str] | None) -> dict[str, float]:
    """Just the values of :func:`smooth`."""
    return smooth(run, policy, history_dir).values


def evidence_of(run: CalibrationRun) -> dict[str, Any]:
    return {"sample_size": run.sample_size, "vega_sum": run.vega_sum}


def decide(run: CalibrationRun, current: Mapping[str, float], values: Mapping[str, float],
           policy: CalibrationUpdatePolicy, scope_labels: Mapping[str, str] | None = None,
           evidence: Mapping[str, Any] | None = None) -> Decision:
    """The policy's rules on ``values`` against the live ``current``, with the run's evidence
    (plus whatever a domain measured for its own rules, e.g. the weights' out-of-sample check)."""
    return should_apply_update(current, values, policy, {**evidence_of(run), **(evidence or {})}, scope_labels=scope_labels)


def _decided(run: CalibrationRun, decision: Decision, smoothed: Mapping[str, float], change: ArchiveEntry | None,
             reason: str | None = None, **fields: Any) -> CalibrationRun:
    return run.model_copy(
        update={
            "smoothed_iv_multiplier": dict(smoothed),
            "applied": change is not None,
            "applied_reason": reason or decision.reason,
            "applied_values": change.new_values if change else None,
            "decided_at": now_utc(),
            "forced": decision.forced,
            "decision": decision.to_dict(),
            **fields,
        }
    )


def settle(run: CalibrationRun, decision: Decision, smoothed: Mapping[str, float], history_dir,
           reason: str | None = None, **fields: Any) -> CalibrationRun:
    """Record that nothing went live for ``run``, and why."""
    run = _decided(run, decision, smoothed, None, reason, **fields)
    open_store(history_dir).save(run)
    return run


def propose(run: CalibrationRun, decision: Decision, current: Mapping[str, float], target: Target, *,
            smoothed: Mapping[str, float], history_dir, suggestions_dir, reason: str | None = None,
            run_reason: str | None = None, details: Mapping[str, Any] | None = None,
            proposed_by: str | None = None, proposed_via: str | None = None,
            **fields: Any) -> tuple[CalibrationRun, Any]:
    """Leave the decision's values for a person to approve; the run waits with it. Call outside the target lock."""
    from .review import ReviewStore, Suggestion

    policy = fields.pop("policy", None)
    four_eyes = {"required_approvals": getattr(policy, "required_approvals", 1),
                 "distinct_approver": bool(getattr(policy, "require_distinct_approver", False) or decision.forced)}
    suggestion = ReviewStore(suggestions_dir).propose(Suggestion(
        proposed_by=proposed_by, proposed_via=proposed_via, forced=decision.forced, **four_eyes,
        domain=run.domain, target=target.name, underlying=run.underlying, created_at=now_utc(),
        values=decision.values, current_values=dict(current), reason=reason or decision.reason, run_id=run.run_id,
        details={"decision": decision.to_dict(), "calibration_timestamp": run.timestamp.isoformat(), **(details or {})},
    ))
    waiting = run_reason or "Waiting for approval: " + decision.reason.removeprefix("Applied: ")
    run = settle(run, decision, smoothed, history_dir, waiting, pending_suggestion=suggestion.suggestion_id, **fields)
    return run, suggestion


def apply(run: CalibrationRun, decision: Decision, target: Target, *, smoothed: Mapping[str, float], history_dir,
          archive_dir, kind: ChangeKind, actor: str, reason: str | None = None,
          expected: Mapping[str, float] | None = None, already_locked: bool = False,
          via: str | None = None, by: str | None = None, **fields: Any) -> tuple[CalibrationRun, ArchiveEntry]:
    """Make the decision's values live (locked, archived), then record the run as applied.

    With ``expected``, the live values must still be those the decision was taken on; otherwise
    :class:`StaleChangeError` and nothing changes (someone else changed them meanwhile).
    """
    with contextlib.nullcontext() if already_locked else locked(target):
        if expected is not None:
            live = target.values(target.load())
            if live != dict(expected):
                raise StaleChangeError(f"The live values of {target.name} changed while this decision was taken "
                                       f"(now {_values_text(live)}); nothing was changed.")
        change = apply_values(
            target, decision.values, archive_dir=archive_dir, already_locked=True, kind=kind, actor=actor,
            reason=reason or decision.reason, domain=run.domain, underlying=run.underlying, run_id=run.run_id,
            calibration_timestamp=run.timestamp, via=via, by=by or actor,
        )
        run = _decided(run, decision, smoothed, change, reason, **fields)
        try:
            open_store(history_dir).save(run)
        except ValueError as error:
            raise live_but_not_recorded(target.name, f"updating run {run.run_id} in the history", error,
                                        f"the archive has the change ({change.change_id}).") from error
    return run, change


def _values_text(values: Mapping[str, float]) -> str:
    return ", ".join(f"{scope} {value:g}" for scope, value in values.items())


def notify(run: CalibrationRun, decision: Decision, policy: CalibrationUpdatePolicy) -> None:
    get_plugin_manager().hook.decision_made(run=run, decision=decision, policy=policy)


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
    actor: Any = None,
    via: str = "python",
    permissions: Any = None,
) -> UpdateOutcome:
    """Record a calibration result and apply it to ``target`` if the policy says so.

    With ``force`` the update applies whatever the rules say (reason "forced by user"); with
    ``dry_run`` nothing at all is written and the outcome says what would have happened; when
    the policy requires approval, an update that would apply becomes a pending suggestion.

    ``actor`` (who; default "policy", or "user" when forced) and ``via`` (panel, api, cli, auto,
    python) are checked first against ``permissions`` (a host callable) or the policy's
    ``[permissions]`` table, and recorded with the run, the suggestion and the archived change.
    """
    if force_values not in ("smoothed", "recommended"):
        raise CalibrationPolicyError(f"force_values must be 'smoothed' or 'recommended', not {force_values!r:.40}.")
    policy = policy or CalibrationUpdatePolicy()
    if not dry_run:  # before anything is written
        actor = check_permission("force_apply" if force else "propose", actor=_default_actor(actor, force),
                                 domain=policy.domain, via=via, policy=policy, permissions=permissions)
    run = build_run(result, underlying, source, timestamp, config, policy.domain)
    if dry_run:  # the same decision and route as the real call, nothing written
        smoothed = smoothed_for(run, policy, history_dir)  # the unrecorded run still counts once
        decision = _decision(run, target.values(target.load()), smoothed, policy, force, force_values)
        would = route(decision, policy)
        if would == "propose":
            decision = replace(decision, apply=False, reason=_waiting(decision))
        return UpdateOutcome(run=_decided(run, decision, smoothed, None), decision=decision, dry_run=True, route=would)
    target.values(target.load())  # a missing or corrupt live config fails here, before anything is written
    run = open_store(history_dir).record(run)
    smoothed = smoothed_for(run, policy, history_dir)
    return _decide_and_apply(run, smoothed, policy, target, history_dir, archive_dir, force, force_values, suggestions_dir,
                             actor, via)


def _default_actor(actor: Any, forced: bool) -> Any:
    return actor if actor is not None else ("user" if forced else "policy")


def route(decision: Decision, policy: CalibrationUpdatePolicy) -> Route:
    """Where a decision goes: live, to a person (require_approval; a forced change skips it unless
    force_requires_approval), or nowhere."""
    if not decision.apply:
        return "settle"
    if decision.forced:
        return "propose" if policy.force_requires_approval else "apply"
    return "propose" if policy.require_approval else "apply"


def _waiting(decision: Decision) -> str:
    return "Waiting for approval: " + decision.reason.removeprefix("Applied: ")


def _decision(run, current, smoothed, policy, force, force_values) -> Decision:
    decision = decide(run, current, smoothed, policy)
    if force:
        decision = _forced(decision, dict(smoothed if force_values == "smoothed" else run.recommended))
    return decision


def _decide_and_apply(run, smoothed, policy, target, history_dir, archive_dir, force, force_values, suggestions_dir=None,
                      actor: str | None = None, via: str = "python") -> UpdateOutcome:
    who = {"decided_by": actor, "decided_via": via}
    with locked(target):
        current = target.values(target.load())
        decision = _decision(run, current, smoothed, policy, force, force_values)
        way, change = route(decision, policy), None
        if way == "apply":
            run, change = apply(run, decision, target, smoothed=smoothed, history_dir=history_dir, archive_dir=archive_dir,
                                kind="force" if decision.forced else "update",
                                actor="user" if decision.forced else "policy", already_locked=True,
                                via=via, by=actor, **who)
        elif way == "settle":
            run = settle(run, decision, smoothed, history_dir, **who)
    if way == "propose":
        run, _ = propose(run, decision, current, target, smoothed=smoothed, history_dir=history_dir,
                         suggestions_dir=suggestions_dir, run_reason=_waiting(decision), proposed_by=actor,
                         proposed_via=via, policy=policy, **who)
        decision = replace(decision, apply=False, reason=_waiting(decision))
    notify(run, decision, policy)
    return UpdateOutcome(run=run, decision=decision, change=change, route=way)


def force_apply(
    underlying: str,
    *,
    target: Target,
    policy: CalibrationUpdatePolicy | None = None,
    history_dir: str | os.PathLike[str] | None = None,
    archive_dir: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    use: Literal["smoothed", "recommended"] = "smoothed",
    actor: Any = None,
    via: str = "python",
    permissions: Any = None,
    suggestions_dir: str | os.PathLike[str] | None = None,
) -> UpdateOutcome:
    """Apply the latest (or the given) run now, whatever the rules say: the panel's button.

    With ``force_requires_approval`` the forced values wait as a suggestion for a second person."""
    underlying = check_underlying(underlying)
    if use not in ("smoothed", "recommended"):
        raise CalibrationPolicyError(f"use must be 'smoothed' or 'recommended', not {use!r:.40}.")
    policy = policy or CalibrationUpdatePolicy()
    actor = check_permission("force_apply", actor=_default_actor(actor, True), domain=policy.domain, via=via,
                             policy=policy, permissions=permissions)
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
    return _decide_and_apply(run, smoothed, policy, target, history_dir, archive_dir, True, use, suggestions_dir,
                             actor, via)
