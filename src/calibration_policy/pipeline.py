"""The one flow: record → smooth → normalize → rules → decision → propose | apply → archive → notify.

Each step is one function here, and every caller composes these same functions: a host's
calibration result (:func:`run_update`), the panel's force button (:func:`force_apply`), and a
domain plugin with an analysis of its own (the scoring weights' suggest and auto mode). A step
is never spelled twice, so a guarantee added to a step holds for every domain and caller.

Every change — update, force-apply, approve, modify, reject, roll back, a domain's auto mode — is
one function here, and every caller (CLI, panel, JSON routes, plugins) goes through it. Each one
first settles what a killed process left half done (:func:`settle_interrupted`; one directory
listing when nothing is), records a write-ahead intent before a multi-file change
(:mod:`calibration_policy.intents`), and with ``expected_version`` refuses a change based on a live
config someone changed since (:class:`StaleChangeError`, :func:`live_version`).

Lock order, everywhere: a suggestion's lock before the target's (approving holds the first and
takes the second), so proposing always happens outside the target lock; settling takes them in
the same order.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypedDict

from .apply import apply_values
from .archive import ArchiveEntry, ChangeKind, now_utc
from .durable import dumps
from .errors import CalibrationPolicyError, HistoryError, SettledError, StaleChangeError, live_but_not_recorded
from .history import build_run
from .models import CalibrationRun, Decision
from .naming import check_underlying
from .permissions import actor_name, four_eyes, needed_approvals
from .permissions import check as check_permission
from .plugins import get_domain, get_plugin_manager
from .policy import CalibrationUpdatePolicy
from .policy_versions import policy_fingerprint
from .rule_evidence import live_evidence
from .smoothing import get_smoothed_multipliers, window_runs
from .stores import follow, govern, intents, locked, open_archive, open_reviews, open_store
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

    ``proposed_by``/``proposed_via`` say who proposed and from where; the policy's four-eyes
    settings (``policy=``) are kept with the suggestion (a forced change always needs another person)."""
    from .review import Suggestion

    policy = fields.pop("policy", None)
    _policy_version(fields, policy)
    suggestion, superseded = open_reviews(suggestions_dir).propose_superseding(
        Suggestion(
            proposed_by=proposed_by,
            proposed_via=proposed_via,
            forced=decision.forced,
            required_approvals=getattr(policy, "required_approvals", 1),
            distinct_approver=bool(getattr(policy, "require_distinct_approver", False) or decision.forced),
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


def notify(run: CalibrationRun, decision: Decision, policy: CalibrationUpdatePolicy) -> None:
    get_plugin_manager().hook.decision_made(run=run, decision=decision, policy=policy)


def _forced(decision: Decision, values: dict[str, float]) -> Decision:
    policy_said = decision.reason.removeprefix("Not applied: ").removeprefix("Applied: ")
    return replace(
        decision,
        apply=True,
        forced=True,
        values=values,
        reason=f"{FORCED_REASON} (the policy alone said: {policy_said})",
    )


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
    force_values: ForcedValues = "smoothed",
    dry_run: bool = False,
    suggestions_dir: str | os.PathLike[str] | None = None,
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
    python) are checked first against ``permissions`` (a host callable) or the policy's
    ``[permissions]`` table, and recorded with the run, the suggestion and the archived change.
    """
    if force_values not in ("smoothed", "recommended"):
        raise CalibrationPolicyError(f"force_values must be 'smoothed' or 'recommended', not {force_values!r:.40}.")
    policy = in_force(policy)
    follow(policy)  # a policy that names a store is followed before anything is read or written
    target = govern(target)
    if not dry_run:  # the one permission check, before anything is written
        actor = check_permission(
            "force_apply" if force else "propose",
            actor=_default_actor(actor, force),
            domain=policy.domain,
            via=via,
            policy=policy,
            permissions=permissions,
        )
    run = build_run(result, underlying, source, timestamp, config, policy.domain)
    if dry_run:  # the same decision and route as the real call, nothing written
        smoothed = smoothed_for(run, policy, history_dir)  # the unrecorded run still counts once
        evidence = live_evidence(run, policy, history_dir=history_dir, archive_dir=archive_dir, target_name=target.name)
        decision = _decision(run, target.values(target.load()), smoothed, policy, force, force_values, evidence)
        would = route(decision, policy)
        if would == "propose":
            decision = replace(decision, apply=False, reason=_waiting(decision))
        return UpdateOutcome(run=_decided(run, decision, smoothed, None), decision=decision, dry_run=True, route=would)
    target.values(target.load())  # a missing or corrupt live config fails here, before anything is written
    suggestions_dir = _suggestions_dir(suggestions_dir)
    settle_interrupted(target, archive_dir=archive_dir, history_dir=history_dir, suggestions_dir=suggestions_dir)
    with _intent(
        target,
        archive_dir,
        "update",
        history_dir,
        suggestions_dir,
        expected_version,
        underlying=run.underlying,
        source=run.source,
        timestamp=run.timestamp.isoformat(),
    ) as intent:
        run = open_store(history_dir).record(run)
        intent.note(run_id=run.run_id)
        smoothed = smoothed_for(run, policy, history_dir)
        return _decide_and_apply(
            run,
            smoothed,
            policy,
            target,
            history_dir,
            archive_dir,
            force,
            force_values,
            suggestions_dir,
            expected_version,
            actor,
            via,
        )


def in_force(policy: CalibrationUpdatePolicy | None) -> CalibrationUpdatePolicy:
    """The policy a change follows: the caller's, else the one in force (``$CALIBRATION_POLICY``, else the
    built-in defaults) — so a Python host that passes none cannot step around its [permissions] table."""
    return policy if policy is not None else CalibrationUpdatePolicy.load()


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


def _decision(run, current, smoothed, policy, force, force_values, evidence=None) -> Decision:
    decision = decide(run, current, smoothed, policy, evidence=evidence)
    if force:
        decision = _forced(decision, dict(smoothed if force_values == "smoothed" else run.recommended))
    return decision


class _DecidedBy(TypedDict):
    """What every decided run records about the decision: which policy, who asked, from where."""

    policy_version: str
    decided_by: str | None
    decided_via: str


def _decide_and_apply(
    run,
    smoothed,
    policy,
    target,
    history_dir,
    archive_dir,
    force,
    force_values,
    suggestions_dir=None,
    expected_version: str | None = None,
    actor: str | None = None,
    via: str = "python",
) -> UpdateOutcome:
    version: _DecidedBy = {
        "policy_version": policy_fingerprint(policy),  # which policy decided (see policy_versions)
        "decided_by": actor,
        "decided_via": via,
    }
    with locked(target):
        check_version(target, expected_version, archive_dir)
        current = target.values(target.load())
        evidence = live_evidence(run, policy, history_dir=history_dir, archive_dir=archive_dir, target_name=target.name)
        decision = _decision(run, current, smoothed, policy, force, force_values, evidence)
        way, change = route(decision, policy), None
        if way == "apply":
            run, change = apply(
                run,
                decision,
                target,
                smoothed=smoothed,
                history_dir=history_dir,
                archive_dir=archive_dir,
                kind="force" if decision.forced else "update",
                actor="user" if decision.forced else "policy",
                already_locked=True,
                via=via,
                by=actor,
                **version,
            )
        elif way == "settle":
            run = settle(run, decision, smoothed, history_dir, **version)
    if way == "propose":
        run, _ = propose(
            run,
            decision,
            current,
            target,
            smoothed=smoothed,
            history_dir=history_dir,
            suggestions_dir=suggestions_dir,
            run_reason=_waiting(decision),
            proposed_by=actor,
            proposed_via=via,
            policy=policy,
            **version,
        )
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
    use: ForcedValues = "smoothed",
    expected_version: str | None = None,
    actor: Any = None,
    via: str = "python",
    permissions: Any = None,
    suggestions_dir: str | os.PathLike[str] | None = None,
) -> UpdateOutcome:
    """Apply the latest (or the given) run now, whatever the rules say: the panel's button.

    With ``expected_version`` (what the page or caller saw, :func:`live_version`) a newer change
    made meanwhile is never overwritten: :class:`StaleChangeError`, nothing changed (D10).
    With ``force_requires_approval`` the forced values wait as a suggestion for a second person.
    """
    underlying, target = check_underlying(underlying), govern(target)
    if use not in ("smoothed", "recommended"):
        raise CalibrationPolicyError(f"use must be 'smoothed' or 'recommended', not {use!r:.40}.")
    policy = in_force(policy)
    actor = check_permission(
        "force_apply",
        actor=_default_actor(actor, True),
        domain=policy.domain,
        via=via,
        policy=policy,
        permissions=permissions,
    )
    store = open_store(history_dir)
    if run_id is not None:
        run = store.get(run_id)
        if run.underlying != underlying.upper():
            raise CalibrationPolicyError(f"Run {run_id} is a {run.underlying} run, not {underlying}.")
    else:
        latest = store.latest(underlying, limit=1)
        if not latest:
            raise HistoryError(
                f"There is no calibration run for {underlying.upper()} to apply yet; run an update first."
            )
        run = latest[0]
    if run.domain != policy.domain:
        raise CalibrationPolicyError(
            f"Run {run.run_id} holds {run.domain} values, not {policy.domain}; it cannot be applied to this target."
        )
    smoothed = run.smoothed or smoothed_for(run, policy, history_dir)
    target.values(target.load())  # a missing or corrupt live config fails here, before anything is written
    settle_interrupted(target, archive_dir=archive_dir, history_dir=history_dir, suggestions_dir=suggestions_dir)
    with _intent(
        target,
        archive_dir,
        "force",
        history_dir,
        suggestions_dir,
        expected_version,
        run_id=run.run_id,
        underlying=run.underlying,
    ):
        return _decide_and_apply(
            run,
            smoothed,
            policy,
            target,
            history_dir,
            archive_dir,
            True,
            use,
            suggestions_dir,
            expected_version=expected_version,
            actor=actor,
            via=via,
        )


# -- versions: optimistic concurrency -----------------------------------------------------------


def live_version(target: Target) -> str:
    """What a page or caller saw of the live config, to send back with a change: a short fingerprint of
    it, led by the store's version counter where the store keeps one (a database row's ``version``
    column), so that values changed and changed back still count as changed."""
    target = govern(target)
    fingerprint = hashlib.sha256(dumps(target.load())).hexdigest()[:16]
    counter = getattr(target, "version", None)
    return f"{counter()}-{fingerprint}"[:64] if callable(counter) else fingerprint


def check_version(target: Target, expected: str | None, archive_dir=None) -> None:
    """Refuse a change based on a live config that someone changed since (``expected`` None: no check)."""
    if expected is None:
        return
    now = live_version(target)
    if now == expected:
        return
    last = open_archive(archive_dir, target.name).last_change()
    since = (
        f" The last change was {last.change_id} ({last.how} at {last.at:%Y-%m-%d %H:%M:%S} UTC: {last.reason})."
        if last is not None
        else ""
    )
    raise StaleChangeError(
        f"The live values of {target.name} changed since you looked (version {str(expected)[:40]} is now {now}); "
        f"they are now {_values_text(target.values(target.load()))}.{since} Nothing was changed; reload and decide again.",
    )


# -- intents: every multi-file change is recorded before it starts, and settled if interrupted ----


def _suggestions_dir(suggestions_dir):
    from .review import resolve_suggestions_dir

    return resolve_suggestions_dir(suggestions_dir)


def change_intent(
    target: Target,
    archive_dir,
    kind: str,
    *,
    history_dir=None,
    suggestions_dir=None,
    expected_version: str | None = None,
    **info: Any,
):
    """``with change_intent(...) as intent:`` — for a domain's own multi-file change (auto mode): the
    intent is recorded first, cleared when the block ends, and settled if the process dies inside."""
    target = govern(target)
    target.values(target.load())  # a missing or corrupt live config fails here, before anything is written
    settle_interrupted(target, archive_dir=archive_dir, history_dir=history_dir, suggestions_dir=suggestions_dir)
    return _intent(target, archive_dir, kind, history_dir, suggestions_dir, expected_version, **info)


@contextlib.contextmanager
def _intent(target: Target, archive_dir, kind: str, history_dir, suggestions_dir, expected_version, **info: Any):
    """Record the intent, run the change, then clear it. On an error the change is settled at once
    (completed if it reached the live config, else undone); a killed process leaves it for the next call."""
    intent = _begin(target, archive_dir, kind, history_dir, suggestions_dir, expected_version, **info)
    try:
        yield intent
    except Exception as error:
        try:
            _settle_one({**intent.data, "why": str(error)}, target, archive_dir)
        except Exception:
            intent.release()
        else:
            intent.done()
        raise
    intent.done()


def settle_interrupted(target: Target, *, archive_dir=None, history_dir=None, suggestions_dir=None) -> list[str]:
    """Complete or undo every change of ``target`` a killed process left half done; one directory
    listing when there is none. Returns one sentence per settled change."""
    target = govern(target)
    if not intents().pending_names(archive_dir, target.name):
        return []
    settled = []
    for intent in intents().abandoned(archive_dir, target.name):
        try:
            settled.append(_settle_one(intent.data, target, archive_dir))
        except BaseException:
            intent.release()
            raise
        intent.done()
    return settled


def _settle_one(data: Mapping[str, Any], target: Target, archive_dir) -> str:
    kind = data.get("kind")
    history_dir, suggestions_dir = data.get("history_dir"), data.get("suggestions_dir")
    sid = data.get("suggestion_id")
    store = open_reviews(suggestions_dir)
    hold = contextlib.nullcontext(None)
    if sid:
        try:
            store.get(sid)
            hold = store.holding(sid)
        except ValueError:  # gone or unreadable: nothing of it to settle
            hold = contextlib.nullcontext(None)
    with hold as suggestion:
        with locked(target):  # lock order: the suggestion's, then the target's; never the other way
            archive = open_archive(archive_dir, target.name)
            archive.reconcile(target, target.load())
            started = _parse_time(data.get("started_at"))
            made = [e for e in archive.entries() if started is None or e.at >= started]
        if kind in ("approve", "modify") and suggestion is not None:
            entry = next((e for e in made if e.suggestion_id == sid), None)
            if entry is None:
                return f"{kind} of suggestion {sid} never reached the live config: it stays {suggestion.status}."
            if suggestion.status == "pending":
                store.save(
                    _reviewed(
                        suggestion,
                        entry,
                        data.get("status") or "approved",
                        data.get("reviewer") or "?",
                        data.get("notes"),
                        data.get("via"),
                        data.get("approvals"),
                    )
                )
            _mark_run_applied(suggestion.run_id, entry, history_dir)
            return f"{kind} of suggestion {sid} had reached the live config ({entry.change_id}): recorded as done."
    if kind in ("update", "force", "auto"):
        return _settle_runs(data, made, history_dir, suggestions_dir, target)
    if kind == "reject" and suggestion is not None and suggestion.status == "rejected":
        _run_of_rejected(data.get("run_id"), suggestion, history_dir)
        return f"rejecting suggestion {sid}: its run now says so."
    return f"{kind} of {target.name}: the archive agrees with the live config."


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _settle_runs(data, made, history_dir, suggestions_dir, target) -> str:
    store = open_store(history_dir)
    if data.get("run_id"):
        try:
            runs = [store.get(data["run_id"])]
        except ValueError:
            return f"{data['kind']} of {target.name}: its run {data['run_id']} is gone; nothing to settle."
    else:  # killed before the intent named the run: the undecided runs of its moment
        when, started = _parse_time(data.get("timestamp")), _parse_time(data.get("started_at"))
        try:
            if when is not None:
                candidates = store.between(data.get("underlying") or "", when, when)
            else:
                candidates = [
                    r
                    for r in store.latest(data.get("underlying") or "", limit=20)
                    if started is not None and r.timestamp >= started
                ]
        except ValueError:
            candidates = []
        runs = [r for r in candidates if r.source == data.get("source") and r.decided_at is None]
    said = []
    for run in runs:
        entry = next((e for e in reversed(made) if e.run_id == run.run_id), None)
        if entry is not None:
            if not (run.applied and run.applied_values == entry.new_values):
                _mark_run_applied(run.run_id, entry, history_dir, forced=entry.kind == "force")
            said.append(f"run {run.run_id} had gone live ({entry.change_id}): recorded as applied")
            continue
        if run.decided_at is not None and data.get("kind") == "force":
            said.append(f"forcing run {run.run_id} never reached the live config: nothing changed")
            continue
        reviews = open_reviews(suggestions_dir)
        waiting = [s for s in reviews.all(target=target.name) if s.run_id == run.run_id]
        if waiting:
            newest = waiting[-1]
            if newest.status == "pending":
                expired = reviews.expire_pending(
                    target.name,
                    f"superseded by a newer suggestion ({newest.suggestion_id}) before anyone reviewed it",
                    older_than=newest,
                )
                decide_runs_of(expired, history_dir, suggestions_dir)
            with reviews.holding(newest.suggestion_id) as now:
                if now.status == "pending":
                    if run.pending_suggestion != now.suggestion_id or run.decided_at is None:
                        store.save(
                            run.model_copy(
                                update={
                                    "applied": False,
                                    "applied_reason": "Waiting for approval: " + now.reason.removeprefix("Applied: "),
                                    "decided_at": now_utc(),
                                    "pending_suggestion": now.suggestion_id,
                                    "decision": (now.details or {}).get("decision")
                                    or {"apply": True, "reason": now.reason},
                                }
                            )
                        )
                else:
                    _run_after_review(store.get(run.run_id), now, history_dir)
            said.append(f"run {run.run_id} waits for suggestion {newest.suggestion_id}")
            continue
        if run.decided_at is None:
            reason = (
                f"Not applied: {data['why'].rstrip('.')}"
                if data.get("why")
                else "Not applied: the update was interrupted before its decision was stored, "
                "and nothing went live; run it again to decide"
            )
            store.save(
                run.model_copy(
                    update={
                        "applied": False,
                        "applied_reason": reason,
                        "decided_at": now_utc(),
                        "decision": {"apply": False, "reason": reason, "settled": True},
                    }
                )
            )
            said.append(f"run {run.run_id} never went live: recorded as not applied")
    return f"{data.get('kind')} of {target.name}: " + ("; ".join(said) or "nothing was left half done") + "."


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


# -- the review changes: approve, modify, reject, roll back --------------------------------------


def _store(suggestions):
    return suggestions if hasattr(suggestions, "holding") else open_reviews(suggestions)


def _allowed(action: str, domain: Any, actor: Any, via: str, policy: Any, permissions: Any) -> str:
    """The one permission check of the review changes (approve, modify, reject, roll back): a name
    first (the reviewer must say who they are), then the permission on ``domain`` (or on what
    ``domain()`` answers, e.g. the suggestion's domain); nothing has been written yet."""
    from .review import _who

    _who(actor_name(actor))
    domain = domain() if callable(domain) else domain
    return _who(check_permission(action, actor=actor, domain=domain, via=via, policy=policy, permissions=permissions))


def _of_target(store, suggestion_id: str, target: Target | None) -> None:
    """Refuse, before anything is recorded, a suggestion for another target (another domain's or underlying's)."""
    from .errors import ReviewError

    item = store.get(suggestion_id)
    if target is not None and item.target != target.name:
        what = get_domain(item.domain).parameter_label_plural
        raise ReviewError(
            f"Suggestion {suggestion_id} suggests {what} for {item.target}, not for {target.name}; nothing was changed."
        )


def _actor(actor: Any, reviewer: Any) -> Any:
    return actor if actor is not None else reviewer


def _names(approvals: list[dict[str, Any]]) -> str:
    return " and ".join(str(a.get("by")) for a in approvals if a.get("by"))


def approve_suggestion(
    suggestions,
    suggestion_id: str,
    *,
    target: Target,
    reviewer: Any = None,
    notes: str | None = None,
    archive_dir=None,
    history_dir=None,
    expected_version: str | None = None,
    actor: Any = None,
    via: str = "python",
    policy: Any = None,
    permissions: Any = None,
):
    """Make a pending suggestion's values live as they are (``suggestions``: a ReviewStore or its folder),
    or, when the policy wants more approvers than this one, record the approval and keep waiting.

    ``actor`` (or ``reviewer``) is checked first for the ``approve`` permission, then the four-eyes
    rule (before the lock, and again under it)."""
    policy = in_force(policy)
    from .review import _notes

    store = _store(suggestions)
    who = _allowed(
        "approve", lambda: store.get(suggestion_id).domain, _actor(actor, reviewer), via, policy, permissions
    )
    _of_target(store, suggestion_id, target)
    notes = _notes(notes)
    if (
        item := store.get(suggestion_id)
    ).status == "pending":  # refused before a lock file exists; again under the lock
        four_eyes(item, who, policy)
    return _review_apply(
        store,
        suggestion_id,
        None,
        "approved",
        target,
        archive_dir,
        who,
        notes,
        history_dir,
        expected_version,
        via,
        policy,
    )


def modify_suggestion(
    suggestions,
    suggestion_id: str,
    values: Mapping[str, Any],
    *,
    target: Target,
    reviewer: Any = None,
    notes: str | None = None,
    archive_dir=None,
    history_dir=None,
    expected_version: str | None = None,
    actor: Any = None,
    via: str = "python",
    policy: Any = None,
    permissions: Any = None,
):
    """Make the reviewer's own values live instead of the suggested ones, after the domain validated them
    (under the four-eyes rule the modified values wait for another person's approval)."""
    policy = in_force(policy)
    from .errors import ReviewError
    from .review import _notes

    if not isinstance(values, Mapping):  # None would silently approve the suggested values as "modified"
        raise ReviewError(f"Give the values to apply instead of the suggested ones, not {type(values).__name__}.")
    store = _store(suggestions)
    who = _allowed("modify", lambda: store.get(suggestion_id).domain, _actor(actor, reviewer), via, policy, permissions)
    _of_target(store, suggestion_id, target)
    return _review_apply(
        store,
        suggestion_id,
        values,
        "modified",
        target,
        archive_dir,
        who,
        _notes(notes),
        history_dir,
        expected_version,
        via,
        policy,
    )


def _review_apply(
    store,
    suggestion_id,
    values,
    status,
    target,
    archive_dir,
    reviewer,
    notes,
    history_dir,
    expected_version,
    via="python",
    policy=None,
):
    """``reviewer`` and ``notes`` are checked by the caller (the permission check comes first)."""
    target = govern(target)

    settled = settle_interrupted(
        target, archive_dir=archive_dir, history_dir=history_dir, suggestions_dir=store.directory
    )
    with store.holding(suggestion_id) as item:
        if (
            item.status == status
            and item.reviewer == reviewer
            and any(f" {suggestion_id} had reached" in s for s in settled)
        ):
            return item  # this reviewer's own interrupted approval, completed just now: done once, not twice
        if item.status != "pending":
            raise SettledError(f"Suggestion {suggestion_id} was already {item.done_text()}; nothing was changed.")
        chosen = get_domain(item.domain).validate(values if values is not None else item.values)
        needed = needed_approvals(item, policy)
        approvals = list(item.approvals)
        if status == "approved":
            four_eyes(item, reviewer, policy)  # under the lock: two approvals at once still count as two people
            approvals.append({"by": reviewer, "at": now_utc().isoformat(), "via": via, "notes": notes})
            if len(approvals) < needed:  # one file, under the suggestion's lock; the live config is not touched
                waiting = item.model_copy(update={"approvals": approvals})
                store.save(waiting)
                return waiting
        elif needed > 1 or item.distinct_approver or getattr(policy, "require_distinct_approver", False):
            # Four-eyes: the modified values wait for someone else's approval.
            waiting = item.model_copy(
                update={
                    "values": chosen,
                    "modified_by": reviewer,
                    "modified_at": now_utc(),
                    "approvals": [],
                    "notes": notes,
                    "reviewed_via": via,
                }
            )
            store.save(waiting)
            return waiting
        verb = "approved" if status == "approved" else "modified and approved"
        kind = "approve" if status == "approved" else "modify"
        with locked(target):
            check_version(target, expected_version, archive_dir)
            archive = open_archive(archive_dir, target.name)
            archive.reconcile(target, target.load())
            # Already live (a change recorded before intents existed): record it, never apply twice.
            done = [e for e in archive.entries() if e.suggestion_id == item.suggestion_id]
            intent = _begin(
                target,
                archive_dir,
                kind,
                history_dir,
                store.directory,
                expected_version,
                suggestion_id=item.suggestion_id,
                run_id=item.run_id,
                status=status,
                reviewer=reviewer,
                notes=notes,
                via=via,
                approvals=approvals,
            )
            try:
                entry = (
                    done[-1]
                    if done
                    else apply_values(
                        target,
                        chosen,
                        archive_dir=archive_dir,
                        already_locked=True,
                        kind=kind,
                        reason=f"Applied: suggestion {item.suggestion_id} {verb} by {_names(approvals) or reviewer}"
                        + (f" ({notes})" if notes else ""),
                        actor=reviewer,
                        via=via,
                        by=reviewer,
                        approvals=approvals,
                        proposed_by=item.proposed_by,
                        domain=item.domain,
                        underlying=item.underlying,
                        run_id=item.run_id,
                        suggestion_id=item.suggestion_id,
                        calibration_timestamp=item.created_at,
                    )
                )
            except BaseException:
                intent.release()
                raise
        try:
            try:
                _mark_run_applied(item.run_id, entry, history_dir)
            except ValueError as error:
                raise live_but_not_recorded(
                    target.name, "recording the change", error, f"the archive has it ({entry.change_id})."
                ) from error
            updated = _reviewed(item, entry, status, reviewer, notes, via, approvals)
            try:
                store.save(updated)
            except ValueError as error:
                raise live_but_not_recorded(
                    updated.target,
                    f"saving suggestion {suggestion_id} as {updated.status}",
                    error,
                    f"the archive has the change ({updated.change_id}).",
                ) from error
        except BaseException:
            intent.release()  # left for the next change to settle
            raise
        intent.done()
        return updated


def reject_suggestion(
    suggestions,
    suggestion_id: str,
    *,
    reviewer: Any = None,
    notes: str | None = None,
    target: Target | None = None,
    archive_dir=None,
    history_dir=None,
    expected_version: str | None = None,
    actor: Any = None,
    via: str = "python",
    policy: Any = None,
    permissions: Any = None,
):
    """Close a pending suggestion without touching the live config; its run (when ``target`` is
    given) then says why nothing went live. ``actor`` (or ``reviewer``) needs the ``reject`` permission."""
    policy = in_force(policy)
    from .review import _notes

    store, target = _store(suggestions), govern(target) if target is not None else None
    reviewer = _allowed(
        "reject", lambda: store.get(suggestion_id).domain, _actor(actor, reviewer), via, policy, permissions
    )
    _of_target(store, suggestion_id, target)
    notes = _notes(notes)
    if target is not None:
        settle_interrupted(target, archive_dir=archive_dir, history_dir=history_dir, suggestions_dir=store.directory)
    with store.holding(suggestion_id) as item:
        if item.status != "pending":
            raise SettledError(f"Suggestion {suggestion_id} was already {item.done_text()}; nothing was changed.")
        if target is not None:
            with locked(target):
                check_version(target, expected_version, archive_dir)
        updated = item.model_copy(
            update={
                "status": "rejected",
                "reviewed_at": now_utc(),
                "reviewer": reviewer,
                "notes": notes,
                "reviewed_via": via,
            }
        )
        intent = None
        if target is not None and item.run_id:
            intent = _begin(
                target,
                archive_dir,
                "reject",
                history_dir,
                store.directory,
                expected_version,
                suggestion_id=item.suggestion_id,
                run_id=item.run_id,
            )
        try:
            store.save(updated)
            if intent is not None:
                _run_of_rejected(item.run_id, updated, history_dir)
        except BaseException:
            if intent is not None:
                intent.release()
            raise
        if intent is not None:
            intent.done()
        return updated


def _run_of_rejected(run_id, suggestion, history_dir) -> None:
    try:
        run = open_store(history_dir).get(run_id)
    except ValueError:
        return
    if run.pending_suggestion == suggestion.suggestion_id:
        _run_after_review(run, suggestion, history_dir)


def roll_back(
    target: Target,
    to: str,
    *,
    archive_dir=None,
    actor: Any = "user",
    domain: str | None = None,
    history_dir=None,
    expected_version: str | None = None,
    via: str = "python",
    policy: Any = None,
    permissions: Any = None,
    notes: str | None = None,
) -> ArchiveEntry:
    """Make an archived value set live again; the rollback is itself a recorded, archived change.

    ``to`` names the set by the change that made it live (its ``change_id``), or ``original``
    for the config as it was before the first recorded change. ``domain`` defaults to the
    domain of the target's archived changes, so the reason says "weights" or "IV multipliers".
    ``actor`` needs the ``roll_back`` permission on that domain (checked before anything is written).
    """
    policy = in_force(policy)
    from .errors import ReviewError
    from .naming import check_record_id
    from .review import _notes, _who

    who, target = actor, govern(target)
    _who(actor_name(who))
    if domain is None:  # read only: the permission is checked before anything is written
        last = open_archive(archive_dir, target.name).last_change()
        check_domain = last.domain if last is not None else "vol_surface"
    else:
        check_domain = domain
    actor, notes = _allowed("roll_back", check_domain, who, via, policy, permissions), _notes(notes)
    settle_interrupted(target, archive_dir=archive_dir, history_dir=history_dir)
    with locked(target):
        check_version(target, expected_version, archive_dir)
        periods = open_archive(archive_dir, target.name).periods()
        wanted = None if to == "original" else check_record_id(to, "change id")
        if domain is None:
            domain = periods[-1].change.domain if periods and periods[-1].change else "vol_surface"
            if domain != check_domain:  # the archive changed between the check and the lock: check its domain too
                actor = _allowed("roll_back", domain, who, via, policy, permissions)
        what = get_domain(domain).parameter_label_plural
        for period in periods:
            if (period.change.change_id if period.change else None) == wanted:
                label = f"the {what} of {period.since:%Y-%m-%d %H:%M UTC}" if period.since else f"the original {what}"
                return apply_values(
                    target,
                    None,
                    snapshot=period.snapshot,
                    archive_dir=archive_dir,
                    kind="rollback",
                    already_locked=True,
                    reason=f"Applied: rolled back to {label} by {actor}" + (f" ({notes})" if notes else ""),
                    actor=actor,
                    domain=domain,
                    via=via,
                    by=actor,
                    underlying=period.change.underlying if period.change else None,
                )
    known = ", ".join(["original"] + [p.change.change_id for p in periods if p.change]) if periods else "(none yet)"
    raise ReviewError(f"There is no archived value set {to!r:.60} for {target.name}; known: {known}.")


def _begin(target, archive_dir, kind, history_dir, suggestions_dir, expected_version, **info):
    from .history import resolve_history_dir

    return intents().begin(
        archive_dir,
        target.name,
        kind,
        version=expected_version,
        history_dir=str(resolve_history_dir(history_dir).absolute()),
        suggestions_dir=str(_suggestions_dir(suggestions_dir).absolute()),
        **info,
    )
