"""The outbox: every event kept durably with the change that made it, until it is delivered.

:func:`calibration_policy.events.record` writes one outbox record per event while the change is under
way: on the file store a JSON file in ``<data root>/outbox/`` (created atomically), held by the
change's write-ahead intent; on PostgreSQL a row, in the change's own transaction when one is open.
A record is deliverable once its intent is gone:

- the change finished: the events are what happened;
- the change raised: the governor discards its records before the intent is settled, so nobody
  hears of a change that was undone (as the in-process ``change_made`` never does);
- the process was killed: settling the intent (the next change of the target, ``doctor --repair``)
  keeps a record only if what it says is true after settling: an event naming a live change
  (``change_id``) is kept only when the archive has that change; the others were written after the
  decision they describe was stored, so they stand.

Either way, a live change that settling completes without an event (killed or raised after going
live, before its event) gets one then, its id derived from the change's, so it is announced once; so do
a suggestion the killed change saved (even one a newer suggestion expired since) and a decision of the
rules not to apply that it stored, each under an id derived from the suggestion's or the run's. Only the
killed change's own: a change another writer made meanwhile is announced by that writer.

Each record also carries its delivery log (per endpoint: attempts, response codes, the error
sentence, the next attempt), so a restart loses nothing; see :mod:`calibration_policy.delivery`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .archive import now_utc
from .durable import atomic_replace, create_exclusive, dumps, fsync_dir, read_json
from .errors import CalibrationPolicyError
from .naming import utc_stamp

FOLDER = "outbox"


class OutboxBusy(CalibrationPolicyError):
    """Another delivery worker is running on this store."""


def new_record(event: dict[str, Any], intent: Any, archive_dir: Any) -> dict[str, Any]:
    """The outbox record of one event: the payload, the intent that holds it (None: none), no delivery yet."""
    held = None
    if intent is not None:
        held = {
            "id": intent.intent_id,
            "target": intent.data.get("target"),
            "archive_dir": str(archive_dir) if archive_dir is not None else None,
        }
    return {"event": event, "intent": held, "written_at": now_utc().isoformat(), "deliveries": {}}


def add_missing(outbox: Any, events: list[dict[str, Any]]) -> int:
    """Add to ``outbox`` each event (a payload with a derived id) it does not hold yet, with no intent: what
    settling announces late. One look for all of them; returns how many were added."""
    present = outbox.known(event["event_id"] for event in events)
    added = 0
    for event in events:
        if event["event_id"] not in present:
            outbox.add(new_record(event, None, None))
            present.add(event["event_id"])
            added += 1
    return added


class FileOutbox:
    """``<data root>/outbox/``: one ``<time>_<event id>.json`` per event, its delivery log inside."""

    parallel = 8  # records are separate files: the worker may deliver several at once

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.folder = Path(root) / FOLDER
        self._paths: dict[str, Path] = {}  # event id → its file, learnt while listing (a pass saves each often)

    def describe(self) -> str:
        return f"the outbox folder {self.folder}"

    def _names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.folder) if n.endswith(".json") and not n.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def add(self, record: dict[str, Any]) -> None:
        """Write ``record`` whole or not at all (a killed writer leaves only a temp file, swept later)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{utc_stamp(now_utc())}_{record['event']['event_id']}.json"
        self._paths[record["event"]["event_id"]] = create_exclusive(self.folder, iter([name]), dumps(record))

    def _path(self, event_id: str) -> Path | None:
        known = self._paths.get(event_id)
        if known is not None and known.exists():
            return known
        return next((self.folder / n for n in self._names() if n.endswith(f"_{event_id}.json")), None)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first (one that vanished meanwhile is skipped)."""
        for name in self._names():
            try:
                data = read_json(self.folder / name)
            except (FileNotFoundError, ValueError):
                continue  # settled away meanwhile, or a foreign file: never delivered
            if isinstance(data, dict) and isinstance(data.get("event"), dict):
                self._paths[str(data["event"].get("event_id"))] = self.folder / name
                yield data

    def claim(self) -> Iterator[dict[str, Any]]:
        """The records for the delivery worker, which holds :meth:`worker` (so no other worker takes them)."""
        return self.records()

    def get(self, event_id: str) -> dict[str, Any] | None:
        path = self._path(event_id)
        try:
            return read_json(path) if path is not None else None
        except FileNotFoundError:
            return None

    def save(self, record: dict[str, Any]) -> None:
        """Store ``record``'s delivery log (the event itself never changes)."""
        path = self._path(record["event"]["event_id"])
        if path is not None:
            atomic_replace(path, dumps(record))

    def known(self, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` have a record here (one listing: the id is in the file's name)."""
        wanted = set(event_ids)
        return {i for n in self._names() if (i := n.removesuffix(".json").rpartition("_")[2]) in wanted}

    def discard(self, event_ids: Iterable[str]) -> None:
        wanted = {f"_{e}.json" for e in event_ids}
        gone = False
        for name in self._names():
            if any(name.endswith(w) for w in wanted):
                (self.folder / name).unlink(missing_ok=True)
                gone = True
        if gone:
            fsync_dir(self.folder)

    def held_by(self, intent_id: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if (r.get("intent") or {}).get("id") == intent_id]

    @contextlib.contextmanager
    def worker(self) -> Iterator[None]:
        """This store's one delivery worker: a second is refused at once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.folder / ".worker.lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise OutboxBusy(f"Another delivery worker is running on {self.describe()}; try again later.") from None
        try:
            yield
        finally:
            lock.release()


def deliveries_of(record: dict[str, Any], held: bool) -> list[dict[str, Any]]:
    """One row per endpoint tried; one ``held`` or ``waiting`` row while none has been."""
    deliveries = record.get("deliveries") or {}
    if not deliveries:
        return [_row(record["event"], None, {"state": "held" if held else "waiting"})]
    return [_row(record["event"], endpoint, delivery) for endpoint, delivery in sorted(deliveries.items())]


def _row(event: dict[str, Any], endpoint: str | None, delivery: dict[str, Any]) -> dict[str, Any]:
    last = (delivery.get("log") or [{}])[-1]
    return {
        "event_id": event["event_id"],
        "kind": event.get("kind"),
        "status": event.get("status"),
        "endpoint": endpoint,
        "state": delivery.get("state"),
        "attempts": delivery.get("attempts", 0),
        "code": last.get("code"),
        "error": last.get("error"),
        "next_at": delivery.get("next_at"),
    }
