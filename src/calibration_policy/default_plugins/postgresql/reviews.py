"""Suggestions and their reviews in PostgreSQL: one row per suggestion, locked by ``SELECT … FOR UPDATE``.

Only the storage differs from the file store (:class:`ReviewStore`): proposing, expiring and the
review transitions are the same code. A suggestion is held for a whole review inside one
transaction, so an approval that also changes the live config commits with it, or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from calibration_policy.durable import dumps_model
from calibration_policy.errors import ReviewError
from calibration_policy.naming import check_record_id, numbered, utc_stamp
from calibration_policy.review import ReviewStore, Status, Suggestion

from .database import Database, insert_first_free

REVIEW_WAIT_SECONDS = 60
_INSERT = (
    "INSERT INTO suggestions (suggestion_id, target, status, created_at, body) VALUES (%s, %s, %s, %s, %s::jsonb) "
    "ON CONFLICT DO NOTHING"
)


def _body(item: Suggestion) -> str:
    return dumps_model(item, exclude={"suggestion_id"}).decode()


def _suggestion(suggestion_id: str, body: dict) -> Suggestion:
    try:
        return Suggestion.model_validate({**body, "suggestion_id": suggestion_id})
    except ValueError as error:
        raise ReviewError(f"Suggestion {suggestion_id} is unreadable ({str(error).splitlines()[0]}).") from None


class Reviews(ReviewStore):
    """The review queue of every domain, in the ``suggestions`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.directory = None

    def get(self, suggestion_id: str) -> Suggestion:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT body FROM suggestions WHERE suggestion_id = %s",
                (check_record_id(suggestion_id, "suggestion id"),),
            ).fetchone()
        if row is None:
            raise ReviewError(f"There is no suggestion {suggestion_id}.")
        return _suggestion(suggestion_id, row[0])

    def all(self, target: str | None = None, status: Status | None = None) -> list[Suggestion]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT suggestion_id, body FROM suggestions WHERE (%s::text IS NULL OR target = %s) "
                "AND (%s::text IS NULL OR status = %s)",
                (target, target, status, status),
            ).fetchall()
        return sorted((_suggestion(*row) for row in rows), key=Suggestion.order_key)

    def _create(self, item: Suggestion) -> Suggestion:
        with self.db.connection("proposing a suggestion") as conn:
            name = insert_first_free(
                conn,
                numbered(f"{utc_stamp(item.created_at)}_{item.target}", suffix=""),
                _INSERT,
                lambda name: (name, item.target, item.status, item.created_at, _body(item)),
            )
        if name is None:
            raise ReviewError(f"Too many suggestions for {item.target} share one moment; nothing was written.")
        return item.model_copy(update={"suggestion_id": name})

    def put(self, item: Suggestion) -> bool:
        with self.db.connection("copying a suggestion") as conn:
            return (
                conn.execute(
                    _INSERT,
                    (
                        check_record_id(item.suggestion_id, "suggestion id"),
                        item.target,
                        item.status,
                        item.created_at,
                        _body(item),
                    ),
                ).rowcount
                == 1
            )

    def _save(self, item: Suggestion) -> None:
        with self.db.connection("saving a suggestion") as conn:
            conn.execute(
                "UPDATE suggestions SET body = %s::jsonb, status = %s, version = version + 1 WHERE suggestion_id = %s",
                (_body(item), item.status, item.suggestion_id),
            )

    @contextlib.contextmanager
    def _locked(self, suggestion_id: str) -> Iterator[None]:
        """The suggestion's row lock, held by the transaction that the whole review runs in."""
        import psycopg

        self.get(suggestion_id)  # an unknown id fails here, plainly
        with self.db.transaction("reviewing a suggestion") as conn:
            try:
                conn.execute(f"SET LOCAL lock_timeout = '{REVIEW_WAIT_SECONDS}s'")
                conn.execute("SELECT 1 FROM suggestions WHERE suggestion_id = %s FOR UPDATE", (suggestion_id,))
                conn.execute("SET LOCAL lock_timeout = 0")
            except psycopg.errors.LockNotAvailable:
                raise ReviewError(
                    f"Suggestion {suggestion_id} is being reviewed by someone else right now; try again."
                ) from None
            yield
