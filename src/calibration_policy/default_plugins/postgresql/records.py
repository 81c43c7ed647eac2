"""Policy versions and proposals in PostgreSQL: the file store's record folders as rows of one table."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.naming import check_record_id, numbered, utc_stamp

from .database import Database, insert_first_free

_INSERT = "INSERT INTO policy_records (kind, record_id, body) VALUES (%s, %s, %s::jsonb) ON CONFLICT DO NOTHING"


class TableRecords:
    """:class:`calibration_policy.stores.records.FolderRecords`'s interface over ``policy_records`` rows of one kind."""

    def __init__(self, db: Database, kind: str) -> None:
        self.db, self.kind = db, kind

    def list(self) -> list[tuple[str, dict[str, Any]]]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT record_id, body FROM policy_records WHERE kind = %s ORDER BY seq", (self.kind,)
            ).fetchall()
        return [(row[0], row[1]) for row in rows if isinstance(row[1], dict)]

    def read(self, record_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            row = conn.execute(
                "SELECT body FROM policy_records WHERE kind = %s AND record_id = %s",
                (self.kind, check_record_id(record_id, "record id")),
            ).fetchone()
        return row[0] if row and isinstance(row[0], dict) else None

    def create(self, at: datetime, data: dict[str, Any]) -> str:
        with self.db.connection("recording a policy change") as conn:
            name = insert_first_free(
                conn,
                numbered(utc_stamp(at), suffix=""),
                _INSERT,
                lambda name: (self.kind, name, json.dumps(data, default=str)),
            )
        if name is None:
            raise CalibrationPolicyError(
                f"Too many policy records share the moment {utc_stamp(at)}; nothing was written."
            )
        return name

    def put(self, record_id: str, data: dict[str, Any]) -> bool:
        with self.db.connection("copying a policy record") as conn:
            return (
                conn.execute(
                    _INSERT, (self.kind, check_record_id(record_id, "record id"), json.dumps(data, default=str))
                ).rowcount
                == 1
            )

    def replace(self, record_id: str, data: dict[str, Any]) -> None:
        with self.db.connection("recording a policy review") as conn:
            conn.execute(
                "UPDATE policy_records SET body = %s::jsonb WHERE kind = %s AND record_id = %s",
                (json.dumps(data, default=str), self.kind, check_record_id(record_id, "record id")),
            )
