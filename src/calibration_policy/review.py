"""The review workflow: a suggestion waits for a person, who approves, modifies or rejects it.

Works for any domain. A suggestion is processed exactly once: the decision is taken under a
per-suggestion lock and re-checked inside it, so a second (even simultaneous) approve or
reject gets "already approved at … by …". This module is the suggestions store; the changes
themselves (approve, modify, reject, roll back) are functions of :mod:`calibration_policy.pipeline`,
with one lock order and a write-ahead intent, like every other change.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, field_validator

from . import foreign
from .archive import now_utc
from .durable import atomic_replace, create_exclusive, dumps_model
from .errors import ReviewError, SettledError, live_but_not_recorded
from .moments import aware_utc
from .naming import (
    check_record_id,
    is_suggestion_file_name,
    numbered,
    sequence_key,
    utc_stamp,
)
from .paths import data_path
from .plugins import get_domain
from .redact import get_logger

log = get_logger(__name__)

SUGGESTIONS_ENV = "CALIBRATION_SUGGESTIONS_DIR"

WHAT = "suggestions folder"

Status = Literal["pending", "approved", "rejected", "modified", "expired"]


def resolve_suggestions_dir(suggestions_dir: str | os.PathLike[str] | None = None) -> Path:
    """``suggestions_dir``, else ``$CALIBRATION_SUGGESTIONS_DIR``, else ``<data root>/suggestions``."""
    return data_path(suggestions_dir, SUGGESTIONS_ENV, "suggestions")


class Suggestion(BaseModel):
    """Values proposed for a target, waiting for (or past) a person's review."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    suggestion_id: str = ""
    domain: str
    target: str
    underlying: str | None = None
    created_at: datetime
    status: Status = "pending"
    values: dict[str, float]
    current_values: dict[str, float]
    reason: str
    run_id: str | None = None
    details: dict[str, Any] = {}
    reviewed_at: datetime | None = None
    reviewer: str | None = None
    notes: str | None = None
    applied_values: dict[str, float] | None = None
    applied_at: datetime | None = None
    change_id: str | None = None
    expired_reason: str | None = None
    # who and from where (panel, api, cli, auto, python); the four-eyes rule in force when proposed
    proposed_by: str | None = None
    proposed_via: str | None = None
    modified_by: str | None = None
    modified_at: datetime | None = None
    reviewed_via: str | None = None
    approvals: list[dict[str, Any]] = []
    required_approvals: int = 1
    distinct_approver: bool = False
    forced: bool = False

    @field_validator("reason")
    @classmethod
    def _suggested(cls, reason: str) -> str:
        # What was suggested, never "Applied": whether it went live is its status (older records said "Applied").
        return "Suggested: " + reason.removeprefix("Applied: ") if reason.startswith("Applied: ") else reason

    @field_validator("created_at", "reviewed_at", "applied_at", "modified_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return aware_utc(value)  # a naive time would break every comparison of suggestions

    def order_key(self) -> tuple[datetime, str, int]:
        """Oldest first: by creation time, then by the ``_<n>`` a shared stamp gets, as a number
        (as text ``…_10`` < ``…_9``, and with a frozen clock the stale one would look newest)."""
        stamp = self.suggestion_id[:23]
        base, seq = sequence_key(self.suggestion_id, f"{stamp}_{self.target}")
        return self.created_at, base, seq

    def done_text(self) -> str:
        """ "approved at 2025-12-10 12:34 UTC by ana" — for the "already processed" error."""
        when = (self.reviewed_at or self.created_at).strftime("%Y-%m-%d %H:%M UTC")
        who = f" by {self.reviewer}" if self.reviewer else ""
        return f"{self.status} at {when}{who}"


class ReviewStore:
    """Suggestions of all domains, one JSON file each, in one folder."""

    directory: Path | None  # where the files are; None for a store that keeps them elsewhere (a database)

    def __init__(self, suggestions_dir: str | os.PathLike[str] | None = None) -> None:
        self.directory = self._folder = resolve_suggestions_dir(suggestions_dir)

    def _path(self, suggestion_id: str) -> Path:
        return self._folder / f"{check_record_id(suggestion_id, 'suggestion id')}.json"

    def _mkdir(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as error:
            raise foreign.folder_error(folder, WHAT, error) from None
        except OSError as error:
            raise ReviewError(f"Cannot create the suggestions folder {folder}: {error.strerror or error}.") from None

    def _lock(self, suggestion_id: str) -> FileLock:
        locks = self._folder / ".locks"
        self._mkdir(locks)
        return FileLock(str(locks / f"{suggestion_id}.lock"), timeout=60)

    def get(self, suggestion_id: str) -> Suggestion:
        path = self._path(suggestion_id)
        try:
            data = foreign.read_record(path)
        except (FileNotFoundError, NotADirectoryError):
            foreign.check_folder(self._folder, WHAT)  # a damaged folder is named, never "no such suggestion"
            raise ReviewError(f"There is no suggestion {suggestion_id}.") from None
        except ValueError as error:
            raise ReviewError(f"Suggestion {suggestion_id} is unreadable: its file {error}.") from None
        try:
            return Suggestion.model_validate({**data, "suggestion_id": path.stem})
        except ValueError as error:
            raise ReviewError(f"Suggestion {suggestion_id} is unreadable ({str(error).splitlines()[0]}).") from None

    def all(self, target: str | None = None, status: Status | None = None) -> list[Suggestion]:
        """Suggestions oldest first, optionally only one target's or one status.

        A file that is not a readable suggestion is skipped with one warning; a damaged folder
        (a file in its place, unreadable) raises a :class:`DataFolderError` naming it, since
        "no suggestions" would hide the pending ones.
        """
        found = []
        for entry in foreign.list_folder(self._folder, WHAT):
            name = entry.name
            if name.startswith(".") or not name.endswith(".json"):
                continue
            path = Path(entry.path)
            try:
                if not is_suggestion_file_name(name):
                    raise ValueError("its name is not a suggestion name (<stamp>_<target>.json)")
                item = Suggestion.model_validate({**foreign.read_record(path), "suggestion_id": path.stem})
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as error:
                foreign.warn_once(log, "Skipping suggestion %s: %s", path, str(error).splitlines()[0])
                continue
            if (target is None or item.target == target) and (status is None or item.status == status):
                found.append(item)
        return sorted(found, key=Suggestion.order_key)

    def _save(self, item: Suggestion) -> None:
        atomic_replace(self._path(item.suggestion_id), dumps_model(item, exclude={"suggestion_id"}))

    def propose(self, item: Suggestion) -> Suggestion:
        """Store a new pending suggestion; older pending ones for the same target expire."""
        return self.propose_superseding(item)[0]

    def propose_superseding(self, item: Suggestion) -> tuple[Suggestion, list[Suggestion]]:
        """:meth:`propose`, also returning the suggestions it superseded: their runs must say so (the caller
        that keeps the runs decides them; see ``pipeline.decide_runs_of``)."""
        get_domain(item.domain).validate(item.values)
        item = self._create(item)
        stamp = (item.details or {}).get("calibration_timestamp")  # the newer run's time, for the superseded run
        try:
            when = aware_utc(datetime.fromisoformat(stamp)) if isinstance(stamp, str) else None
        except ValueError:
            when = None
        newer = (
            f"the run of {when:%Y-%m-%d %H:%M} UTC (suggestion {item.suggestion_id})"
            if when is not None
            else f"a newer suggestion ({item.suggestion_id})"
        )
        expired = self.expire_pending(item.target, f"superseded by {newer} before anyone reviewed it", older_than=item)
        return item, expired

    def _create(self, item: Suggestion) -> Suggestion:
        """Store a new suggestion under the first free ``<stamp>_<target>[_n]``."""
        return self._write_new(item, numbered(f"{utc_stamp(item.created_at)}_{item.target}"))

    def _write_new(self, item: Suggestion, names: Iterator[str]) -> Suggestion:
        """Store a suggestion under the first free of ``names``, never over another."""
        self._mkdir(self._folder)
        path = create_exclusive(self._folder, names, dumps_model(item, exclude={"suggestion_id"}))
        return item.model_copy(update={"suggestion_id": path.stem})

    def put(self, item: Suggestion) -> bool:
        """Store a suggestion under its own id (a migration from another store); False if it is here already."""
        if self._path(item.suggestion_id).exists():
            return False
        self._write_new(item, iter([f"{item.suggestion_id}.json"]))
        return True

    def expire_pending(
        self, target: str, reason: str, older_than: Suggestion | None = None, only: str | None = None
    ) -> list[Suggestion]:
        """Expire the target's pending suggestions (only those older than ``older_than``, or only the one
        ``only`` names, if given).

        Only older ones: two suggestions proposed at the same moment must not expire each other.
        """
        expired = []
        for pending in self.all(target=target, status="pending"):
            if older_than is not None and pending.order_key() >= older_than.order_key():
                continue
            if only is not None and pending.suggestion_id != only:
                continue
            done = self._transition(
                pending.suggestion_id,
                lambda s: s.model_copy(
                    update={"status": "expired", "reviewed_at": now_utc(), "expired_reason": reason}
                ),
                allow_done=True,
            )
            if done.status == "expired":
                expired.append(done)
        return expired

    def _transition(self, suggestion_id: str, change, allow_done: bool = False) -> Suggestion:
        with self._locked(suggestion_id):
            item = self.get(suggestion_id)
            if item.status != "pending":
                if allow_done:
                    return item
                raise SettledError(f"Suggestion {suggestion_id} was already {item.done_text()}; nothing was changed.")
            updated = change(item)
            try:
                self._save(updated)
            except ValueError as error:
                if updated.change_id is None or updated.change_id == item.change_id:
                    raise
                raise live_but_not_recorded(
                    updated.target,
                    f"saving suggestion {suggestion_id} as {updated.status}",
                    error,
                    f"the archive has the change ({updated.change_id}).",
                ) from error
            return updated

    @contextlib.contextmanager
    def holding(self, suggestion_id: str) -> Iterator[Suggestion]:
        """Hold the suggestion's lock; yields it as read under the lock (any status)."""
        with self._locked(suggestion_id):
            yield self.get(suggestion_id)

    @contextlib.contextmanager
    def _locked(self, suggestion_id: str) -> Iterator[None]:
        """The suggestion's exclusive lock (one reviewer at a time)."""
        self.get(suggestion_id)  # an unknown id fails here, before a lock file is created for it
        try:
            with self._lock(check_record_id(suggestion_id, "suggestion id")):
                yield
        except Timeout:
            raise ReviewError(
                f"Suggestion {suggestion_id} is being reviewed by someone else right now; try again."
            ) from None

    def save(self, item: Suggestion) -> None:
        """Write a suggestion back (call while :meth:`holding` it)."""
        self._save(item)


def _who(reviewer: object) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip() or len(reviewer) > 100 or "\x00" in reviewer:
        raise ReviewError("Say who is reviewing: a name of 1 to 100 characters.")
    return reviewer.strip()


def _notes(notes: object) -> str | None:
    if notes is None or notes == "":
        return None
    if not isinstance(notes, str) or len(notes) > 2000 or "\x00" in notes:
        raise ReviewError("Notes must be text of at most 2,000 characters.")
    return notes
