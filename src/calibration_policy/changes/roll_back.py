"""Roll back: an archived value set goes live again, itself a recorded, archived change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..apply import apply_values
from ..archive import ArchiveEntry
from ..errors import ReviewError
from ..governor import Change, Step
from ..naming import check_record_id
from ..permissions import actor_name
from ..plugins import get_domain
from ..review import _notes, _who
from ..stores import open_archive
from ..target import Target


@dataclass
class RollBack(Change):
    """``to`` names the set by the change that made it live (its ``change_id``), or ``original`` for the
    config before the first recorded change. ``on`` defaults to the domain of the target's archived changes."""

    target: Target
    to: str
    on: str | None = None
    notes: str | None = None
    expected_version: str | None = None
    rules: Any = None
    checked: str = field(default="vol_surface", init=False)  # the domain whose permission was checked

    kind = "roll_back"
    action = "roll_back"

    def identify(self, ctx) -> None:
        _who(actor_name(ctx.actor))

    def domain(self, ctx) -> str:
        if self.on is not None:
            return self.on
        last = open_archive(ctx.archive_dir, self.target.name).last_change()  # read only
        self.checked = last.domain if last is not None else "vol_surface"
        return self.checked

    def live(self) -> Target:
        return self.target

    def prepare(self, ctx, actor) -> None:
        self.notes = _notes(self.notes)
        if self.to != "original":
            check_record_id(self.to, "change id")  # a hostile id is refused before an intent records it

    def intent(self) -> dict[str, Any]:
        return {"expected_version": self.expected_version, "to": self.to}

    def perform(self, step: Step) -> ArchiveEntry:
        ctx, target, actor = step.ctx, step.target, step.actor
        assert target is not None
        checked = self.on or self.checked
        with step.locked(self.expected_version):
            periods = open_archive(ctx.archive_dir, target.name).periods()
            wanted = None if self.to == "original" else check_record_id(self.to, "change id")
            domain = self.on
            if domain is None:
                domain = periods[-1].change.domain if periods and periods[-1].change else "vol_surface"
                if domain != checked:  # the archive changed between the check and the lock: check its domain too
                    actor = _who(ctx.check(self.action, domain, self.rules))
            what = get_domain(domain).parameter_label_plural
            for period in periods:
                if (period.change.change_id if period.change else None) == wanted:
                    label = (
                        f"the {what} of {period.since:%Y-%m-%d %H:%M UTC}" if period.since else f"the original {what}"
                    )
                    entry = apply_values(
                        target,
                        None,
                        snapshot=period.snapshot,
                        archive_dir=ctx.archive_dir,
                        kind="rollback",
                        already_locked=True,
                        reason=f"Applied: rolled back to {label} by {actor}"
                        + (f" ({self.notes})" if self.notes else ""),
                        actor=actor,
                        domain=domain,
                        via=ctx.via,
                        by=actor,
                        underlying=period.change.underlying if period.change else None,
                    )
                    break
            else:
                known = (
                    ", ".join(["original"] + [p.change.change_id for p in periods if p.change])
                    if periods
                    else "(none yet)"
                )
                raise ReviewError(f"There is no archived value set {self.to!r:.60} for {target.name}; known: {known}.")
        step.event(
            "rolled_back",
            entry.reason,
            actor=actor,
            domain=domain,
            underlying=entry.underlying,
            before=entry.previous_values,
            after=entry.new_values,
            change_id=entry.change_id,
        )
        return entry
