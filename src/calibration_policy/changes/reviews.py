"""A person's review of a pending suggestion: approve it, modify it, or reject it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..apply import apply_values
from ..archive import now_utc
from ..errors import ReviewError, SettledError, live_but_not_recorded
from ..events import Decided
from ..governor import Change, Step
from ..models import Decision
from ..permissions import actor_name
from ..plugins import get_domain
from ..review import Suggestion, _notes, _who
from ..steps import _mark_run_applied, _names, _reviewed, _run_of_rejected
from ..stores import open_archive, open_store
from ..target import Target


def _run_decided(step: Step, item: Suggestion, decision: Decision) -> Decided | None:
    """The run behind a reviewed suggestion, as decided now (None: the suggestion has no run any more)."""
    if not item.run_id:
        return None
    try:
        return Decided(
            open_store(step.ctx.history_dir).get(item.run_id),
            decision,
            getattr(step.change, "rules", None) or step.ctx.rules_of_changes,
        )
    except ValueError:
        return None


@dataclass
class Review(Change):
    """What approve, modify and reject share: the suggestion (in ``store``), who reviews and why."""

    store: Any
    suggestion_id: str
    target: Target | None
    notes: str | None = None
    expected_version: str | None = None
    rules: Any = None

    def domain(self, ctx) -> str:
        return self.store.get(self.suggestion_id).domain

    def live(self) -> Target | None:
        return self.target

    def identify(self, ctx) -> None:
        _who(actor_name(ctx.actor))  # the reviewer says who they are, before anything else

    def prepare(self, ctx, actor) -> None:
        self.notes = _notes(self.notes)
        item = self.store.get(self.suggestion_id)
        if self.target is not None and item.target != self.target.name:  # before the live config is even read
            what = get_domain(item.domain).parameter_label_plural
            raise ReviewError(
                f"Suggestion {self.suggestion_id} suggests {what} for {item.target}, not for {self.target.name}; "
                "nothing was changed."
            )

    def intent(self) -> dict[str, Any]:
        return {"expected_version": self.expected_version, "suggestion_id": self.suggestion_id}


@dataclass
class Approve(Review):
    """Make a pending suggestion's values live as they are (or, when the policy wants more approvers than
    this one, record the approval and keep waiting); ``values`` given: the reviewer's own values (modify)."""

    values: Mapping[str, Any] | None = None

    kind = "approve"
    action = "approve"

    def prepare(self, ctx, actor) -> None:
        super().prepare(ctx, actor)
        item = self.store.get(self.suggestion_id)
        if item.status == "pending":  # refused before a lock file exists; again under the lock
            ctx.four_eyes(item, actor, self.rules)

    @property
    def status(self) -> str:
        return "approved"

    def perform(self, step: Step) -> Suggestion:
        ctx, target, reviewer, notes = step.ctx, step.target, step.actor, self.notes
        assert target is not None
        sid, status = self.suggestion_id, self.status
        with self.store.holding(sid) as item:
            if (
                item.status == status
                and item.reviewer == reviewer
                and any(f" {sid} had reached" in s for s in step.settled)
            ):
                return item  # this reviewer's own interrupted approval, completed just now: done once, not twice
            if item.status != "pending":
                raise SettledError(f"Suggestion {sid} was already {item.done_text()}; nothing was changed.")
            if item.target != target.name:
                raise ReviewError(f"Suggestion {sid} is for {item.target}, not {target.name}.")
            chosen = get_domain(item.domain).validate(self.values if self.values is not None else item.values)
            needed = ctx.needed_approvals(item, self.rules)
            approvals = list(item.approvals)
            if status == "approved":
                ctx.four_eyes(item, reviewer, self.rules)  # under the lock: two approvals at once still count as two
                approvals.append({"by": reviewer, "at": now_utc().isoformat(), "via": ctx.via, "notes": notes})
                if len(approvals) < needed:  # one file, under the suggestion's lock; the live config is not touched
                    waiting = item.model_copy(update={"approvals": approvals})
                    self.store.save(waiting)
                    self._waiting(step, waiting, f"approval {len(approvals)} of {needed} by {reviewer} recorded")
                    return waiting
            elif needed > 1 or item.distinct_approver or ctx.rules(self.rules).require_distinct_approver:
                # Four-eyes: the modified values wait for someone else's approval.
                waiting = item.model_copy(
                    update={
                        "values": chosen,
                        "modified_by": reviewer,
                        "modified_at": now_utc(),
                        "approvals": [],
                        "notes": notes,
                        "reviewed_via": ctx.via,
                    }
                )
                self.store.save(waiting)
                self._waiting(step, waiting, f"modified by {reviewer}; it waits for another person's approval")
                return waiting
            verb = "approved" if status == "approved" else "modified and approved"
            step.note(
                run_id=item.run_id, status=status, reviewer=reviewer, notes=notes, via=ctx.via, approvals=approvals
            )
            with step.locked(self.expected_version):
                archive = open_archive(ctx.archive_dir, target.name)
                archive.reconcile(target, target.load())
                # Already live (a change recorded before intents existed): record it, never apply twice.
                done = [e for e in archive.entries() if e.suggestion_id == item.suggestion_id]
                entry = (
                    done[-1]
                    if done
                    else apply_values(
                        target,
                        chosen,
                        archive_dir=ctx.archive_dir,
                        already_locked=True,
                        kind=self.kind,  # type: ignore[arg-type]
                        reason=f"Applied: suggestion {item.suggestion_id} {verb} by {_names(approvals) or reviewer}"
                        + (f" ({notes})" if notes else ""),
                        actor=reviewer,
                        via=ctx.via,
                        by=reviewer,
                        approvals=approvals,
                        proposed_by=item.proposed_by,
                        domain=item.domain,
                        underlying=item.underlying,
                        run_id=item.run_id,
                        suggestion_id=item.suggestion_id,
                        calibration_timestamp=item.created_at,
                        # the watch's proposed roll back: the change it undoes, so its watch says so
                        **({"watch_of": item.details["watch_of"]} if (item.details or {}).get("watch_of") else {}),
                    )
                )
            try:
                _mark_run_applied(item.run_id, entry, ctx.history_dir)
            except ValueError as error:
                raise live_but_not_recorded(
                    target.name, "recording the change", error, f"the archive has it ({entry.change_id})."
                ) from error
            updated = _reviewed(item, entry, status, reviewer, notes, ctx.via, approvals)
            try:
                self.store.save(updated)
            except ValueError as error:
                raise live_but_not_recorded(
                    updated.target,
                    f"saving suggestion {sid} as {updated.status}",
                    error,
                    f"the archive has the change ({updated.change_id}).",
                ) from error
        step.event(
            "applied",
            entry.reason,
            decided=_run_decided(step, updated, Decision(apply=True, reason=entry.reason, values=entry.new_values)),
            domain=item.domain,
            underlying=item.underlying,
            before=entry.previous_values,
            after=entry.new_values,
            run_id=item.run_id,
            change_id=entry.change_id,
            suggestion_id=sid,
        )
        return updated

    def _waiting(self, step: Step, item: Suggestion, what: str) -> None:
        reason = f"Waiting for approval: suggestion {item.suggestion_id} {what}"
        step.event(
            "waiting",
            reason,
            domain=item.domain,
            underlying=item.underlying,
            before=item.current_values,
            after=item.values,
            run_id=item.run_id,
            suggestion_id=item.suggestion_id,
        )


