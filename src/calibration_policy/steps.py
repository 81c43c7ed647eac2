"""The steps of the flow: record → smooth → normalize → rules → decision → propose | apply.

Each step is one function, and every change kind (:mod:`calibration_policy.changes`) composes these same
functions, so a guarantee added to a step holds for every domain and caller. The governor
(:mod:`calibration_policy.governor`) runs them: a step never checks permissions, settles or records events.

Lock order, everywhere: a suggestion's lock before the target's (approving holds the first and
takes the second), so proposing always happens outside the target lock; settling takes them in
the same order.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from .apply import apply_values
from .archive import ArchiveEntry, ChangeKind, now_utc
from .errors import StaleChangeError, live_but_not_recorded
from .history import build_run
from .models import CalibrationRun, Decision
from .plugins import get_domain
from .policy import CalibrationUpdatePolicy
from .policy_versions import policy_fingerprint
from .smoothing import get_smoothed_multipliers, window_runs
from .stores import locked, open_reviews, open_store
from .target import Target

FORCED_REASON = "Applied: forced by user"


Route = Literal["apply", "propose", "settle"]
ForcedValues = Literal["smoothed", "recommended"]  # what a forced change makes live
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


def record_calibration_result(
    result: Mapping[str, Any],
    underlying: str,
    source: str,
    history_dir: str | os.PathLike[str] | None = None,
    timestamp: datetime | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    domain: str = "vol_surface",
) -> CalibrationRun:
    """Record a host's calibration result as a run, durably, before anything is decided.

    Every run is kept (even the ones never applied) so smoothing and the panel see the full
    picture. Raises a ``ValueError`` subclass naming the problem; then nothing is written.
    """
    run = build_run(result, underlying, source, timestamp, config, domain)
    return open_store(history_dir).record(run)


def load_recent_calibration_history(
    underlying: str, limit: int = 50, history_dir: str | os.PathLike[str] | None = None
) -> list[CalibrationRun]:
    """The newest ``limit`` runs of ``underlying``, oldest first, without reading the others."""
    return open_store(history_dir).latest(underlying, limit)


def run_time_for(day: date | None) -> datetime | None:
    """A calibration of a past market date is stamped at that day's US close (21:00 UTC), so a
    replay of old dates sorts by market date; today's (or no date) is stamped now."""
    if day is None or day == now_utc().date():
        return None
    return datetime(day.year, day.month, day.day, 21, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Smoothed:
    """The smoothed (and domain-normalized) values of a run, and how many runs the window held."""

    values: dict[str, float]
    window: int


def smooth(
    run: CalibrationRun, policy: CalibrationUpdatePolicy, history_dir: str | os.PathLike[str] | None
) -> Smoothed:
    """Smooth ``run`` over the stored runs in its window (the run itself counted once), then let
    its domain repair what smoothing may break (weights must still sum to 1)."""
    store = open_store(history_dir)
    start = run.timestamp - timedelta(days=policy.smoothing_window_days)
    return smooth_over(run, store.between(run.underlying, start, run.timestamp), policy)


def smooth_over(run: CalibrationRun, stored: list[CalibrationRun], policy: CalibrationUpdatePolicy) -> Smoothed:
    """:func:`smooth` over runs already at hand (the replay's), not read from the store."""
    values = get_smoothed_multipliers(stored, run, policy)
    return Smoothed(get_domain(run.domain).normalize(values), len(window_runs(stored, run, policy)))


def smoothed_for(
    run: CalibrationRun, policy: CalibrationUpdatePolicy, history_dir: str | os.PathLike[str] | None
) -> dict[str, float]:
    """Just the values of :func:`smooth`."""
    return smooth(run, policy, history_dir).values


def evidence_of(run: CalibrationRun) -> dict[str, Any]:
    return {"sample_size": run.sample_size, "vega_sum": run.vega_sum}


def decide(
    run: CalibrationRun,
    current: Mapping[str, float],
    values: Mapping[str, float],
    policy: CalibrationUpdatePolicy,
    scope_labels: Mapping[str, str] | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> Decision:
    """The policy's rules on ``values`` against the live ``current``, with the run's evidence
    (plus whatever a domain measured for its own rules, e.g. the weights' out-of-sample check):
    the decision engine over a batch of one run, as a replay decides every run."""
    from .engine import decide_one

    return decide_one(run, current, values, policy, {**evidence_of(run), **(evidence or {})}, scope_labels)


def _decided(
    run: CalibrationRun,
    decision: Decision,
    smoothed: Mapping[str, float],
    change: ArchiveEntry | None,
    reason: str | None = None,
    **fields: Any,
) -> CalibrationRun:
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


def _policy_version(fields: dict[str, Any], policy: Any) -> dict[str, Any]:
    """Every decided run says which policy decided it (``policy_version``, see :mod:`.policy_versions`)."""
    if policy is not None:
        fields.setdefault("policy_version", policy_fingerprint(policy))
    return fields


def settle(
    run: CalibrationRun,
    decision: Decision,
    smoothed: Mapping[str, float],
    history_dir,
    reason: str | None = None,
    policy: Any = None,
    **fields: Any,
) -> CalibrationRun:
    """Record that nothing went live for ``run``, and why (and, given the ``policy``, which one decided)."""
    run = _decided(run, decision, smoothed, None, reason, **_policy_version(fields, policy))
    open_store(history_dir).save(run)
    return run


def propose(
    run: CalibrationRun,
    decision: Decision,
    current: Mapping[str, float],
    target: Target,
    *,
    smoothed: Mapping[str, float],
    history_dir,
    suggestions_dir,
    reason: str | None = None,
    run_reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    proposed_by: str | None = None,
    proposed_via: str | None = None,
    **fields: Any,
) -> tuple[CalibrationRun, Any]:
    """Leave the decision's values for a person to approve; the run waits with it. Call outside the target lock.

    ``proposed_by``/``proposed_via`` say who proposed and from where; the four-eyes settings of
    ``governing=`` (who may do what: the policy in force, narrowed by the domain's; default ``policy=``)
    are kept with the suggestion (a forced change always needs another person)."""
    from .review import Suggestion

    policy = fields.pop("policy", None)
    governing = fields.pop("governing", None) or policy
    _policy_version(fields, policy)
    suggestion, superseded = open_reviews(suggestions_dir).propose_superseding(
        Suggestion(
            proposed_by=proposed_by,
            proposed_via=proposed_via,
            forced=decision.forced,
            required_approvals=getattr(governing, "required_approvals", 1),
            distinct_approver=bool(getattr(governing, "require_distinct_approver", False) or decision.forced),
            domain=run.domain,
            target=target.name,
            underlying=run.underlying,
            created_at=now_utc(),
            values=decision.values,
            current_values=dict(current),
            reason=reason or decision.reason,
            run_id=run.run_id,
            details={
                "decision": decision.to_dict(),
                "calibration_timestamp": run.timestamp.isoformat(),
                **(details or {}),
            },
        )
    )
    waiting = run_reason or "Waiting for approval: " + decision.reason.removeprefix("Applied: ")
    # Under the suggestion's lock: an approval that came in between (it holds the same lock) has
    # already made the run applied, and a pending mark written now would undo that (D2).
    with open_reviews(suggestions_dir).holding(suggestion.suggestion_id) as now:
        if now.status == "pending":
            run = settle(
                run, decision, smoothed, history_dir, waiting, pending_suggestion=suggestion.suggestion_id, **fields
            )
        else:
            run = _run_after_review(run, now, history_dir, decision=decision, smoothed=smoothed)
    decide_runs_of(superseded, history_dir, suggestions_dir)
    return run, suggestion


def apply(
    run: CalibrationRun,
    decision: Decision,
    target: Target,
    *,
    smoothed: Mapping[str, float],
    history_dir,
    archive_dir,
    kind: ChangeKind,
    actor: str,
    reason: str | None = None,
    expected: Mapping[str, float] | None = None,
    already_locked: bool = False,
    via: str | None = None,
    by: str | None = None,
    policy: Any = None,
    **fields: Any,
) -> tuple[CalibrationRun, ArchiveEntry]:
    """Make the decision's values live (locked, archived), then record the run as applied.

    With ``expected``, the live values must still be those the decision was taken on; otherwise
    :class:`StaleChangeError` and nothing changes (someone else changed them meanwhile).
    """
    with contextlib.nullcontext() if already_locked else locked(target):
        if expected is not None:
            live = target.values(target.load())
            if live != dict(expected):
                raise StaleChangeError(
                    f"The live values of {target.name} changed while this decision was taken "
                    f"(now {_values_text(live)}); nothing was changed."
                )
        change = apply_values(
            target,
            decision.values,
            archive_dir=archive_dir,
            already_locked=True,
            kind=kind,
            actor=actor,
            reason=reason or decision.reason,
            domain=run.domain,
            underlying=run.underlying,
            run_id=run.run_id,
            calibration_timestamp=run.timestamp,
            via=via,
            by=by or actor,
        )
        run = _decided(run, decision, smoothed, change, reason, **_policy_version(fields, policy))
        try:
            open_store(history_dir).save(run)
        except ValueError as error:
            raise live_but_not_recorded(
                target.name,
                f"updating run {run.run_id} in the history",
                error,
                f"the archive has the change ({change.change_id}).",
            ) from error
    return run, change


def _values_text(values: Mapping[str, float]) -> str:
    return ", ".join(f"{scope} {value:g}" for scope, value in values.items())


def _forced(decision: Decision, values: dict[str, float]) -> Decision:
    """The decision a person overrode: each scope's ``new`` is what is written (the recommended values
    when asked for), measured against its threshold as written; the reason keeps what the policy said."""
    from .decide import reaches

    policy_said = decision.reason.removeprefix("Not applied: ").removeprefix("Applied: ")
    scopes = tuple(
        s
        if s.scope not in values or s.old is None
        else replace(
            s,
            new=values[s.scope],
            delta=values[s.scope] - s.old,
            changed=reaches(values[s.scope] - s.old, s.threshold),
        )
        for s in decision.scopes
    )
    return replace(
        decision,
        apply=True,
        forced=True,
        values=values,
        scopes=scopes,
        reason=f"{FORCED_REASON} (the policy alone said: {policy_said})",
    )


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


def _decision(run, current, smoothed, policy, force, force_values, evidence=None) -> Decision:
    decision = decide(run, current, smoothed, policy, evidence=evidence)
    if force:
        decision = _forced(decision, dict(smoothed if force_values == "smoothed" else run.recommended))
    return decision


def _reviewed(
    item,
    entry: ArchiveEntry,
    status: str,
    reviewer: str,
    notes: str | None,
    via: str | None = None,
    approvals: list[dict[str, Any]] | None = None,
):
    update = {
        "status": status,
        "reviewed_at": entry.at,
        "reviewer": reviewer,
        "notes": notes,
        "applied_values": entry.new_values,
        "applied_at": entry.at,
        "change_id": entry.change_id,
        "reviewed_via": via,
    }
    if approvals is not None:
        update["approvals"] = approvals
    return item.model_copy(update=update)


def _mark_run_applied(run_id: str | None, entry: ArchiveEntry, history_dir, forced: bool | None = None) -> None:
    """The run behind a change now shows as applied, with the change's reason (idempotent)."""
    if not run_id:
        return
    store = open_store(history_dir)
    try:
        run = store.get(run_id)
    except ValueError:
        return
    update = {
        "applied": True,
        "applied_reason": entry.reason,
        "applied_values": entry.new_values,
        "decided_at": entry.at,
        "pending_suggestion": None,
    }
    if run.decision is None:
        update["decision"] = {"apply": True, "reason": entry.reason, "settled": True}
    if forced is not None:
        update["forced"] = forced
    store.save(run.model_copy(update=update))


def _run_after_review(
    run: CalibrationRun,
    suggestion,
    history_dir,
    *,
    decision: Decision | None = None,
    smoothed: Mapping[str, float] | None = None,
) -> CalibrationRun:
    """The run of a suggestion already reviewed: applied if approved or modified, else not applied."""
    store = open_store(history_dir)
    stored = store.get(run.run_id)
    fields: dict[str, Any] = {
        "pending_suggestion": None,
        "decided_at": stored.decided_at or suggestion.reviewed_at or now_utc(),
    }
    if decision is not None:
        fields.update(
            {"decision": decision.to_dict(), "smoothed_iv_multiplier": dict(smoothed or {}), "forced": decision.forced}
        )
    if suggestion.status in ("approved", "modified"):
        fields.update(
            {
                "applied": True,
                "applied_values": suggestion.applied_values,
                "applied_reason": stored.applied_reason
                if stored.applied
                else f"Applied: suggestion {suggestion.suggestion_id} {suggestion.status} by {suggestion.reviewer}",
            }
        )
    else:
        fields.update({"applied": False, "applied_values": None, "applied_reason": not_applied_reason(suggestion)})
    if fields.get("decision") is None and stored.decision is None:
        fields["decision"] = {"apply": False, "reason": fields["applied_reason"], "settled": True}
    run = stored.model_copy(update=fields)
    store.save(run)
    return run


def not_applied_reason(suggestion) -> str:
    """Why a settled suggestion's values never went live, as its run says it."""
    if suggestion.status == "rejected":
        notes = f": {suggestion.notes}" if suggestion.notes else ""
        return f"Not applied: suggestion {suggestion.suggestion_id} was rejected by {suggestion.reviewer}{notes}"
    why = suggestion.expired_reason or "before anyone reviewed it"
    return f"Not applied: {why}" if why.startswith("superseded") else f"Not applied: the suggestion expired ({why})"


def decide_runs_of(expired, history_dir, suggestions_dir) -> None:
    """The runs still waiting for suggestions that expired say so (under each one's lock, so a run that is
    just now marking itself as waiting either finds it expired or is decided here after)."""
    reviews, store = open_reviews(suggestions_dir), open_store(history_dir)
    for item in expired:
        if not item.run_id:
            continue
        with reviews.holding(item.suggestion_id) as now:
            try:
                run = store.get(item.run_id)
            except ValueError:
                continue
            if run.pending_suggestion == now.suggestion_id and now.status != "pending":
                _run_after_review(run, now, history_dir)


def _run_of_rejected(run_id, suggestion, history_dir) -> None:
    try:
        run = open_store(history_dir).get(run_id)
    except ValueError:
        return
    if run.pending_suggestion == suggestion.suggestion_id:
        _run_after_review(run, suggestion, history_dir)


def _names(approvals: list[dict[str, Any]]) -> str:
    return " and ".join(str(a.get("by")) for a in approvals if a.get("by"))


def _suggestions_dir(suggestions_dir):
    from .review import resolve_suggestions_dir

    return resolve_suggestions_dir(suggestions_dir)
