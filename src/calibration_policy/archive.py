"""The archive: every change of a live config, with what it replaced, who caused it and why.

Each change is written as ``prepared`` before the config is touched and marked ``committed``
after, so a crash in between is repaired on the next change (:meth:`Archive.reconcile`):
the archive always agrees with the config. From the committed entries follow the periods
during which each value set was live, hence "what was live on date X".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from . import foreign
from .durable import atomic_replace, create_exclusive, dumps_model
from .errors import HistoryError
from .moments import aware_utc
from .naming import (
    check_record_id,
    is_archive_file_name,
    numbered,
    sequence_key,
    utc_stamp,
)
from .paths import data_path
from .redact import get_logger
from .target import Snapshot, Target

log = get_logger(__name__)

ARCHIVE_ENV = "CALIBRATION_ARCHIVE_DIR"

ChangeKind = Literal["update", "force", "approve", "modify", "rollback", "auto"]


def resolve_archive_dir(archive_dir: str | os.PathLike[str] | None = None) -> Path:
    """``archive_dir``, else ``$CALIBRATION_ARCHIVE_DIR``, else ``<data root>/config_archive``."""
    return data_path(archive_dir, ARCHIVE_ENV, "config_archive")


class ArchiveEntry(BaseModel):
    """One change of a live config."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    change_id: str = ""
    target: str
    domain: str = "vol_surface"
    underlying: str | None = None
    kind: ChangeKind
    status: Literal["prepared", "committed", "abandoned"] = "prepared"
    at: datetime
    actor: str = "policy"
    by: str | None = None  # the person (or "policy", "auto mode") who made the change; ``actor`` keeps its old meaning
    via: str | None = None  # where the change came from: panel, api, cli, auto, python
    reason: str
    run_id: str | None = None
    suggestion_id: str | None = None
    calibration_timestamp: datetime | None = None
    previous_values: dict[str, float]
    previous_snapshot: dict[str, Any]
    previous_active_from: datetime | None = None
    new_values: dict[str, float]
    new_snapshot: dict[str, Any]

    @field_validator("at", "calibration_timestamp", "previous_active_from")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return aware_utc(value)  # a naive or out-of-range time in a hand-edited entry: skipped, never a crash

    @property
    def how(self) -> str:
        """How its values went live, in words: "applied automatically by the policy", "approved by ana"."""
        return change_words(self.kind, self.by or self.actor)

    @property
    def live_from(self) -> datetime:
        """When its values went live in the data's own time: the calibration run it applied (a replayed or
        backfilled day goes live long after it was written), else the moment the change was made."""
        return self.calibration_timestamp or self.at

    @property
    def made_apart(self) -> bool:
        """Whether the change was made more than a day from the run it applied (a replay, a backfill, a late
        approval): then its two dates are both worth saying."""
        return abs((self.at - self.live_from).total_seconds()) > 86_400


def change_words(kind: str, who: str) -> str:
    """A change's kind and author as words: ("approve", "ana") → "approved by ana"."""
    return {
        "update": "applied automatically by the policy",
        "auto": "applied by auto mode",
        "force": f"forced by {who}",
        "approve": f"approved by {who}",
        "modify": f"approved with changes by {who}",
        "rollback": f"rolled back by {who}",
    }.get(kind, f"{kind.replace('_', ' ')} by {who}")


@dataclass(frozen=True)
class Period:
    """A value set and when it was live (``until`` is None while it still is)."""

    values: dict[str, float]
    snapshot: dict[str, Any]
    since: datetime | None
    until: datetime | None
    change: ArchiveEntry | None  # the change that made it live; None for the original config