@dataclass
class Modify(Approve):
    """Make the reviewer's own ``values`` live instead of the suggested ones, after the domain validated
    them (under the four-eyes rule they wait for another person's approval)."""

    kind = "modify"
    action = "modify"

    def identify(self, ctx) -> None:
        if not isinstance(self.values, Mapping):  # None would silently approve the suggested values as "modified"
            raise ReviewError(
                f"Give the values to apply instead of the suggested ones, not {type(self.values).__name__}."
            )
        super().identify(ctx)

    def prepare(self, ctx, actor) -> None:
        Review.prepare(self, ctx, actor)  # no four-eyes here: modified values may wait for another person

    @property
    def status(self) -> str:
        return "modified"


@dataclass
class Reject(Review):
    """Close a pending suggestion without touching the live config; its run then says why nothing went live."""

    kind = "reject"
    action = "reject"

    def perform(self, step: Step) -> Suggestion:
        ctx, target, sid = step.ctx, step.target, self.suggestion_id
        with self.store.holding(sid) as item:
            if item.status != "pending":
                raise SettledError(f"Suggestion {sid} was already {item.done_text()}; nothing was changed.")
            if target is not None:
                with step.locked(self.expected_version):
                    pass  # a rejection writes no live config: the lock is taken only for the version check
            step.note(run_id=item.run_id)
            updated = item.model_copy(
                update={
                    "status": "rejected",
                    "reviewed_at": now_utc(),
                    "reviewer": step.actor,
                    "notes": self.notes,
                    "reviewed_via": ctx.via,
                }
            )
            self.store.save(updated)
            if item.run_id:
                _run_of_rejected(item.run_id, updated, ctx.history_dir)
        reason = f"Not applied: suggestion {sid} was rejected by {step.actor}" + (
            f" ({self.notes})" if self.notes else ""
        )
        step.event(
            "rejected",
            reason,
            decided=_run_decided(step, updated, Decision(apply=False, reason=reason, values=dict(item.values))),
            domain=item.domain,
            underlying=item.underlying,
            before=item.current_values,
            after=None,
            run_id=item.run_id,
            suggestion_id=sid,
        )
        return updated
