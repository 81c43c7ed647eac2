"""The schema: numbered SQL migrations (``migrations/NNNN_*.sql``) and a table of those applied.

``upgrade`` is idempotent and safe from two machines at once (a session advisory lock serialises
it; each migration commits with its version row, or not at all). A store refuses a database whose
schema is older (run ``calibration-policy db upgrade``) or newer than this code (upgrade the code).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from calibration_policy.errors import StoreError

from .database import UPGRADE_LOCK, check_url, explain, where

VERSION_TABLE = "calibration_schema"


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The migrations this code knows, in order."""
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.number)


def code_version() -> int:
    return migrations()[-1].number


def _connect(url: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(check_url(url), autocommit=True, connect_timeout=5)
    except psycopg.Error as error:
        raise explain(error, url, "connecting") from None


def applied_version(conn: Any) -> int:
    """The database's schema version; 0 for a database without our tables."""
    exists = conn.execute("SELECT to_regclass(%s)", (VERSION_TABLE,)).fetchone()[0]
    if exists is None:
        return 0
    row = conn.execute(f"SELECT max(version) FROM {VERSION_TABLE}").fetchone()
    return int(row[0] or 0)


def upgrade(url: str, say: Callable[[str], None] = lambda _: None) -> list[Migration]:
    """Apply the migrations the database lacks; returns those applied (none when up to date)."""
    done = []
    with _connect(url) as conn:
        conn.execute("SELECT pg_advisory_lock(%s, 0)", (UPGRADE_LOCK,))
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            current = applied_version(conn)
            if current > code_version():
                raise newer_error(url, current)
            for migration in migrations():
                if migration.number <= current:
                    continue
                say(f"Applying migration {migration.number:04d} ({migration.name.replace('_', ' ')})…")
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        f"INSERT INTO {VERSION_TABLE} (version, name) VALUES (%s, %s)",
                        (migration.number, migration.name),
                    )
                done.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, 0)", (UPGRADE_LOCK,))
    return done


def newer_error(url: str, found: int) -> StoreError:
    return StoreError(
        f"The database {where(url)} has schema version {found}, newer than this calibration-policy knows "
        f"({code_version()}): another machine runs a newer version. Upgrade calibration-policy here; "
        "nothing was written."
    )


def status(url: str) -> dict[str, Any]:
    """Where the database is, its schema version and this code's, and how many records each table holds."""
    with _connect(url) as conn:
        version = applied_version(conn)
        counts = {}
        if version:
            for table in (
                "calibration_runs",
                "suggestions",
                "config_archive",
                "live_configs",
                "change_intents",
                "policy_records",
            ):
                counts[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return {
        "database": where(url),
        "schema_version": version,
        "code_version": code_version(),
        "up_to_date": version == code_version(),
        "counts": counts,
    }


def require_current(conn: Any, url: str) -> None:
    """Refuse a database whose schema is not this code's, before anything is read or written."""
    version = applied_version(conn)
    if version > code_version():
        raise newer_error(url, version)
    if version < code_version():
        what = (
            "has no calibration-policy tables yet"
            if version == 0
            else f"has schema version {version}, older than {code_version()}"
        )
        raise StoreError(
            f"The database {where(url)} {what}: run `calibration-policy db upgrade` (safe to run again). "
            "Nothing was written."
        )
