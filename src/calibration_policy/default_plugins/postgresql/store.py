"""The PostgreSQL store: several machines share one history, one review queue and one live config."""

from __future__ import annotations

from typing import Any

from .archive import TargetArchive
from .database import TARGET_LOCK, Database
from .intents import Intents
from .outbox import TableOutbox
from .records import TableRecords
from .reviews import Reviews
from .runs import Runs
from .schema import require_current
from .target import DatabaseTarget


class PostgresStore:
    """Every part in one database; a change is one transaction under the target's advisory lock."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.db = Database(url, max_size=16, check=require_current)
        self._runs, self._reviews, self._intents = Runs(self.db), Reviews(self.db), Intents(self.db)
        self._outbox = TableOutbox(self.db)

    def runs(self, history_dir: Any = None) -> Runs:
        return self._runs

    def reviews(self, suggestions_dir: Any = None) -> Reviews:
        return self._reviews

    def archive(self, archive_dir: Any, target_name: str) -> TargetArchive:
        return TargetArchive(self.db, target_name)

    def lock(self, target: Any, timeout: float) -> Any:
        return self.db.transaction(f"changing {target.name}", lock=(TARGET_LOCK, target.name), timeout=timeout)

    @property
    def intents(self) -> Intents:
        return self._intents

    def govern(self, target: Any) -> Any:
        return target if isinstance(target, DatabaseTarget) else DatabaseTarget(self.db, target)

    def targets(self, archive_dir: Any = None) -> list[str]:
        with self.db.connection() as conn:
            return [
                row[0] for row in conn.execute("SELECT DISTINCT target FROM config_archive ORDER BY target").fetchall()
            ]

    def records(self, kind: str, folder: Any = None) -> TableRecords:
        return TableRecords(self.db, kind)

    def outbox(self, data_dir: Any = None) -> TableOutbox:
        return self._outbox

    def current_policy(self) -> dict[str, Any] | None:
        """The newest policy version's settings: every machine decides by the same policy."""
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT body -> 'policy' FROM policy_records WHERE kind = 'policy_versions' ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return row[0] if row and isinstance(row[0], dict) else None

    def describe(self) -> str:
        return self.db.describe()

    def close(self) -> None:
        self.db.close()
