"""The one path by which values go live: lock, reconcile, archive, write, commit.

Updates, force-applies, approvals and rollbacks all come through :func:`apply_values`, so
each of them is locked against the others, archived, and crash-safe in the same way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from .archive import ArchiveEntry, ChangeKind, now_utc
from .errors import live_but_not_recorded
from .plugins import get_domain
from .stores import govern, locked, open_archive
from .target import Snapshot, Target


def _monotonic_time(last: ArchiveEntry | None) -> datetime:
    """Now, but never before the last change: a clock stepping back must not reorder the archive."""
    moment = now_utc()
    if last is not None and moment <= last.at:
        moment = last.at + timedelta(microseconds=1)
    return moment


def apply_values(
    target: Target,
    values: Mapping[str, float] | None,
    *,
    archive_dir: str | os.PathLike[str] | None,
    kind: ChangeKind,
    reason: str,
    actor: str = "policy",
    domain: str = "vol_surface",
    underlying: str | None = None,
    run_id: str | None = None,
    suggestion_id: str | None = None,
    calibration_timestamp: datetime | None = None,
    snapshot: Snapshot | None = None,
    already_locked: bool = False,
    after_commit: Callable[[ArchiveEntry], Any] | None = None,
    via: str | None = None,
    **audit: Any,
) -> ArchiveEntry:
    """Make ``values`` (or a whole ``snapshot``, for a rollback) live and archive what they replace.

    The domain's ``validate`` checks the complete set that would go live first: a value the domain
    refuses raises its ``ValueError`` subclass, and nothing is written."""
    target = govern(target)
    with contextlib.nullcontext() if already_locked else locked(target):
        archive = open_archive(archive_dir, target.name)
        current = target.load()
        archive.reconcile(target, current)
        last = archive.last_change()
        new_snapshot = snapshot if snapshot is not None else target.with_values(current, dict(values or {}))
        # The domain's own checks, on exactly what would go live (the merged set), before anything is written.
        get_domain(domain).validate(target.values(new_snapshot))
        entry = archive.prepare(
            ArchiveEntry(
                target=target.name,
                domain=domain,
                underlying=underlying,
                kind=kind,
                at=_monotonic_time(last),
                actor=actor,
                via=via,
                reason=reason,
                run_id=run_id,
                suggestion_id=suggestion_id,
                calibration_timestamp=calibration_timestamp,
                previous_values=target.values(current),
                previous_snapshot=current,
                previous_active_from=last.at if last else None,
                new_values=target.values(new_snapshot),
                new_snapshot=new_snapshot,
                **audit,
            )
        )
        target.save(new_snapshot)
        try:
            entry = archive.mark(entry, "committed")
        except ValueError as error:
            raise live_but_not_recorded(
                target.name,
                "marking the change committed in the archive",
                error,
                "the next change completes the archive.",
            ) from error
        if after_commit is not None:
            try:
                after_commit(entry)
            except ValueError as error:
                raise live_but_not_recorded(
                    target.name, "recording the change", error, f"the archive has it ({entry.change_id})."
                ) from error
        return entry