class Archive:
    """The archive of one target, in ``<archive dir>/<target name>/``."""

    directory: Path | None  # where the files are; None for an archive kept elsewhere (a database)

    def __init__(self, archive_dir: str | os.PathLike[str] | None, target_name: str) -> None:
        self.directory = self._folder = resolve_archive_dir(archive_dir) / check_record_id(target_name, "target name")

    def _paths(self) -> list[Path]:
        """Entry files oldest first: by stamp, then numerically by the ``_<n>`` a shared stamp gets.

        A damaged folder (a file in its place, unreadable) raises a :class:`DataFolderError`
        naming it; anything in the folder that is not named like an entry is skipped with one
        warning.
        """
        paths = []
        for entry in foreign.list_folder(self._folder, "archive folder"):
            name = entry.name
            if name.startswith("."):
                continue
            if not is_archive_file_name(name):
                if name.endswith(".json"):
                    foreign.warn_once(
                        log, "Skipping %s: %s.", entry.path, "its name is not an archive entry name (<stamp>.json)"
                    )
                continue
            paths.append(Path(entry.path))
        return sorted(paths, key=lambda p: sequence_key(p.stem, p.stem[:23]))

    def _read(self, path: Path) -> ArchiveEntry | None:
        try:
            return ArchiveEntry.model_validate({**foreign.read_record(path), "change_id": path.stem})
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            foreign.warn_once(log, "Skipping archive entry %s: %s", path, str(error).splitlines()[0])
            return None

    def entries(self, include_all: bool = False) -> list[ArchiveEntry]:
        """Committed changes, oldest first (all of them with ``include_all``)."""
        found = [entry for entry in map(self._read, self._paths()) if entry is not None]
        return found if include_all else [entry for entry in found if entry.status == "committed"]

    def _tail(self) -> tuple[list[ArchiveEntry], ArchiveEntry | None]:
        """Entries still ``prepared`` and the newest committed one, reading from the newest back.

        Every change settles earlier prepared entries before writing its own, so nothing older
        than the newest committed entry can be pending: a change never reads the whole archive.
        """
        pending: list[ArchiveEntry] = []
        for path in reversed(self._paths()):
            entry = self._read(path)
            if entry is None or entry.status == "abandoned":
                continue
            if entry.status == "committed":
                return pending, entry
            pending.append(entry)
        return pending, None

    def prepare(self, entry: ArchiveEntry) -> ArchiveEntry:
        return self._create(entry, numbered(utc_stamp(entry.at)))

    def put(self, entry: ArchiveEntry) -> bool:
        """Store an entry under its own ``change_id`` (a migration from another store); False if it is here already."""
        if (self._folder / f"{check_record_id(entry.change_id, 'change id')}.json").exists():
            return False
        self._create(entry, iter([f"{entry.change_id}.json"]))
        return True

    def _create(self, entry: ArchiveEntry, names: Iterator[str]) -> ArchiveEntry:
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as error:
            raise foreign.folder_error(self._folder, "archive folder", error) from None
        except OSError as error:
            raise HistoryError(f"Cannot create the archive folder {self._folder}: {error.strerror}.") from None
        path = create_exclusive(self._folder, names, dumps_model(entry, exclude={"change_id"}))
        return entry.model_copy(update={"change_id": path.stem})

    def mark(self, entry: ArchiveEntry, status: str, **fields: Any) -> ArchiveEntry:
        """Rewrite ``entry`` with ``status`` (and ``fields``, such as the watch's verdict on it)."""
        done = entry.model_copy(update={"status": status, **fields})
        atomic_replace(self._folder / f"{entry.change_id}.json", dumps_model(done, exclude={"change_id"}))
        return done

    def reconcile(self, target: Target, current: Snapshot) -> list[ArchiveEntry]:
        """Settle changes a crash left ``prepared``: committed if the config shows them, else abandoned."""
        pending, _ = self._tail()
        return [
            self.mark(entry, "committed" if current == entry.new_snapshot else "abandoned")
            for entry in reversed(pending)
        ]

    def periods(self) -> list[Period]:
        """Every value set that was live, oldest first; the last one is live now."""
        changes = self.entries()
        if not changes:
            return []
        periods = [
            Period(
                changes[0].previous_values,
                changes[0].previous_snapshot,
                changes[0].previous_active_from,
                changes[0].at,
                None,
            )
        ]
        for i, change in enumerate(changes):
            until = changes[i + 1].at if i + 1 < len(changes) else None
            periods.append(Period(change.new_values, change.new_snapshot, change.at, until, change))
        return periods

    def as_of(self, when: datetime) -> Period | None:
        """The value set that was live at ``when``; None if the archive does not reach back that far."""
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise HistoryError("The date to look up must be a timezone-aware datetime (UTC).")
        for period in reversed(self.periods()):
            if period.since is None or period.since <= when:
                return period
        return None

    def last_change(self) -> ArchiveEntry | None:
        return self._tail()[1]

    def recent(self, count: int) -> list[ArchiveEntry]:
        """The newest ``count`` committed changes, oldest first, reading from the newest back."""
        found: list[ArchiveEntry] = []
        for path in reversed(self._paths()):
            if len(found) >= count:
                break
            entry = self._read(path)
            if entry is not None and entry.status == "committed":
                found.append(entry)
        return found[::-1]

    def __iter__(self) -> Iterator[ArchiveEntry]:
        return iter(self.entries())


def now_utc() -> datetime:
    return datetime.now(UTC)
