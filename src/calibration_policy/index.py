"""A rebuildable SQLite index of run file names, so "latest 50 of SPY" never lists 1M files.

The run files are the truth; this index is only a cache of their *names* (which carry the
timestamp, underlying and source). It is kept current in three ways:

* **The library's own writes** add their name in the same step (:meth:`RunIndex.adding`): the
  link that creates the run file happens while the index's write lock is held, between two
  looks at the folder's modification time; if the index was current before, it is current
  after, and the next load lists nothing.
* **A record that could not get the write lock** within :data:`RECORD_WAIT_MS` still writes its
  run, without the index; first it leaves a marker in ``.index/``. A record that holds the lock
  and finds a marker after its own link does not take the folder's new modification time as its
  own (the other link may have moved it too), so the next load lists the folder; that listing
  clears the markers it saw before it began.
* **A change made behind its back** (a file copied in or deleted by hand, another tool) moves
  the folder's modification time, so the next load lists the folder once. It does not diff
  the listing against a million names in memory: every entry's name is hashed (CRC-32) into one
  of :data:`BUCKETS` buckets, and each bucket's count and sum of hashes is kept in the index.
  Only the buckets whose figures differ are looked at name by name, so noticing one copied file
  costs one listing and a hash per name.
* **A lost, corrupt or foreign-version index** is rebuilt from one listing (bulk insert, a
  progress bar on stderr when it takes over a second). Every change is one SQLite transaction,
  so a process killed mid-build leaves the old index (or none), never half of one.

Like git's "racily clean" index entries, a listing of a folder that changed within the last
moments is not trusted, because a second change in the same clock tick would leave the
modification time unchanged. Trust never stays lost on a loop, though (a backfill's cost stays
linear in its length):

* when a load is about to list a folder whose index was trusted (or is new), and the change it
  noticed is that recent, it first waits out the rest of the racy window (at most 0.2 s, once per
  lost trust), so its one listing is trusted;
* a new folder's first record starts its index (its one name, no listing), so the first load
  does not wait; a folder of runs with no index (an older release's) is left to the load's build;
* a listing of a folder whose modification time is the one the library's own last change left
  (a record's link, :meth:`RunIndex.adding` notes it, or making ``.index/`` for a first build) is
  trusted at once, without waiting: the doubt it leaves, a change in the same tick as that change,
  is the window below, which every record already accepts.

One narrow window remains: a file copied in by hand within the same clock tick (a few
milliseconds) as one of the library's own links is seen only when the folder changes behind the
index's back again, or when the index is rebuilt (:meth:`~.history.HistoryStore.reindex`, or
delete ``.index/``: it is only a cache). On kernels with multigrain timestamps (Linux 6.13 and
later) the look at the modification time right after the link makes any later change visible,
so the window shrinks to the microseconds between the two. A directory where the index cannot be
written falls back to a plain scan.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import sqlite3
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .foreign import warn_once
from .naming import parse_run_file_name
from .redact import get_logger

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

log = get_logger(__name__)
T = TypeVar("T")

INDEX_DIR = ".index"  # a subfolder, so the cache's own files never touch the run folder's mtime
INDEX_NAME = "runs.sqlite3"
UNLOCKED_PREFIX = "unlocked-"  # a record linking without the write lock is on its way: distrust the folder
_MARKS = itertools.count()  # markers of one process's threads never share a name
SCHEMA_VERSION = 2  # an index of another version (an older release's) is rebuilt, never trusted
RACY_NS = 200_000_000  # a directory changed less than 0.2 s before a scan may change again unseen
COARSE_RACY_NS = 3_000_000_000  # on file systems that keep whole (or even 2) seconds, wait out the tick
BUCKETS = 4096  # hash buckets of the folder's names: a changed bucket is looked at name by name
PROGRESS_AFTER_S = 1.0  # a build that takes longer shows a progress bar on stderr
CHUNK = 50_000
LISTING_CHUNK = 10_000  # names read, hashed and packed at a time
RECORD_WAIT_MS = 1000  # a record waits this long for the index's lock, then writes without it (a load lists)
LARGE_FOLDER_BYTES = 4 * 1024 * 1024  # a directory this big (on ext4 ≈ 100k names) may take a second to index

Key = tuple[str, int, str]  # (stamp, seq, name): the total order of one underlying's runs

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (k TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS others (name BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sums (bucket INTEGER PRIMARY KEY, n INTEGER NOT NULL, s INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counts (underlying TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
# One run file name per line, as parse_run_file_name reads it ("..": never in a symbol): the bulk
# build parses a chunk of 50,000 names with one findall.
# A run file name without a _<n>, one per line: the bulk build parses 50,000 names with one
# findall (names with ".." in the symbol are dropped after it; key_of checks the rest one by one).
_PLAIN_RUN_LINE = re.compile(
    r"^(\d{8}T\d{6}\.\d{6}Z)_(\^?[A-Z0-9][A-Z0-9.\-]{0,14})_([a-z][a-z0-9\-]{0,31})\.json$",
    re.ASCII | re.MULTILINE,
)
_TABLES = ("runs", "others", "sums", "counts", "meta")


def _looks_like_a_record(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")


def parse_listed_name(directory: Path, name: str) -> tuple[str, str, str, int] | None:
    """The parts of a listed run file name; a name that looks like a record but is not a run's
    (``SPY (1)``, a byte that is not UTF-8) is skipped with one warning, never indexed: it could
    not even be stored in SQLite, and a symbol that fails ``check_underlying`` would break the
    panel's list of underlyings."""
    parts = parse_run_file_name(name)
    if parts is None and _looks_like_a_record(name):
        warn_once(
            log,
            "Skipping %s: %s.",
            directory / name,
            "its name is not a run file name (<stamp>_<SYMBOL>_<source>.json)",
        )
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


