"""Small append-mostly records a store keeps beside the runs: policy versions and policy proposals.

The file store keeps each as ``<folder>/<UTC stamp>[_n].json``; a database keeps them as rows. Either
way a record has an id (its stamp, numbered when two share one), a JSON object, and may be
replaced whole (a proposal's review); the caller's code (:mod:`calibration_policy.policy_versions`)
is the same on every store.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

FOLDERS = {"policy_versions": Path("policy_versions"), "policy_proposals": Path("policy_versions") / "proposals"}


class FolderRecords:
    """Records as JSON files in one folder (the file store's)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def list(self) -> list[tuple[str, dict[str, Any]]]:
        """Every readable record, oldest first (a damaged file is skipped, never fatal)."""
        from .. import foreign
        from ..naming import sequence_key

        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(
            (p for p in self.folder.glob("*.json") if not p.name.startswith(".")),
            key=lambda p: sequence_key(p.stem, p.stem[:23]),
        ):
            try:
                found.append((path.stem, foreign.read_record(path)))
            except (OSError, ValueError):
                continue
        return found

    def read(self, record_id: str) -> dict[str, Any] | None:
        from .. import foreign
        from ..naming import check_record_id

        try:
            return foreign.read_record(self.folder / f"{check_record_id(record_id, 'record id')}.json")
        except (OSError, ValueError):
            return None

    def create(self, at: datetime, data: dict[str, Any]) -> str:
        from ..naming import numbered, utc_stamp

        return self._create(numbered(utc_stamp(at)), data)

    def put(self, record_id: str, data: dict[str, Any]) -> bool:
        """Store a record under its own id (a migration from another store); False if it is here already."""
        from ..naming import check_record_id

        if (self.folder / f"{check_record_id(record_id, 'record id')}.json").exists():
            return False
        self._create(iter([f"{record_id}.json"]), data)
        return True

    def _create(self, names: Iterator[str], data: dict[str, Any]) -> str:
        """Write ``data`` under the first free of ``names``; its id."""
        from ..durable import create_exclusive, dumps

        self.folder.mkdir(parents=True, exist_ok=True)
        return create_exclusive(self.folder, names, dumps(data)).stem

    def replace(self, record_id: str, data: dict[str, Any]) -> None:
        from ..durable import atomic_replace, dumps
        from ..naming import check_record_id

        atomic_replace(self.folder / f"{check_record_id(record_id, 'record id')}.json", dumps(data))
