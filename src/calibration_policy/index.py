"""A rebuildable SQLite index of run file names, so "latest 50 of SPY" never lists 100k files.

The run files are the truth; this index is only a cache of their *names* (which carry the
timestamp, underlying and source). It is trusted only while the directory's modification time
equals the one recorded at the last full scan, so a file written by another process or copied
in by hand is seen by the next load. Like git's "racily clean" index entries, a scan of a
directory that changed within the last moments is not trusted, because a second change in the
same clock tick would leave the modification time unchanged. A lost or corrupt index is
rebuilt; a directory where it cannot be written falls back to a plain scan.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable, TypeVar

from .foreign import warn_once
from .naming import parse_run_file_name

log = logging.getLogger(__name__)
T = TypeVar("T")

INDEX_DIR = ".index"  # a subfolder, so the cache's own files never touch the run folder's mtime
INDEX_NAME = "runs.sqlite3"
RACY_NS = 200_000_000  # a directory changed less than 0.2 s before a scan may change again unseen
COARSE_RACY_NS = 3_000_000_000  # on file systems that keep whole (or even 2) seconds, wait out the tick

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY, underlying TEXT NOT NULL, stamp TEXT NOT NULL,
    seq INTEGER NOT NULL, source TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_by_underlying ON runs (underlying, stamp, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _looks_like_a_record(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


def parse_listed_name(directory: Path, name: str) -> tuple[str, str, str, int] | None:
    """The parts of a listed run file name; a name that looks like a record but is not a run's
    (``SPY (1)``, a byte that is not UTF-8) is skipped with one warning, never indexed: it could
    not even be stored in SQLite, and a symbol that fails ``check_underlying`` would break the
    panel's list of underlyings."""
    parts = parse_run_file_name(name)
    if parts is None and _looks_like_a_record(name):
        warn_once(log, "Skipping %s: %s.", directory / name, "its name is not a run file name (<stamp>_<SYMBOL>_<source>.json)")
    return parts


def scan_names(directory: Path) -> dict[str, tuple[str, str, str, int]]:
    """Every run file name in ``directory`` with its parsed parts (temp and foreign files skipped)."""
    found = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            parts = parse_listed_name(directory, entry.name)
            if parts is not None:
                found[entry.name] = parts
    return found