def bucket_of(raw: bytes) -> tuple[int, int]:
    """``(bucket, hash)`` of one raw directory entry name."""
    crc = zlib.crc32(raw)
    return crc % BUCKETS, crc


def sort_key(underlying: str, stamp: str, seq: str, source: str) -> str:
    """The index's one column: ``<UNDERLYING>/<stamp>/<digits of seq><seq>/<source>``. Text order
    is (underlying, stamp, numeric seq, source) — ``…_10`` after ``…_9`` — and the file name can be
    rebuilt from it; one narrow column makes the million-row build and every page cheap."""
    return f"{underlying}/{stamp}/{len(seq)}{seq}/{source}"


def key_of(name: str) -> str | None:
    parts = parse_run_file_name(name)
    return None if parts is None else sort_key(parts[1], parts[0], str(parts[3] or ""), parts[2])


def name_of(k: str) -> str:
    underlying, stamp, seq, source = k.split("/")
    return f"{stamp}_{underlying}_{source}{'_' + seq[1:] if len(seq) > 1 else ''}.json"


def run_key(name: str) -> Key | None:
    """The paging key of a run file name (``None`` for anything else)."""
    parts = parse_run_file_name(name)
    return None if parts is None else (parts[0], parts[3], name)


def _give_back_memory() -> None:
    """Hand the listing's freed memory back to the OS (glibc keeps it otherwise): resident memory
    after a load of a big folder stays what it was before."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (musl, …): nothing to trim
            pass


class _Listing:
    """One listing of a folder, read in chunks: each name hashed into its bucket as it is read, the names kept
    packed (one bytes object a chunk, NUL-separated: no file name holds a NUL), about 40 bytes a name where a list
    of Python bytes objects takes 90. A relist of a million names holds about 45 MB instead of 110, which is what
    the panel's server peaked at (issue 26); the chunks cost about a tenth more time than one ``os.listdir``."""

    def __init__(self, directory: Path) -> None:
        import numpy as np

        self._packed: list[tuple[np.ndarray, bytes]] = []  # (the chunk's hashes, its names)
        self.counts = np.zeros(BUCKETS, dtype=np.int64)
        sums = np.zeros(BUCKETS, dtype=np.float64)  # exact: a bucket's sum of 32-bit hashes stays far below 2**53
        with os.scandir(os.fsencode(directory)) as entries:
            while chunk := [entry.name for entry in itertools.islice(entries, LISTING_CHUNK)]:
                crc = np.fromiter(map(zlib.crc32, chunk), dtype=np.uint32, count=len(chunk))
                buckets = crc % BUCKETS
                self.counts += np.bincount(buckets, minlength=BUCKETS)
                sums += np.bincount(buckets, weights=crc, minlength=BUCKETS)
                self._packed.append((crc, b"\0".join(chunk)))
        self.sums = sums.round().astype(np.int64)

    def __len__(self) -> int:
        return sum(len(crc) for crc, _ in self._packed)

    def in_buckets(self, buckets: Any) -> list[bytes]:
        """The names hashed into ``buckets``, chunk by chunk (a mask of the whole listing at once, or ``np.isin``
        over it, held more memory than the names it found: issue 26's relist after deletions)."""
        import numpy as np

        wanted = np.zeros(BUCKETS, dtype=bool)
        wanted[buckets] = True
        names: list[bytes] = []
        for crc, packed in self._packed:
            rows = np.flatnonzero(wanted[crc % BUCKETS])
            if len(rows):
                unpacked = packed.split(b"\0")
                names.extend(unpacked[i] for i in rows.tolist())
        return names

    def every(self) -> list[bytes]:
        """Every name, each chunk let go once unpacked (a build needs them all, sorted)."""
        names: list[bytes] = []
        self._packed.reverse()
        while self._packed:
            names.extend(self._packed.pop()[1].split(b"\0"))
        return names


