"""The archive of a live config in PostgreSQL: one row per change, in the order they were made.

Only the storage differs from the file store's :class:`Archive`; periods, "as of" and the
settling of a change left ``prepared`` are the same code.
"""

from __future__ import annotations

from typing import Any

from calibration_policy.archive import Archive, ArchiveEntry
from calibration_policy.durable import dumps_model
from calibration_policy.errors import HistoryError
from calibration_policy.naming import check_record_id, numbered, utc_stamp

from .database import Database, insert_first_free

_INSERT = (
    "INSERT INTO config_archive (target, change_id, status, at, body) VALUES (%s, %s, %s, %s, %s::jsonb) "
    "ON CONFLICT DO NOTHING"
)


def _body(entry: ArchiveEntry) -> str:
    return dumps_model(entry, exclude={"change_id"}).decode()


def _entry(change_id: str, body: dict) -> ArchiveEntry | None:
    try:
        return ArchiveEntry.model_validate({**body, "change_id": change_id})
    except ValueError:
        return None


class TargetArchive(Archive):
    """The ``config_archive`` rows of one target."""

    def __init__(self, db: Database, target_name: str) -> None:
        self.db = db
        self.target = check_record_id(target_name, "target name")
        self.directory = None

    def entries(self, include_all: bool = False) -> list[ArchiveEntry]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT change_id, body FROM config_archive WHERE target = %s "
                + ("" if include_all else "AND status = 'committed' ")
                + "ORDER BY seq",
                (self.target,),
            ).fetchall()
        return [entry for entry in (_entry(*row) for row in rows) if entry is not None]

    def recent(self, count: int) -> list[ArchiveEntry]:
        """The newest ``count`` committed changes, oldest first (one index probe)."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT change_id, body FROM config_archive WHERE target = %s AND status = 'committed' "
                "ORDER BY seq DESC LIMIT %s",
                (self.target, count),
            ).fetchall()
        return [entry for entry in (_entry(*row) for row in reversed(rows)) if entry is not None]

    def _tail(self) -> tuple[list[ArchiveEntry], ArchiveEntry | None]:
        """Entries still ``prepared`` after the newest committed one, and that one (two index probes)."""
        with self.db.connection() as conn:
            last = conn.execute(
                "SELECT change_id, body, seq FROM config_archive WHERE target = %s AND status = 'committed' "
                "ORDER BY seq DESC LIMIT 1",
                (self.target,),
            ).fetchone()
            pending = conn.execute(
                "SELECT change_id, body FROM config_archive WHERE target = %s AND status = 'prepared' "
                "AND seq > %s ORDER BY seq DESC",
                (self.target, last[2] if last else 0),
            ).fetchall()
        found = [entry for entry in (_entry(*row) for row in pending) if entry is not None]
        return found, (_entry(last[0], last[1]) if last else None)

    def prepare(self, entry: ArchiveEntry) -> ArchiveEntry:
        with self.db.connection("archiving a change") as conn:
            name = insert_first_free(
                conn,
                numbered(utc_stamp(entry.at), suffix=""),
                _INSERT,
                lambda name: (self.target, name, entry.status, entry.at, _body(entry)),
            )
        if name is None:
            raise HistoryError(
                f"Too many changes of {self.target} share the moment {utc_stamp(entry.at)}; nothing was written."
            )
        return entry.model_copy(update={"change_id": name})

    def put(self, entry: ArchiveEntry) -> bool:
        with self.db.connection("copying an archived change") as conn:
            return (
                conn.execute(
                    _INSERT,
                    (self.target, check_record_id(entry.change_id, "change id"), entry.status, entry.at, _body(entry)),
                ).rowcount
                == 1
            )

    def mark(self, entry: ArchiveEntry, status: str, **fields: Any) -> ArchiveEntry:
        done = entry.model_copy(update={"status": status, **fields})
        with self.db.connection("archiving a change") as conn:
            conn.execute(
                "UPDATE config_archive SET status = %s, body = %s::jsonb WHERE target = %s AND change_id = %s",
                (status, _body(done), self.target, entry.change_id),
            )
        return done
