"""Write-ahead intents in PostgreSQL: the file store's protocol (:mod:`calibration_policy.intents`)
with a row per intent and a session advisory lock instead of a lock file.

The writer holds its intent's advisory lock on a connection of its own; when the process dies or
its connection drops, the server frees the lock, so the next change sees the intent as abandoned
and settles it. Written inside a change's transaction, an intent commits with the change.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

from calibration_policy.archive import now_utc
from calibration_policy.naming import check_record_id, utc_stamp

from .database import INTENT_LOCK, Database


class Intent:
    """One recorded intent, locked by its writer (or by the process settling it)."""

    def __init__(self, db: Database, intent_id: str, data: dict[str, Any], conn: Any) -> None:
        self.db, self.intent_id, self.data, self._conn = db, intent_id, data, conn

    def note(self, **info: Any) -> None:
        self.data.update(info)
        with self.db.connection("recording a change's progress") as conn:
            conn.execute(
                "UPDATE change_intents SET data = %s::jsonb WHERE intent_id = %s",
                (json.dumps(self.data, default=str), self.intent_id),
            )

    def done(self) -> None:
        try:
            with self.db.connection("finishing a change") as conn:
                conn.execute("DELETE FROM change_intents WHERE intent_id = %s", (self.intent_id,))
        finally:
            self.release()

    def release(self, forget: bool = False) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (INTENT_LOCK, self.intent_id))
        except Exception:
            pass
        self.db.pool.putconn(conn)


def _try_lock(db: Database, intent_id: str) -> Any:
    """A pool connection holding the intent's lock, or None when its writer still holds it."""
    conn = db.pool.getconn()
    if conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (INTENT_LOCK, intent_id)).fetchone()[0]:
        return conn
    db.pool.putconn(conn)
    return None


class Intents:
    """The module-like object the pipeline asks (begin, pending_names, abandoned, in_progress)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def begin(self, archive_dir: Any, target_name: str, kind: str, **info: Any) -> Intent:
        target = check_record_id(target_name, "target name")
        intent_id = f"{utc_stamp(now_utc())}_{secrets.token_hex(4)}"
        conn = _try_lock(self.db, intent_id)
        data = {"kind": kind, "target": target, "started_at": now_utc().isoformat(), "pid": os.getpid(), **info}
        intent = Intent(self.db, intent_id, data, conn)
        try:
            with self.db.connection("recording a change before it starts") as db_conn:
                db_conn.execute(
                    "INSERT INTO change_intents (intent_id, target, data) VALUES (%s, %s, %s::jsonb)",
                    (intent_id, target, json.dumps(data, default=str)),
                )
        except BaseException:
            intent.release()
            raise
        return intent

    def pending_names(self, archive_dir: Any, target_name: str) -> list[str]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT intent_id FROM change_intents WHERE target = %s ORDER BY intent_id",
                (check_record_id(target_name, "target name"),),
            ).fetchall()
        return [f"{row[0]}.json" for row in rows]

    def abandoned(self, archive_dir: Any, target_name: str) -> Iterator[Intent]:
        for name in self.pending_names(archive_dir, target_name):
            intent_id = name.removesuffix(".json")
            conn = _try_lock(self.db, intent_id)
            if conn is None:
                continue  # its writer still works: in progress, not interrupted
            row = conn.execute("SELECT data FROM change_intents WHERE intent_id = %s", (intent_id,)).fetchone()
            intent = Intent(
                self.db, intent_id, row[0] if row and isinstance(row[0], dict) else {"kind": "unreadable"}, conn
            )
            if row is None:  # finished between the listing and the lock
                intent.release()
                continue
            yield intent

    def in_progress(self, archive_dir: Any, target_name: str) -> list[str]:
        busy = []
        for name in self.pending_names(archive_dir, target_name):
            intent_id = name.removesuffix(".json")
            conn = _try_lock(self.db, intent_id)
            if conn is None:
                busy.append(intent_id)
            else:
                Intent(self.db, intent_id, {}, conn).release()
        return busy