class _Progress:
    """A rich progress bar on stderr, shown only once the work has taken over a second."""

    def __init__(self, total: int, what: str) -> None:
        self.total, self.what, self.started = total, what, time.perf_counter()
        self._shown: tuple[Progress, TaskID] | None = None  # the bar and its one task, once shown

    @staticmethod
    def prepare() -> None:
        import rich.progress  # noqa: F401

    def update(self, done: int) -> None:
        if self._shown is None:
            if time.perf_counter() - self.started < PROGRESS_AFTER_S:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            bar.start()
            self._shown = bar, bar.add_task(self.what, total=self.total)
        bar, task = self._shown
        bar.update(task, completed=done)

    def close(self) -> None:
        if self._shown is not None:
            bar, task = self._shown
            bar.update(task, completed=self.total)
            bar.stop()


@contextlib.contextmanager
def _immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken at once (a second writer waits); rolled back on any error or kill."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def racy_ns(stamp_ns: int) -> int:
    """How long after ``stamp_ns`` a change in the same clock tick could still go unseen: the racy window, or a
    whole tick's on a file system that keeps whole seconds."""
    return RACY_NS if stamp_ns % 1_000_000_000 else COARSE_RACY_NS


def _made(folder: Path) -> bool:
    """Make ``folder`` if it is not there; whether this call made it."""
    try:
        folder.mkdir()
    except FileExistsError:
        return False
    return True


def _wait_out_racy_window(mtime: int) -> None:
    """Sleep until a listing of a folder last changed at ``mtime`` may be trusted (at most
    :data:`RACY_NS`; file systems with whole-second times are not waited for: 3 s is too long)."""
    age = time.time_ns() - mtime
    if mtime % 1_000_000_000 and 0 <= age <= RACY_NS:
        time.sleep((RACY_NS - age) / 1e9 + 0.002)


