"""Events: what a change did, for whoever listens (a chat, an audit log, a webhook).

Every change the governor runs records its events with :func:`record` while the change is under
way, and the governor fires them with :func:`fire` once the change is durable: the plugins'
``change_made(event)`` for every change, and ``decision_made(run, decision, policy)`` for every
decision about a run (an update, a force, a person's approval or rejection, a domain's auto mode).
A listener therefore never hears of a change that was then undone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .archive import now_utc
from .errors import live_but_not_recorded
from .plugins import get_plugin_manager

if TYPE_CHECKING:
    from .context import Context
    from .models import CalibrationRun, Decision


SETTLED_NOTE = " (announced when the interrupted change was settled)"


def derived_event_id(*parts: str) -> str:
    """The id of an event announced from a record rather than by its change (a killed change settled later):
    derived from what it announces ("change", target, change id; "suggestion", id …), so announcing it again
    gives the same id and a listener hears of it once."""
    return uuid.uuid5(uuid.NAMESPACE_URL, ":".join(("calibration-policy", *parts))).hex


@dataclass(frozen=True)
class Event:
    """One change, as a listener sees it: who, from where, on what, before → after, and why.

    ``kind`` is the change kind ("update", "force", "approve", "modify", "reject", "roll_back",
    "weights_suggest", "weights_auto", "policy_set", …); ``status`` what became of it ("applied",
    "waiting", "not_applied", "rejected", "rolled_back", "recorded"). ``event_id`` is stable: a
    listener that hears an event twice can tell."""

    kind: str
    status: str
    domain: str | None
    target: str | None
    actor: str | None
    via: str
    reason: str
    underlying: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    run_id: str | None = None
    change_id: str | None = None
    suggestion_id: str | None = None
    at: datetime = field(default_factory=now_utc)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        """The payload, JSON-safe (``at`` as an ISO 8601 UTC time)."""
        return {
            "event_id": self.event_id,
            "kind": self.kind,
            "status": self.status,
            "domain": self.domain,
            "target": self.target,
            "underlying": self.underlying,
            "actor": self.actor,
            "via": self.via,
            "before": dict(self.before) if self.before is not None else None,
            "after": dict(self.after) if self.after is not None else None,
            "reason": self.reason,
            "run_id": self.run_id,
            "change_id": self.change_id,
            "suggestion_id": self.suggestion_id,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class Decided:
    """A decision about a run, for ``decision_made``."""

    run: CalibrationRun
    decision: Decision
    policy: Any


def record(ctx: Context, event: Event, decided: Decided | None = None) -> None:
    """Keep ``event`` (and the decision behind it) with the change under way: durably in the store's
    outbox, held by the change's intent (see :mod:`calibration_policy.outbox`), and for the plugins,
    which the governor tells once the change is durable."""
    from .outbox import new_record
    from .stores import open_outbox

    try:
        open_outbox(ctx.archive_dir.parent).add(new_record(event.to_dict(), ctx.intent, ctx.archive_dir))
    except ValueError as error:
        if event.change_id is None:
            raise  # nothing went live: the error's own "nothing was changed" is true
        # The values are live already; settling the intent announces the change once (recovery).
        raise live_but_not_recorded(
            event.target or "the live config",
            "recording its notification",
            error,
            "the next change (or `calibration-policy doctor --repair`) announces it.",
        ) from error
    ctx.outbox.append((event, decided))


def discard(ctx: Context) -> None:
    """The change under way raised: its events never happened, so none stays in the outbox."""
    if ctx.outbox:
        from .stores import open_outbox

        open_outbox(ctx.archive_dir.parent).discard(event.event_id for event, _ in ctx.outbox)


def fire(outbox: list[tuple[Event, Decided | None]]) -> None:
    """Tell every plugin: ``decision_made`` for each decision, ``change_made`` for each change."""
    hook = get_plugin_manager().hook
    for event, decided in outbox:
        if decided is not None:
            hook.decision_made(run=decided.run, decision=decided.decision, policy=decided.policy)
        hook.change_made(event=event)
