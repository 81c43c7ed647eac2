"""What is live now, since when, and what the latest calibration said: for the CLI and the panel."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import watch
from .archive import ArchiveEntry
from .models import CalibrationRun
from .naming import check_underlying
from .plugins import get_domain
from .policy import CalibrationUpdatePolicy
from .stores import open_archive, open_store
from .target import Target
from .watch import Verdict


@dataclass(frozen=True)
class ScopeValue:
    scope: str
    label: str
    value: float
    last_updated: (
        datetime | None
    )  # when the change that set it was written; None: unchanged since before the archive began
    live_since: datetime | None = None  # when that value went live in the data's own time (ArchiveEntry.live_from)

    @property
    def live_since_text(self) -> str:
        return self.live_since.strftime("%Y-%m-%d %H:%M UTC") if self.live_since else "before records began"


@dataclass(frozen=True)
class StatusReport:
    underlying: str
    title: str
    current: list[ScopeValue]
    latest: CalibrationRun | None
    last_change: ArchiveEntry | None
    explanation: str
    watch: Verdict | None = None  # the watch after apply of the newest watched change

    def to_dict(self) -> dict[str, Any]:
        return {
            "underlying": self.underlying,
            "current": [
                {
                    "scope": s.scope,
                    "label": s.label,
                    "value": s.value,
                    "last_updated": s.last_updated.isoformat() if s.last_updated else None,
                    "live_since": s.live_since.isoformat() if s.live_since else None,
                }
                for s in self.current
            ],
            "latest_run": self.latest.model_dump(mode="json") if self.latest else None,
            "last_change": self.last_change.model_dump(mode="json", exclude={"previous_snapshot", "new_snapshot"})
            if self.last_change
            else None,
            "policy": self.explanation,
            "watch": self.watch.to_dict() if self.watch else None,
        }


def change_that_set(changes: list[ArchiveEntry], scope: str, value: float) -> ArchiveEntry | None:
    """The newest change that moved ``scope`` to ``value``; None when it has had it since before records began."""
    for change in reversed(changes):
        before = change.previous_values.get(scope)
        if change.new_values.get(scope) == value and before != value:
            return change
    return None


def status_report(
    underlying: str,
    *,
    policy: CalibrationUpdatePolicy,
    target: Target,
    history_dir: str | os.PathLike[str] | None = None,
    archive_dir: str | os.PathLike[str] | None = None,
) -> StatusReport:
    underlying = check_underlying(underlying)
    domain = get_domain(policy.domain)
    latest = open_store(history_dir).latest(underlying, limit=1)
    latest_run = latest[0] if latest else None
    details = latest_run.model_dump(include={"bands"}) if latest_run else None
    changes = open_archive(archive_dir, target.name).entries()
    current = target.values(target.load())
    scopes = sorted(current, key=lambda s: (s != "global", s))
    rows = []
    for scope in scopes:
        change = change_that_set(changes, scope, current[scope])
        rows.append(
            ScopeValue(
                scope,
                domain.scope_label(scope, details),
                current[scope],
                change.at if change else None,
                change.live_from if change else None,
            )
        )
    return StatusReport(
        underlying,
        domain.title,
        rows,
        latest_run,
        changes[-1] if changes else None,
        policy.explain(),
        watch.latest(archive_dir, history_dir, target.name, policy),
    )