class RunIndex:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._db: sqlite3.Connection | None = None
        self._fallback: dict[str, tuple[str, str, str, int]] | None = None
        self._unusable = False  # e.g. a read-only index: scan instead, without touching it
        self._wait_ms = 0  # the connection's busy timeout: set only when it changes (a record takes one statement less)
        self.last_build_seconds: float | None = None

    # -- connection ----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is not None or self._unusable:
            return self._db
        path = self.directory / INDEX_DIR / INDEX_NAME
        for attempt in range(2):
            try:
                created = _made(path.parent)
                db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
                self._wait_ms = 30_000
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=OFF")  # a cache: after a power cut it is rebuilt, not trusted
                db.execute("PRAGMA cache_size=-2048")  # 2 MiB: a page of names needs a few pages; memory stays small
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version != SCHEMA_VERSION:  # new, or an older release's: start afresh (a kill here is redone)
                    for table in _TABLES:
                        db.execute(f"DROP TABLE IF EXISTS {table}")
                    db.executescript(_SCHEMA)
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                if created:  # making .index/ changed the folder: our own change, as a record's link is
                    mtime = os.stat(self.directory).st_mtime_ns
                    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('linked_mtime_ns', ?)", (mtime,))
                self._db = db
                return db
            except (sqlite3.DatabaseError, OSError) as error:
                if (
                    attempt == 0
                    and isinstance(error, sqlite3.DatabaseError)
                    and not isinstance(error, sqlite3.OperationalError)
                ):
                    log.warning("Run index %s is corrupt (%s); rebuilding it.", path, error)
                    for suffix in ("", "-wal", "-shm"):
                        Path(f"{path}{suffix}").unlink(missing_ok=True)
                    continue
                warn_once(log, "Run index %s is unavailable (%s); scanning the directory instead.", path, str(error))
                return None
        return None

    def _wait(self, db: sqlite3.Connection, ms: int) -> None:
        """How long the next write transaction waits for another's: a record waits a second
        (:data:`RECORD_WAIT_MS`), then writes without the index; a listing or a rebuild waits 30 s.
        Reads never wait on a writer (WAL)."""
        if self._wait_ms != ms:
            db.execute(f"PRAGMA busy_timeout={ms}")
            self._wait_ms = ms

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- freshness -----------------------------------------------------------------------------

    def _meta(self, db: sqlite3.Connection) -> tuple[int, int]:
        rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
        return rows.get("dir_mtime_ns", -1), rows.get("trusted", 0)

    def _linked(self, db: sqlite3.Connection) -> int:
        """The folder's modification time that the library's own last change left (a link, or making .index/)."""
        row = db.execute("SELECT value FROM meta WHERE key = 'linked_mtime_ns'").fetchone()
        return int(row[0]) if row is not None else -1

    def refresh(self) -> None:
        """Make the index match the directory, listing it only when it may have changed."""
        db = self._connect()
        if db is None:
            self._fallback = scan_names(self.directory)
            return
        mtime = os.stat(self.directory).st_mtime_ns
        stamp, trusted = self._meta(db)
        if trusted and stamp == mtime:
            self._fallback = None
            return
        if (trusted or stamp == -1) and self._linked(db) != mtime:
            # trust just lost (or a new index): let this one listing be trusted; one of a folder our own last
            # change left is trusted without waiting (_sync), so waiting would buy nothing
            _wait_out_racy_window(mtime)
        self._wait(db, 30_000)
        with _immediate(db):
            self._sync(db)
        self._fallback = None

    def rebuild(self) -> int:
        """Forget everything and list the folder again (``calibration-policy reindex``); the run count."""
        db = self._connect()
        if db is None:
            return len(scan_names(self.directory))
        self._wait(db, 30_000)
        with _immediate(db):
            for table in ("runs", "others", "sums", "counts", "meta"):
                db.execute(f"DELETE FROM {table}")
            self._sync(db)
        return db.execute("SELECT COALESCE(SUM(n), 0) FROM counts").fetchone()[0]

    def _sync(self, db: sqlite3.Connection) -> None:
        """One listing of the folder; only names in buckets whose figures changed are looked at."""
        import numpy as np

        markers = self._unlocked_markers()  # before the stat: a link they announce is in this listing, or moves mtime
        info = os.stat(self.directory)
        mtime = info.st_mtime_ns
        if info.st_size > LARGE_FOLDER_BYTES and not db.execute("SELECT 1 FROM sums LIMIT 1").fetchone():
            _Progress.prepare()  # a big build ahead: import the bar now, not amid a million names
        scan_started = time.time_ns()
        listing = _Listing(self.directory)
        total, listed_n, listed_s = len(listing), listing.counts, listing.sums
        stored_n = np.zeros(BUCKETS, dtype=np.int64)
        stored_s = np.zeros(BUCKETS, dtype=np.int64)
        for bucket, n, s in db.execute("SELECT bucket, n, s FROM sums"):
            stored_n[bucket], stored_s[bucket] = n, s
        changed = np.flatnonzero((listed_n != stored_n) | (listed_s != stored_s))
        if len(changed):
            if not stored_n.any():  # a new (or emptied) index: bulk build
                self._build(db, listing.every())
            else:
                names = listing.in_buckets(changed)
                self._patch(db, names, set(changed.tolist()), int(stored_n[changed].sum()))
            db.execute("DELETE FROM sums")
            db.executemany(
                "INSERT INTO sums (bucket, n, s) VALUES (?, ?, ?)",
                ((int(b), int(listed_n[b]), int(listed_s[b])) for b in np.flatnonzero(listed_n)),
            )
        del listing
        if total > 100_000:
            db.execute("PRAGMA shrink_memory")
            _give_back_memory()
        racy = racy_ns(mtime)
        trusted = scan_started - mtime > racy or (self._linked(db) == mtime and racy == RACY_NS)
        db.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (("dir_mtime_ns", mtime), ("trusted", int(trusted))),
        )
        for marker in markers:
            with contextlib.suppress(OSError):
                os.unlink(marker)

    def _classify(self, raw: bytes) -> tuple[str, str, str, int] | None:
        name = os.fsdecode(raw)
        if name.startswith("."):  # temp files and the index folder: not records, no warning
            return None
        return parse_listed_name(self.directory, name)

    def _build(self, db: sqlite3.Connection, raw_names: list[bytes]) -> None:
        """Index every listed name: sorted (so the table grows at its ends), parsed by one regex
        pass per chunk, inserted in bulk; foreign names are remembered (and warned about once)."""
        started = time.perf_counter()
        for table in ("runs", "others", "counts"):
            db.execute(f"DELETE FROM {table}")
        raw_names.sort()
        progress = _Progress(len(raw_names), f"Indexing {len(raw_names):,} files in {self.directory}")
        try:
            for start in range(0, len(raw_names), CHUNK):
                chunk = raw_names[start : start + CHUNK]
                joined = b"\n".join(chunk)
                others: list[bytes] = []  # foreign names, warned about once (a name that only looks like a run's)
                if joined.count(b"\n") != len(chunk) - 1:  # a name holding a newline (never a run's) reads as two
                    others = [raw for raw in chunk if b"\n" in raw]
                    chunk = [raw for raw in chunk if b"\n" not in raw]
                    joined = b"\n".join(chunk)
                text = joined.decode("utf-8", "surrogateescape")
                rows = _PLAIN_RUN_LINE.findall(text)  # every run without a _<n>, parsed in C
                if ".." in text:
                    rows = [row for row in rows if ".." not in row[1]]
                keys = [f"{u}/{stamp}/0/{source}" for stamp, u, source in rows]
                if len(rows) != len(chunk):  # runs with a _<n>, temp files, foreign names: one by one (few)
                    plain = {f"{stamp}_{u}_{source}.json" for stamp, u, source in rows}
                    for name in text.split("\n"):
                        if name in plain:
                            continue
                        if (k := key_of(name) if not name.startswith(".") else None) is not None:
                            keys.append(k)
                        else:
                            others.append(os.fsencode(name))
                    del plain
                for raw in others:
                    self._classify(raw)
                db.executemany("INSERT OR IGNORE INTO others (name) VALUES (?)", ((raw,) for raw in others))
                db.execute(
                    "INSERT OR IGNORE INTO runs (k) SELECT value FROM json_each(?) ORDER BY 1", (json.dumps(keys),)
                )
                del rows, keys, chunk, joined, text
                progress.update(min(start + CHUNK, len(raw_names)))
            self._count_all(db)
        finally:
            progress.close()
        self.last_build_seconds = time.perf_counter() - started

    @staticmethod
    def _count_all(db: sqlite3.Connection) -> None:
        """Runs per underlying, counted along the key (each underlying found by one seek)."""
        db.execute("DELETE FROM counts")
        underlying = db.execute("SELECT k FROM runs ORDER BY k LIMIT 1").fetchone()
        while underlying is not None:
            symbol = underlying[0].split("/", 1)[0]
            n = db.execute("SELECT COUNT(*) FROM runs WHERE k >= ? AND k < ?", (f"{symbol}/", f"{symbol}0")).fetchone()[
                0
            ]
            db.execute("INSERT INTO counts (underlying, n) VALUES (?, ?)", (symbol, n))
            underlying = db.execute("SELECT k FROM runs WHERE k >= ? ORDER BY k LIMIT 1", (f"{symbol}0",)).fetchone()

    def _patch(self, db: sqlite3.Connection, raw_names: list[bytes], changed: set[int], known: int) -> None:
        """Bring the names of the ``changed`` buckets up to date; ``raw_names`` are the listed names
        in them, ``known`` how many names the index holds in them. Names the index holds but the
        folder lost are looked for (one pass over the index) only when the counts say some are gone."""
        listed = set(raw_names)
        added = 0
        for raw in raw_names:
            name = os.fsdecode(raw)
            parts = None if name.startswith(".") else parse_run_file_name(name)
            if parts is not None:
                added += self._insert(db, name, parts)
            elif db.execute("INSERT OR IGNORE INTO others (name) VALUES (?)", (raw,)).rowcount:
                added += 1
                self._classify(raw)  # a new foreign name: one warning
        if known + added == len(raw_names):
            return

        def lost(raw: bytes) -> bool:
            return zlib.crc32(raw) % BUCKETS in changed and raw not in listed

        # Read row by row, deleted after: a million keys fetched at once held about 250 MB.
        gone = [k for (k,) in db.execute("SELECT k FROM runs") if lost(name_of(k).encode())]
        for k in gone:
            db.execute("DELETE FROM runs WHERE k = ?", (k,))
            db.execute("UPDATE counts SET n = n - 1 WHERE underlying = ?", (k.split("/", 1)[0],))
        gone_others = [raw for (raw,) in db.execute("SELECT name FROM others") if lost(raw)]
        db.executemany("DELETE FROM others WHERE name = ?", ((raw,) for raw in gone_others))

    @staticmethod
    def _insert(db: sqlite3.Connection, name: str, parts: tuple[str, str, str, int]) -> int:
        stamp, underlying, source, seq = parts
        k = sort_key(underlying, stamp, str(seq or ""), source)
        inserted = db.execute("INSERT OR IGNORE INTO runs (k) VALUES (?)", (k,)).rowcount
        if inserted:
            db.execute(
                "INSERT INTO counts (underlying, n) VALUES (?, 1) ON CONFLICT (underlying) DO UPDATE SET n = n + 1",
                (underlying,),
            )
        return inserted

    # -- the library's own writes ----------------------------------------------------------------

    def temp_dir(self) -> Path | None:
        """Where a new run's temp file goes: beside the index (same file system, so it can be linked
        into place) when the index is in use, so that only the link changes the run folder."""
        folder = self.directory / INDEX_DIR
        if self._unusable or not (self._db is not None and folder.is_dir() or (folder / INDEX_NAME).is_file()):
            return None  # (an index folder removed or replaced under an open connection: write in the run folder)
        return folder

    def _unlocked_markers(self) -> list[str]:
        """The markers of records that linked (or are about to link) without the write lock."""
        try:
            with os.scandir(self.directory / INDEX_DIR) as entries:
                return [entry.path for entry in entries if entry.name.startswith(UNLOCKED_PREFIX)]
        except OSError:
            return []

    def _mark_unlocked(self) -> None:
        """Announce a link made without the write lock, before making it (see the module's notes)."""
        name = f"{UNLOCKED_PREFIX}{os.getpid()}-{time.time_ns()}-{next(_MARKS)}"
        with contextlib.suppress(OSError):  # no .index/ to mark: there is no trusted index to mislead either
            os.close(os.open(self.directory / INDEX_DIR / name, os.O_CREAT | os.O_WRONLY, 0o644))

    def _holds_no_record(self) -> bool:
        try:
            with os.scandir(self.directory) as entries:
                return not any(_looks_like_a_record(entry.name) for entry in entries)
        except OSError:
            return False

    @contextmanager
    def adding(self) -> Iterator[Callable[[str], None]]:
        """Hold the index's write lock around the link that creates a run file; call the yielded
        function with the new file's name right after the link. If the index was current before,
        it is current after (the next load lists nothing); if not, the next load lists the folder
        as it would have anyway. An index that cannot be used never blocks the write."""
        exists = self._db is not None or (self.directory / INDEX_DIR / INDEX_NAME).is_file()
        # No index yet: the first load builds it from one listing, unless this is the folder's first record, which
        # starts it (one name, no listing) so that load trusts the folder at once instead of waiting out the window.
        exists = exists or (not self._unusable and self._holds_no_record())
        db = self._connect() if exists and not self._unusable else None
        if db is None:
            yield lambda name: None
            return
        try:
            self._wait(db, RECORD_WAIT_MS)  # never wait long on another process's build
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            warn_once(
                log,
                "Run index in %s is busy or unusable (%s); the next load lists the folder.",
                self.directory,
                str(error),
            )
            self._mark_unlocked()
            yield lambda name: None
            return
        try:
            before = os.stat(self.directory).st_mtime_ns
            stamp, trusted = self._meta(db)
        except (OSError, sqlite3.Error):
            before, stamp, trusted = -1, -2, 0
        added: list[str] = []
        try:
            yield added.append
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        try:
            after = os.stat(self.directory).st_mtime_ns
            for name in added:
                parts = parse_run_file_name(name)
                if parts is None:
                    continue
                bucket, crc = bucket_of(os.fsencode(name))
                self._insert(db, name, parts)
                db.execute(
                    "INSERT INTO sums (bucket, n, s) VALUES (?, 1, ?) "
                    "ON CONFLICT (bucket) DO UPDATE SET n = n + 1, s = s + excluded.s",
                    (bucket, crc),
                )
            was_current = trusted and stamp == before
            ours = after != before and after % 1_000_000_000 != 0  # the link moved the mtime, to a fine tick
            seen, current = after, was_current and ours
            if self._unlocked_markers():  # a record linked beside this one without the lock: its name may be missing
                # the index stays as trusted as it was at ``before``: the next load sees the folder changed since,
                # waits out the racy window and lists it once, trusted (the markers go with that listing)
                seen, current, ours = before, was_current, False
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('dir_mtime_ns', ?), ('trusted', ?), ('linked_mtime_ns', ?)",
                (seen, int(current), after if ours else -1),
            )
            db.execute("COMMIT")
        except (OSError, sqlite3.Error) as error:  # the run is written; the index only lags: the next load lists
            if db.in_transaction:
                db.execute("ROLLBACK")
            warn_once(
                log,
                "Run index in %s could not take a new name (%s); the next load lists the folder.",
                self.directory,
                str(error),
            )

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
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.directory / INDEX_DIR / INDEX_NAME}{suffix}").unlink(missing_ok=True)
            return query()

    def newest(self, underlying: str, limit: int, offset: int = 0, before: Key | None = None) -> list[str]:
        """Run file names of ``underlying``, newest first; ``before`` a key: only runs older than it."""
        return self._rebuilding(lambda: self._page(underlying, limit, offset, before, newest=True))

    def oldest(self, underlying: str, limit: int, after: Key | None = None) -> list[str]:
        """Run file names of ``underlying``, oldest first; ``after`` a key: only runs newer than it."""
        return self._rebuilding(lambda: self._page(underlying, limit, 0, after, newest=False))

    def count(self, underlying: str) -> int:
        return self._rebuilding(lambda: self._count(underlying))

    def count_from(self, underlying: str, key: Key) -> int:
        """How many runs of ``underlying`` sort at ``key`` or after it (are as new or newer)."""
        return self._rebuilding(lambda: self._count_from(underlying, key))

    def _count_from(self, underlying: str, key: Key) -> int:
        self.refresh()
        if self._fallback is not None:
            return sum(
                1
                for name, parts in self._fallback.items()
                if parts[1] == underlying and (parts[0], parts[3], name) >= key
            )
        return self._db.execute(  # type: ignore[union-attr]
            "SELECT COUNT(*) FROM runs WHERE k >= ? AND k < ?", (key_of(key[2]), f"{underlying}0")
        ).fetchone()[0]

    def underlyings(self) -> list[str]:
        return self._rebuilding(self._underlyings)

    def _page(self, underlying: str, limit: int, offset: int, key: Key | None, newest: bool) -> list[str]:
        self.refresh()
        if self._fallback is not None:
            names = sorted(
                (parts[0], parts[3], name) for name, parts in self._fallback.items() if parts[1] == underlying
            )
            if key is not None:
                names = [k for k in names if (k < key if newest else k > key)]
            if newest:
                names.reverse()
            return [name for _, _, name in names][offset : offset + limit]
        low, high = f"{underlying}/", f"{underlying}0"  # every key of this underlying, none of "SPY.B"
        if key is not None:
            cursor = key_of(key[2]) or sort_key(underlying, key[0], str(key[1] or ""), "~")
            if newest:
                high = min(high, cursor)
            else:
                low = max(low, cursor + "\0")
        order = "DESC" if newest else "ASC"
        rows = self._db.execute(  # type: ignore[union-attr]
            f"SELECT k FROM runs WHERE k >= ? AND k < ? ORDER BY k {order} LIMIT ? OFFSET ?", (low, high, limit, offset)
        )
        return [name_of(k) for (k,) in rows]

    def _count(self, underlying: str) -> int:
        self.refresh()
        if self._fallback is not None:
            return sum(1 for parts in self._fallback.values() if parts[1] == underlying)
        row = self._db.execute("SELECT n FROM counts WHERE underlying = ?", (underlying,)).fetchone()  # type: ignore[union-attr]
        return row[0] if row else 0

    def _underlyings(self) -> list[str]:
        self.refresh()
        if self._fallback is not None:
            return sorted({parts[1] for parts in self._fallback.values()})
        return [u for (u,) in self._db.execute("SELECT underlying FROM counts WHERE n > 0 ORDER BY underlying")]  # type: ignore[union-attr]


def names_in(items: Iterable[tuple[str, int, str]]) -> list[str]:
    return [name for _, _, name in items]
