"""Settling: a change killed half way is completed (it reached the live config) or undone (it did not).

Every multi-file change records a write-ahead intent first (:mod:`calibration_policy.intents`);
the governor settles the target's abandoned intents before the next change, and at once when a
change raises. ``doctor --repair`` settles them too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from .archive import now_utc, resolve_archive_dir
from .events import SETTLED_NOTE, Event, derived_event_id
from .outbox import add_missing
from .steps import _mark_run_applied, _reviewed, _run_after_review, _run_of_rejected, _suggestions_dir, decide_runs_of
from .stores import govern, intents, locked, open_archive, open_outbox, open_reviews, open_store
from .target import Target


def begin_intent(ctx: Any, target: Target, kind: str, expected_version: str | None = None, **info: Any) -> Any:
    """Record, before a change writes anything, what it will do (see :mod:`calibration_policy.intents`)."""
    return _begin(target, ctx.archive_dir, kind, ctx.history_dir, ctx.suggestions_dir, expected_version, **info)


@contextlib.contextmanager
def settling(intent: Any, target: Target, archive_dir: Any) -> Iterator[Any]:
    """Run the change of ``intent``, then clear it. On an error the change is settled at once
    (completed if it reached the live config, else undone); a killed process leaves it for the next change."""
    try:
        yield intent
    except Exception as error:
        try:
            _settle_one({**intent.data, "why": str(error)}, target, archive_dir)
            _settle_events(intent, target, archive_dir)  # a change that raised after going live is still announced
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
            _settle_events(intent, target, archive_dir)
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
    if kind in ("update", "force", "auto") or data.get("settle") == "runs":
        return _settle_runs(data, made, history_dir, suggestions_dir, target)
    if kind == "reject" and suggestion is not None and suggestion.status == "rejected":
        _run_of_rejected(data.get("run_id"), suggestion, history_dir)
        return f"rejecting suggestion {sid}: its run now says so."
    return f"{kind} of {target.name}: the archive agrees with the live config."


def _settle_events(intent: Any, target: Target, archive_dir: Any) -> None:
    # The outbox is kept beside the archive it announces (events.record writes it there too).
    settle_events(intent, resolve_archive_dir(archive_dir).parent, open_archive(archive_dir, target.name))


def settle_events(intent: Any, data_dir: Any, archive: Any) -> tuple[int, int]:
    """Settling a killed change: keep its records that are true now, discard the others, and add the event
    of a live change it made that was killed before its event was written. ``archive`` is the target's
    archive after settling (an event naming a live change is true only when the archive has that change).
    Returns (discarded, added)."""
    outbox = open_outbox(data_dir)
    held = outbox.held_by(intent.intent_id)
    entries = archive.entries()
    made = {entry.change_id for entry in entries}
    untrue = [r["event"]["event_id"] for r in held if r["event"].get("change_id") not in (None, *made)]
    if untrue:
        outbox.discard(untrue)
    told = {r["event"].get("change_id") for r in held}
    started = _parse_time(intent.data.get("started_at"))
    owed = [
        settled_event(entry, intent.data)
        for entry in entries
        # not announced already, not older, and not another writer's (made while this one waited for the lock)
        if entry.change_id not in told and started is not None and entry.at >= started and made_by(entry, intent.data)
    ]
    if not any(r["event"].get("status") == "waiting" for r in held):
        owed += _waiting_events(intent.data, started)
    if not any(r["event"].get("status") == "not_applied" for r in held):
        owed += _refused_events(intent.data, started)
    return len(untrue), add_missing(outbox, owed)  # settled twice (killed again while settling): one event each


def made_by(entry: Any, intent: Mapping[str, Any]) -> bool:
    """Whether archive ``entry`` is the change of the killed change ``intent``, not a change another writer made
    meanwhile (that one is announced by its own event). An update or review is known by its run or suggestion;
    an intent that names neither (a roll back; an update killed before it recorded its run, which made no
    change) can only have made an entry that names neither."""
    run_id, suggestion_id = intent.get("run_id"), intent.get("suggestion_id")
    if run_id is None and suggestion_id is None:
        return entry.run_id is None and entry.suggestion_id is None
    return (run_id is not None and entry.run_id == run_id) or (
        suggestion_id is not None and entry.suggestion_id == suggestion_id
    )


def _waiting_events(intent: Mapping[str, Any], started: datetime | None) -> list[dict[str, Any]]:
    """The "waiting" event of a suggestion the killed change saved before it wrote that event (the
    suggestion is saved, so the change happened: a person must hear of it), even when a newer suggestion
    expired it (or someone reviewed it) before the killed change was settled: it was waiting. Its id derives
    from the suggestion's, so settling again cannot announce it twice."""
    run_id = intent.get("run_id")
    if not run_id:
        return []
    try:
        made = open_reviews(intent.get("suggestions_dir")).all(target=intent.get("target"))
    except ValueError:
        return []
    return [
        Event(
            kind=str(intent.get("kind") or "update"),
            status="waiting",
            domain=item.domain,
            target=item.target,
            actor=item.proposed_by or "policy",
            via=item.proposed_via or str(intent.get("via") or "python"),
            reason="Waiting for approval: " + item.reason.removeprefix("Applied: ") + SETTLED_NOTE,
            underlying=item.underlying,
            before=dict(item.current_values),
            after=dict(item.values),
            run_id=run_id,
            suggestion_id=item.suggestion_id,
            at=item.created_at,
            event_id=derived_event_id("suggestion", item.suggestion_id),
        ).to_dict()
        for item in made
        if item.run_id == run_id and (started is None or item.created_at >= started)
    ]


