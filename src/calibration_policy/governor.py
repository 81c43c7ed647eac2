"""The governor: the one place a change runs, so no entry point can step around a guarantee.

``Governor(ctx).execute(change)`` owns the sequence, for every kind of change (update, force,
approve, modify, reject, roll back, a domain's own such as the weights' suggest and auto mode,
the policy's set, roll back, propose, approve and reject):

1. **permission**: who acts may do this on this domain (:meth:`Context.check`, the policy in force
   narrowed by the domain's own settings), before anything is read for writing;
2. the change's own read-only checks (:meth:`Change.prepare`: four-eyes, the run exists …);
3. **settle** what a killed process left half done on the same target (a change without one, such as
   the policy's, settles its own kind: :meth:`Change.settle`);
4. **intent**: a write-ahead record of what will change, settled at once if the change raises;
5. the change itself (:meth:`Change.perform`), which takes the **lock** and the **version check** through
   :meth:`Step.locked`, and goes live only through :func:`~calibration_policy.apply.apply_values`,
   which **validates** the exact values that would go live with the domain's ``validate`` and archives
   what they replace;
6. the **watch after apply**'s verdicts on the target's newest changes brought up to date
   (:func:`calibration_policy.watch.settle`: a change just made starts watching, one it replaced is settled);
7. **events**: recorded with the change (:func:`calibration_policy.events.record`), fired once the
   intent is done (the change is durable).

CLI commands, panel and JSON routes, auto mode and the Python functions only build a change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from . import events, watch
from .context import Context
from .events import Decided, Event
from .plugins import frozen_registry
from .recovery import begin_intent, settle_interrupted, settling
from .stores import govern, locked
from .target import Target
from .versions import check_version


class Change:
    """One kind of change. A subclass says what it is (``kind``), what permission it needs (``action``),
    on which domain and target, and does its work in :meth:`perform`; it never checks permissions, settles
    or fires events itself. Plugins register their own kinds with the ``register_change_kinds`` hook."""

    kind: ClassVar[str] = ""
    action: ClassVar[str] = "propose"
    # A change kind may carry ``rules``: its domain's own policy (a settings file); it narrows who may, never widens.

    def identify(self, ctx: Context) -> None:
        """Refuse, before the permission check, an actor this kind cannot record (a reviewer needs a name)."""

    def domain(self, ctx: Context) -> str:
        """The domain whose permission is checked (read only; nothing is written yet)."""
        return ctx.rules_of_changes.domain

    def live(self) -> Target | None:
        """The live config this change may write (None: it writes no live config)."""
        return None

    def intent(self) -> dict[str, Any] | None:
        """What the write-ahead intent records (None: a single durable write needs none)."""
        return {}

    def prepare(self, ctx: Context, actor: str) -> None:
        """Read-only checks after the permission and before anything is written."""

    def settle(self, ctx: Context) -> list[str]:
        """For a change without a live config: complete what a killed change of its kind left half done
        (a change with one has its target's intents settled by the governor). One sentence each."""
        return []

    def perform(self, step: Step) -> Any:
        """The change itself; what it returns, :meth:`Governor.execute` returns."""
        raise NotImplementedError


@dataclass
class Step:
    """What a running change gets from the governor: the context, who acts, the live config, and the
    helpers that keep the sequence (lock + version check, intent notes, events)."""

    ctx: Context
    change: Change
    actor: str
    target: Target | None
    intent: Any = None
    settled: list[str] = field(default_factory=list)
    # The watch found the target's newest change settled in this step and nothing archived a newer one since:
    # its settle after the change has nothing to do (an update that applies or rolls back clears it).
    watch_settled: bool = False

    def note(self, **info: Any) -> None:
        """Add to the intent what became known on the way (the run's id once recorded …)."""
        if self.intent is not None:
            self.intent.note(**info)

    @contextlib.contextmanager
    def locked(self, expected_version: str | None = None) -> Iterator[Target]:
        """The target's lock, then the version check: a change based on a live config someone changed
        since is refused (:class:`StaleChangeError`) before anything goes live."""
        assert self.target is not None, f"a {self.change.kind} change has no live config to lock"
        with locked(self.target):
            check_version(self.target, expected_version, self.ctx.archive_dir)
            yield self.target

    def event(
        self, status: str, reason: str, *, decided: Decided | None = None, kind: str | None = None, **fields: Any
    ) -> Event:
        """Record what this change did (fired once it is durable); ``kind`` when a part of it has its own
        (the watch after apply, within an update)."""
        fields.setdefault("target", self.target.name if self.target is not None else None)
        fields.setdefault("domain", None)
        fields.setdefault("actor", self.actor)
        event = Event(kind=kind or self.change.kind, status=status, reason=reason, via=self.ctx.via, **fields)
        events.record(self.ctx, event, decided)
        return event


class Governor:
    """Runs changes in one context (see the module's doc for the sequence)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def execute(self, change: Change) -> Any:
        with frozen_registry():  # one change, one set of plugins: each kind is collected once, not per rule asked
            return self._execute(change)

    def _execute(self, change: Change) -> Any:
        ctx = replace(self.ctx, outbox=[])  # this change's own events
        change.identify(ctx)
        actor = ctx.check(change.action, change.domain(ctx), getattr(change, "rules", None))
        change.prepare(ctx, actor)
        target = change.live()
        settled: list[str] = []
        intent_info = change.intent()
        if target is not None:
            target = govern(target)
            target.values(target.load())  # a missing or corrupt live config fails here, before anything is written
            settled = settle_interrupted(
                target,
                archive_dir=ctx.archive_dir,
                history_dir=ctx.history_dir,
                suggestions_dir=ctx.suggestions_dir,
            )
        else:
            settled = change.settle(ctx)
        if target is None or intent_info is None:
            result = self._perform(Step(ctx, change, actor, target, None, settled))
        else:
            intent = begin_intent(ctx, target, change.kind, **intent_info)
            with settling(intent, target, ctx.archive_dir):
                result = self._perform(Step(replace(ctx, intent=intent), change, actor, target, intent, settled))
        events.fire(ctx.outbox)
        return result

    @staticmethod
    def _perform(step: Step) -> Any:
        try:
            result = step.change.perform(step)
            if step.target is not None:
                watch.settle(step)  # the verdicts recorded on the target's newest changes, brought up to date
            return result
        except BaseException:
            events.discard(step.ctx)  # before the intent is settled and let go: no record of an undone change
            raise