class RunIndex:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._db: sqlite3.Connection | None = None
        self._fallback: dict[str, tuple[str, str, str, int]] | None = None
        self._unusable = False  # e.g. a read-only index: scan instead, without touching it
        self._known: set[str] | None = None  # the indexed names, valid while the generation matches
        self._known_generation = -1

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None or self._unusable:
            return self._db
        path = self.directory / INDEX_DIR / INDEX_NAME
        for attempt in range(2):
            try:
                path.parent.mkdir(exist_ok=True)
                db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=OFF")  # a cache: after a crash it is rebuilt, not trusted
                db.executescript(_SCHEMA)
                self._db = db
                return db
            except (sqlite3.DatabaseError, OSError) as error:
                if attempt == 0 and isinstance(error, sqlite3.DatabaseError) and not isinstance(error, sqlite3.OperationalError):
                    log.warning("Run index %s is corrupt (%s); rebuilding it.", path, error)
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{path}{suffix}").unlink(missing_ok=True)
                    continue
                warn_once(log, "Run index %s is unavailable (%s); scanning the directory instead.", path, str(error))
                return None
        return None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- freshness -----------------------------------------------------------------------------

    def _meta(self, db: sqlite3.Connection) -> tuple[int, int, int]:
        rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
        return rows.get("dir_mtime_ns", -1), rows.get("trusted", 0), rows.get("generation", 0)

    def refresh(self) -> None:
        """Make the index match the directory, scanning it only when it may have changed."""
        db = self._connect()
        if db is None:
            self._fallback = scan_names(self.directory)
            return
        mtime = os.stat(self.directory).st_mtime_ns
        stamp, trusted, _ = self._meta(db)
        if trusted and stamp == mtime:
            return
        try:
            db.execute("BEGIN IMMEDIATE")
            self._sync(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._known = None
            raise
        self._fallback = None

    def _sync(self, db: sqlite3.Connection) -> None:
        """One listing of the folder; only names the index does not know yet are parsed."""
        mtime = os.stat(self.directory).st_mtime_ns
        scan_started = time.time_ns()
        on_disk = {name for name in os.listdir(self.directory) if _looks_like_a_record(name)}
        _, _, generation = self._meta(db)
        if self._known is None or self._known_generation != generation:
            self._known = {name for (name,) in db.execute("SELECT name FROM runs")}
        gone = self._known - on_disk
        new = {name: parts for name in on_disk - self._known if (parts := parse_listed_name(self.directory, name)) is not None}
        if gone or new:
            db.executemany("DELETE FROM runs WHERE name = ?", ((n,) for n in gone))
            db.executemany(
                "INSERT INTO runs (name, stamp, underlying, source, seq) VALUES (?, ?, ?, ?, ?)",
                ((n, *parts) for n, parts in new.items()),
            )
            generation += 1
        racy = RACY_NS if mtime % 1_000_000_000 else COARSE_RACY_NS
        db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (("dir_mtime_ns", mtime), ("trusted", int(scan_started - mtime > racy)), ("generation", generation)),
        )
        self._known = (self._known - gone) | new.keys()
        self._known_generation = generation

    # -- queries -------------------------------------------------------------------------------

    def _rebuilding(self, query: Callable[[], T]) -> T:
        """Run ``query``; if the index turns out corrupt (even mid-process), rebuild it once."""
        try:
            return query()
        except sqlite3.OperationalError as error:  # read-only, locked for too long…: not corruption
            log.warning("Run index in %s is unusable (%s); scanning the folder instead.", self.directory, error)
            self.close()
            self._unusable = True
            return query()
        except sqlite3.DatabaseError as error:
            log.warning("Run index in %s is corrupt (%s); rebuilding it.", self.directory, error)
            self.close()
            self._known = None
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.directory / INDEX_DIR / INDEX_NAME}{suffix}").unlink(missing_ok=True)
            return query()

    def newest(self, underlying: str, limit: int, offset: int = 0) -> list[str]:
        """Run file names of ``underlying``, newest first."""
        return self._rebuilding(lambda: self._newest(underlying, limit, offset))

    def count(self, underlying: str) -> int:
        return self._rebuilding(lambda: self._count(underlying))

    def underlyings(self) -> list[str]:
        return self._rebuilding(self._underlyings)

    def _newest(self, underlying: str, limit: int, offset: int) -> list[str]:
        self.refresh()
        if self._fallback is not None:
            names = sorted(
                (parts[0], parts[3], name) for name, parts in self._fallback.items() if parts[1] == underlying
            )
            return [name for _, _, name in reversed(names)][offset : offset + limit]
        rows = self._db.execute(  # type: ignore[union-attr]
            "SELECT name FROM runs WHERE underlying = ? ORDER BY stamp DESC, seq DESC LIMIT ? OFFSET ?",
            (underlying, limit, offset),
        )
        return [name for (name,) in rows]

    def _count(self, underlying: str) -> int:
        self.refresh()
        if self._fallback is not None:
            return sum(1 for parts in self._fallback.values() if parts[1] == underlying)
        return self._db.execute(  # type: ignore[union-attr]
            "SELECT COUNT(*) FROM runs WHERE underlying = ?", (underlying,)
        ).fetchone()[0]

    def _underlyings(self) -> list[str]:
        self.refresh()
        if self._fallback is not None:
            return sorted({parts[1] for parts in self._fallback.values()})
        return [u for (u,) in self._db.execute("SELECT DISTINCT underlying FROM runs ORDER BY underlying")]  # type: ignore[union-attr]