def _refused_events(intent: Mapping[str, Any], started: datetime | None) -> list[dict[str, Any]]:
    """The "not_applied" event of the run the killed change decided by the rules (the decision is stored, so
    it was made) before it wrote that event. A run settling itself marked not applied (killed before any
    decision) is not announced: nobody decided it. Its id derives from the run's: announced once."""
    run_id = intent.get("run_id")
    if not run_id or started is None:
        return []
    try:
        run = open_store(intent.get("history_dir")).get(run_id)
    except ValueError:
        return []
    decision, extra = run.decision or {}, run.model_extra or {}
    if run.applied or run.pending_suggestion or decision.get("settled") or not run.decided_at:
        return []
    if run.decided_at < started or decision.get("apply", True):
        return []  # decided before this change (a force of an older run), or not refused by the rules
    return [
        Event(
            kind=str(intent.get("kind") or "update"),
            status="not_applied",
            domain=run.domain,
            target=intent.get("target"),
            actor=extra.get("decided_by") or "policy",
            via=extra.get("decided_via") or str(intent.get("via") or "python"),
            reason=f"{run.applied_reason or decision.get('reason') or 'Not applied'}{SETTLED_NOTE}",
            underlying=run.underlying,
            before={s["scope"]: s["old"] for s in decision.get("scopes") or [] if "scope" in s and "old" in s},
            after=None,
            run_id=run.run_id,
            at=run.decided_at,
            event_id=derived_event_id("refused", run.run_id),
        ).to_dict()
    ]


def settled_event(entry: Any, intent: dict[str, Any]) -> dict[str, Any]:
    """The event of a live change whose process died before it wrote its event; its id derives from the
    change's, so settling it again cannot announce it twice."""
    return Event(
        kind=str(intent.get("kind") or entry.kind),
        status="applied",
        domain=entry.domain,
        target=entry.target,
        actor=entry.by or entry.actor,
        via=entry.via or str(intent.get("via") or "python"),
        reason=f"{entry.reason}{SETTLED_NOTE}",
        underlying=entry.underlying,
        before=dict(entry.previous_values),
        after=dict(entry.new_values),
        run_id=entry.run_id,
        change_id=entry.change_id,
        suggestion_id=entry.suggestion_id,
        at=entry.at,
        event_id=derived_event_id("change", str(entry.target), str(entry.change_id)),
    ).to_dict()


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
