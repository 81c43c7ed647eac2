"""Calibration runs in PostgreSQL: the file store's run ids, order and cursors, one row per run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from calibration_policy.durable import dumps_model
from calibration_policy.errors import HistoryError
from calibration_policy.history import _check_limit, cursor_key, position_key
from calibration_policy.index import Key
from calibration_policy.models import CalibrationRun
from calibration_policy.naming import check_record_id, check_underlying, numbered, parse_run_file_name, utc_stamp

from .database import Database, insert_first_free

_COLUMNS = "run_id, body"
_NEWEST = "ORDER BY stamp DESC, seq DESC, run_id DESC"
_OLDEST = "ORDER BY stamp, seq, run_id"


_INSERT = (
    "INSERT INTO calibration_runs (run_id, underlying, stamp, seq, at, source, body) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) ON CONFLICT (run_id) DO NOTHING"
)


def _body(run: CalibrationRun) -> str:
    return dumps_model(run, exclude={"run_id"}).decode()


def _row(run: CalibrationRun, run_id: str, body: str) -> tuple[Any, ...]:
    """The columns of a run stored as ``run_id``: its stamp and number come from the id, as the file store's name."""
    stamp, _, _, seq = parse_run_file_name(run_id + ".json")  # type: ignore[misc]
    return (run_id, run.underlying, stamp, seq, run.timestamp, run.source, body)


def _run(row: tuple[str, dict[str, Any]]) -> CalibrationRun:
    return CalibrationRun.model_validate({**row[1], "run_id": row[0]})


class Runs:
    """:class:`calibration_policy.history.HistoryStore`'s interface over the ``calibration_runs`` table."""

    directory = None

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, run: CalibrationRun) -> CalibrationRun:
        """Store a new run under the id the file store would give it (``<stamp>_<underlying>_<source>[_n]``)."""
        stamp, body = utc_stamp(run.timestamp), _body(run)
        with self.db.connection("recording a run") as conn:
            name = insert_first_free(
                conn,
                numbered(f"{stamp}_{run.underlying}_{run.source}", suffix="", limit=1_000_000),
                _INSERT,
                lambda name: _row(run, name, body),
            )
        if name is None:
            raise HistoryError(f"Too many runs of {run.underlying} share the moment {stamp}; nothing was written.")
        return run.model_copy(update={"run_id": name})

    def put(self, run: CalibrationRun) -> bool:
        """Store a run under its own id (a migration from another store); False if it is here already."""
        if parse_run_file_name(check_record_id(run.run_id, "run id") + ".json") is None:
            raise HistoryError(f"{run.run_id!r:.60} is not a run id.")
        with self.db.connection("copying a run") as conn:
            return conn.execute(_INSERT, _row(run, run.run_id, _body(run))).rowcount == 1

    def save(self, run: CalibrationRun) -> None:
        """Write back a decided run, in the change's transaction when there is one."""
        with self.db.connection("updating a run") as conn:
            done = conn.execute(
                "UPDATE calibration_runs SET body = %s::jsonb, version = version + 1 WHERE run_id = %s",
                (_body(run), check_record_id(run.run_id, "run id")),
            ).rowcount
        if not done:
            raise HistoryError(f"Run {run.run_id} is not in {self.db.describe()}; record it first.")

    def get(self, run_id: str) -> CalibrationRun:
        with self.db.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM calibration_runs WHERE run_id = %s", (check_record_id(run_id, "run id"),)
            ).fetchone()
        if row is None:
            raise HistoryError(f"There is no readable run {run_id} in {self.db.describe()}.")
        return _run(row)

    def _page(
        self, underlying: str, where: str, params: tuple[Any, ...], order: str, limit: int | None, offset: int = 0
    ) -> list[CalibrationRun]:
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM calibration_runs WHERE underlying = %s {where} {order} LIMIT %s OFFSET %s",
                (underlying, *params, limit, offset),
            ).fetchall()
        return [_run(row) for row in rows]

    def _cursor(self, underlying: str, cursor: str | Key | None) -> tuple[str, int, str] | None:
        """The file store's paging key, with the run id where it has the file name."""
        key = cursor_key(underlying, cursor)
        return None if key is None else (key[0], key[1], key[2].removesuffix(".json"))

    def latest(
        self, underlying: str, limit: int = 50, offset: int = 0, before: str | Key | None = None
    ) -> list[CalibrationRun]:
        """The newest ``limit`` runs of ``underlying`` (older than the cursor ``before``), oldest first."""
        underlying, limit = check_underlying(underlying), _check_limit(limit)
        key = self._cursor(underlying, before)
        where, params = ("AND (stamp, seq, run_id) < (%s, %s, %s)", key) if key else ("", ())
        runs = self._page(underlying, where, params, _NEWEST, limit, max(0, int(offset or 0)))
        runs.reverse()
        return runs

    def oldest(self, underlying: str, limit: int = 50, after: str | Key | None = None) -> list[CalibrationRun]:
        underlying, limit = check_underlying(underlying), _check_limit(limit)
        key = self._cursor(underlying, after)
        where, params = ("AND (stamp, seq, run_id) > (%s, %s, %s)", key) if key else ("", ())
        return self._page(underlying, where, params, _OLDEST, limit)

    def position(self, underlying: str, cursor: str | Key) -> int:
        underlying = check_underlying(underlying)
        stamp, seq, name = position_key(underlying, cursor)
        with self.db.connection() as conn:
            return conn.execute(
                "SELECT count(*) FROM calibration_runs WHERE underlying = %s AND (stamp, seq, run_id) >= (%s, %s, %s)",
                (underlying, stamp, seq, name.removesuffix(".json")),
            ).fetchone()[0]

    def between(self, underlying: str, start: datetime, end: datetime) -> list[CalibrationRun]:
        underlying = check_underlying(underlying)
        low, high = utc_stamp(start), utc_stamp(end)
        return self._page(underlying, "AND stamp >= %s AND stamp <= %s", (low, high), _OLDEST, None)

    def count(self, underlying: str) -> int:
        with self.db.connection() as conn:
            return conn.execute(
                "SELECT count(*) FROM calibration_runs WHERE underlying = %s", (check_underlying(underlying),)
            ).fetchone()[0]

    def underlyings(self) -> list[str]:
        """Each distinct underlying with one index probe (a skip scan), not a scan of every run."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "WITH RECURSIVE u(x) AS (SELECT min(underlying) FROM calibration_runs UNION ALL "
                "SELECT (SELECT min(underlying) FROM calibration_runs WHERE underlying > u.x) FROM u WHERE u.x IS NOT NULL) "
                "SELECT x FROM u WHERE x IS NOT NULL"
            ).fetchall()
        return [row[0] for row in rows]

    def reindex(self) -> int:
        """Nothing to rebuild (the database keeps its indexes); the number of runs."""
        with self.db.connection() as conn:
            return conn.execute("SELECT count(*) FROM calibration_runs").fetchone()[0]

    def sweep(self, older_than_seconds: float = 60.0) -> int:
        return 0  # no temp files: a killed writer's transaction was rolled back by the server
