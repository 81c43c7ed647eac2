"""The outbox in PostgreSQL: :class:`calibration_policy.outbox.FileOutbox`'s interface over ``outbox`` rows.

An event's row is inserted through the connection of the change's transaction when one is open
(:meth:`Database.connection` joins it), so it commits with the change or not at all. One delivery
worker per database holds a session advisory lock; it takes each row ``FOR UPDATE SKIP LOCKED`` in a
transaction of its own, so its delivery log commits row by row.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from typing import Any

from calibration_policy.outbox import OutboxBusy

from .database import OUTBOX_LOCK, Database


class TableOutbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> str:
        return f"the outbox of {self.db.describe()}"

    def add(self, record: dict[str, Any]) -> None:
        with self.db.connection("recording an event") as conn:
            conn.execute(
                "INSERT INTO outbox (event_id, intent_id, record) VALUES (%s, %s, %s::jsonb)",
                (record["event"]["event_id"], (record.get("intent") or {}).get("id"), json.dumps(record, default=str)),
            )

    def records(self) -> Iterator[dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT record FROM outbox ORDER BY seq").fetchall()
        return iter([row[0] for row in rows])

    def claim(self) -> Iterator[dict[str, Any]]:
        """Each row in a transaction of its own, locked while the worker delivers it (one another worker skips)."""
        with self.db.connection() as conn:
            ids = [row[0] for row in conn.execute("SELECT event_id FROM outbox ORDER BY seq").fetchall()]
        for event_id in ids:
            with self.db.transaction("delivering an event") as conn:
                row = conn.execute(
                    "SELECT record FROM outbox WHERE event_id = %s FOR UPDATE SKIP LOCKED", (event_id,)
                ).fetchone()
                if row is not None:
                    yield row[0]

    def get(self, event_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT record FROM outbox WHERE event_id = %s", (event_id,)).fetchone()
        return row[0] if row else None

    def save(self, record: dict[str, Any]) -> None:
        with self.db.connection("recording a delivery") as conn:
            conn.execute(
                "UPDATE outbox SET record = %s::jsonb WHERE event_id = %s",
                (json.dumps(record, default=str), record["event"]["event_id"]),
            )

    def known(self, event_ids: Iterable[str]) -> set[str]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT event_id FROM outbox WHERE event_id = ANY(%s)", (list(event_ids),)).fetchall()
        return {row[0] for row in rows}

    def discard(self, event_ids: Iterable[str]) -> None:
        with self.db.connection("discarding the events of an undone change") as conn:
            conn.execute("DELETE FROM outbox WHERE event_id = ANY(%s)", (list(event_ids),))

    def held_by(self, intent_id: str) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT record FROM outbox WHERE intent_id = %s ORDER BY seq", (intent_id,)).fetchall()
        return [row[0] for row in rows]

    @contextlib.contextmanager
    def worker(self) -> Iterator[None]:
        """This database's one delivery worker: a session advisory lock, freed by the server if the worker dies."""
        conn = self.db.pool.getconn()
        try:
            if not conn.execute("SELECT pg_try_advisory_lock(%s, 0)", (OUTBOX_LOCK,)).fetchone()[0]:
                raise OutboxBusy(f"Another delivery worker is running on {self.describe()}; try again later.")
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, 0)", (OUTBOX_LOCK,))
        finally:
            self.db.pool.putconn(conn)
