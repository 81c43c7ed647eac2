"""The live config in PostgreSQL: one row per target, shared by every machine, with a version column.

The host's own target (its config file) still says how values sit in a snapshot, seeds the row on
first use, and gets a copy of every change this machine commits (so an agent that reads the file
here sees it); the row is the truth every machine reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from calibration_policy.errors import TargetError
from calibration_policy.redact import get_logger
from calibration_policy.target import Snapshot

from .database import Database

log = get_logger(__name__)


class DatabaseTarget:
    """A :class:`calibration_policy.target.Target` whose live snapshot is the ``live_configs`` row."""

    def __init__(self, db: Database, host: Any) -> None:
        self.db, self.host = db, host
        self.name = host.name
        self.lock_path = getattr(host, "lock_path", None)

    def load(self) -> Snapshot:
        with self.db.connection("reading the live config") as conn:
            row = conn.execute("SELECT snapshot FROM live_configs WHERE target = %s", (self.name,)).fetchone()
            if row is None:  # first use: the host's config is the live one; every machine sees the same from now on
                seed = self.host.load()
                conn.execute(
                    "INSERT INTO live_configs (target, snapshot) VALUES (%s, %s::jsonb) ON CONFLICT DO NOTHING",
                    (self.name, json.dumps(seed)),
                )
                row = conn.execute("SELECT snapshot FROM live_configs WHERE target = %s", (self.name,)).fetchone()
        if not isinstance(row[0], dict):
            raise TargetError(f"The live config {self.name} in {self.db.describe()} does not hold a JSON object.")
        return row[0]

    def version(self) -> int:
        """The row's version: +1 on every change of the live config."""
        with self.db.connection() as conn:
            row = conn.execute("SELECT version FROM live_configs WHERE target = %s", (self.name,)).fetchone()
        return int(row[0]) if row else 0

    def values(self, snapshot: Snapshot) -> dict[str, float]:
        return self.host.values(snapshot)

    def with_values(self, snapshot: Snapshot, values: Mapping[str, float]) -> Snapshot:
        return self.host.with_values(snapshot, values)

    def save(self, snapshot: Snapshot) -> None:
        with self.db.connection("changing the live config") as conn:
            conn.execute(
                "INSERT INTO live_configs (target, snapshot) VALUES (%s, %s::jsonb) ON CONFLICT (target) DO UPDATE "
                "SET snapshot = EXCLUDED.snapshot, version = live_configs.version + 1, updated_at = now()",
                (self.name, json.dumps(snapshot)),
            )
        self.db.after_commit(lambda: self._copy_here(snapshot))  # this machine's copy, once the change is committed

    def _copy_here(self, snapshot: Snapshot) -> None:
        """The host's file follows the database; failing to write it never undoes a committed change."""
        try:
            self.host.save(snapshot)
        except (OSError, ValueError) as error:
            log.warning(
                "The new values of %s are live in %s, but this machine's copy could not be written (%s); "
                "the next change writes it again.",
                self.name,
                self.db.describe(),
                error,
            )

    def __repr__(self) -> str:
        return f"DatabaseTarget({self.name!r}, {self.db.describe()})"
