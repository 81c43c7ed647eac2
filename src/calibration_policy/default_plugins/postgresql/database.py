"""One PostgreSQL database: a connection pool, transactions that span a change, advisory locks, and
errors in plain English.

A change holds one transaction from its first lock to its end (:meth:`Database.transaction`): every
part of the store used inside it (runs, suggestions, archive, live config) writes through that
same connection, so the change commits whole or not at all. A process that dies or loses its
connection mid-change leaves nothing: the server rolls the transaction back and frees its locks.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from calibration_policy.durable import kill_point
from calibration_policy.errors import StoreError
from calibration_policy.redact import mask

# Advisory-lock classes (the first key of pg_advisory_lock(int, int)); the second is hashtext(name).
TARGET_LOCK, INTENT_LOCK, UPGRADE_LOCK, OUTBOX_LOCK = 7301, 7302, 7303, 7304


@dataclass
class _Held:
    database: Database
    conn: Any
    after_commit: list[Callable[[], None]] = field(default_factory=list)


_held: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("calibration_policy_pg_transaction", default=None)


def where(url: str) -> str:
    """``host:port/dbname`` of a URL, for messages (never the password)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}/{parts.path.lstrip('/') or '(default database)'}"


def explain(error: Exception, url: str, doing: str) -> StoreError:
    """A psycopg error as one sentence that says what to check."""
    import psycopg

    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    place = where(url)
    if isinstance(error, psycopg.OperationalError):
        lowered = text.lower()
        if "password authentication failed" in lowered or "no password supplied" in lowered:
            user = urlsplit(url).username or "(default user)"
            return StoreError(
                f"The PostgreSQL server at {place} refused the password of user {user} while {doing}; "
                "check the user and password in the store URL. Nothing was written."
            )
        if "does not exist" in lowered and "database" in lowered:
            return StoreError(
                f"The database of the store URL does not exist ({place}); create it (createdb) and run "
                "`calibration-policy db upgrade`. Nothing was written."
            )
        if (
            "connection refused" in lowered
            or "could not connect" in lowered
            or "timeout" in lowered
            or "translate host" in lowered
        ):
            return StoreError(
                f"Cannot reach the PostgreSQL server at {place} while {doing} ({text}); is it running, "
                "and are the host and port of the store URL right? Nothing was written."
            )
        return StoreError(
            f"The connection to the PostgreSQL store at {place} failed while {doing} ({text}); "
            "nothing of this change was kept: run it again."
        )
    if isinstance(error, psycopg.errors.LockNotAvailable):
        return StoreError(f"Another change held the lock too long while {doing} ({place}); try again.")
    return StoreError(
        f"The PostgreSQL store at {place} failed while {doing} ({type(error).__name__}: {text}); "
        "nothing of this change was kept."
    )


def check_url(url: str) -> str:
    """``url`` if it is a usable PostgreSQL URL, else a :class:`StoreError` saying what is wrong."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as error:
        raise StoreError(
            f"The store URL {mask(url)!r:.100} is malformed ({error}); write it like "
            "postgresql://user:password@host:5432/dbname."
        ) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise StoreError(f"The store URL {mask(url)!r:.100} is not a postgresql:// URL.")
    if not parts.path.strip("/"):
        raise StoreError(
            f"The store URL {mask(url)!r:.100} names no database; add it after the host: "
            "postgresql://user:password@host:5432/dbname."
        )
    return url


def insert_first_free(
    conn: Any, names: Iterator[str], sql: str, params: Callable[[str], tuple[Any, ...]]
) -> str | None:
    """The first of ``names`` that ``sql`` (an ``INSERT … ON CONFLICT DO NOTHING``) could insert, None when all
    are taken: records that share a moment get ``_2``, ``_3`` … as the file store's names do (``create_exclusive``)."""
    for name in names:
        if conn.execute(sql, params(name)).rowcount == 1:
            return name
    return None


class Database:
    """A pool of connections to one database, opened on first use, one per process."""

    def __init__(self, url: str, max_size: int = 8, check: Callable[[Any, str], None] | None = None) -> None:
        self.url = check_url(url)
        self.max_size = max_size
        self.check = check  # run on the first connection (the schema version), before anything is read or written
        self._pool: Any = None
        self._opening = threading.Lock()

    def describe(self) -> str:
        return f"the PostgreSQL database {where(self.url)}"

    @property
    def pool(self) -> Any:
        with self._opening:  # the panel's threads may ask at once: one pool
            return self._pool if self._pool is not None else self._open()

    def _open(self) -> Any:
        import psycopg
        from psycopg_pool import ConnectionPool

        try:  # one direct connection first: a wrong URL or a server that is down is named at once
            with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
                if self.check is not None:
                    self.check(conn, self.url)
        except psycopg.Error as error:
            raise explain(error, self.url, "connecting") from None
        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.max_size,
            open=True,
            timeout=30,
            kwargs={"autocommit": True, "connect_timeout": 5},
            name="calibration-policy",
        )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    @contextlib.contextmanager
    def connection(self, doing: str = "reading") -> Iterator[Any]:
        """The connection of the transaction in progress (in this thread), else one of the pool's, in
        autocommit: each statement outside a change is its own transaction."""
        import psycopg

        held = _held.get()
        if held is not None and held.database is self:
            yield held.conn
            return
        kill_point()  # each statement outside a change commits on its own: a durable step
        try:
            with self.pool.connection() as conn:
                yield conn
        except psycopg.Error as error:
            raise explain(error, self.url, doing) from None

    @contextlib.contextmanager
    def transaction(self, doing: str, lock: tuple[int, str] | None = None, timeout: float = 120.0) -> Iterator[Any]:
        """One transaction for a whole change (nested calls join it); ``lock`` = (class, name) takes
        that advisory lock for the transaction, waiting at most ``timeout`` seconds."""
        import psycopg

        held = _held.get()
        if held is not None and held.database is self:
            if lock is not None:
                self._lock(held.conn, lock, timeout, doing)
            yield held.conn
            return
        try:
            with self.pool.connection() as conn:
                with conn.transaction():
                    if lock is not None:
                        self._lock(conn, lock, timeout, doing)
                    mine = _Held(self, conn)
                    token = _held.set(mine)
                    try:
                        yield conn
                    finally:
                        _held.reset(token)
                    kill_point()  # just before the commit: the server rolls the whole change back
        except psycopg.Error as error:
            raise explain(error, self.url, doing) from None
        for action in mine.after_commit:
            action()

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the transaction in progress commits (at once when there is none)."""
        held = _held.get()
        if held is not None and held.database is self:
            held.after_commit.append(action)
        else:
            action()

    @staticmethod
    def _lock(conn: Any, lock: tuple[int, str], timeout: float, doing: str) -> None:
        import psycopg

        kind, name = lock
        conn.execute(f"SET LOCAL lock_timeout = '{int(timeout * 1000)}ms'")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (kind, name))
        except psycopg.errors.LockNotAvailable:
            raise StoreError(
                f"Another change of {name} has held its lock for over {timeout:.0f} s while {doing}; try again."
            ) from None
        conn.execute("SET LOCAL lock_timeout = 0")

    def __repr__(self) -> str:
        return f"Database({mask(self.url)!r})"
