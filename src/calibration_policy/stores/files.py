"""The file store: the data folder, one JSON file per record (the default; right for one machine).

Each part is the core's own file class; this module only says which, so the pipeline can ask any
store the same way.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from filelock import FileLock, Timeout

from .. import intents as file_intents
from ..errors import TargetError

_runs: dict[tuple[str, int], Any] = {}
_runs_lock = threading.Lock()


class FileStore:
    """Runs in ``calibration_runs/``, suggestions in ``suggestions/``, archives and intents in ``config_archive/``."""

    name = "files"

    def runs(self, history_dir: Any = None) -> Any:
        """One :class:`HistoryStore` per folder and process (it keeps the folder's name index open)."""
        from ..history import HistoryStore, resolve_history_dir

        key = (str(resolve_history_dir(history_dir).absolute()), os.getpid())
        with _runs_lock:
            store = _runs.get(key)
            if store is None:
                store = _runs[key] = HistoryStore(key[0])
            return store

    def reviews(self, suggestions_dir: Any = None) -> Any:
        from ..review import ReviewStore

        return ReviewStore(suggestions_dir)

    def archive(self, archive_dir: Any, target_name: str) -> Any:
        from ..archive import Archive

        return Archive(archive_dir, target_name)

    def lock(self, target: Any, timeout: float) -> Any:
        return FileTargetLock(target, timeout)

    @property
    def intents(self) -> Any:
        return file_intents

    def govern(self, target: Any) -> Any:
        return target  # the host's own file is the live config

    def targets(self, archive_dir: Any = None) -> list[str]:
        from ..archive import resolve_archive_dir

        try:
            return sorted(p.name for p in resolve_archive_dir(archive_dir).iterdir() if p.is_dir() and not p.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def describe(self) -> str:
        from ..paths import data_root

        return f"the data folder {data_root()}"


class FileTargetLock:
    """A lock file beside the live config (a lock on the config itself would die when it is replaced)."""

    def __init__(self, target: Any, timeout: float) -> None:
        self.target, self.lock = target, FileLock(str(target.lock_path), timeout=timeout)

    def __enter__(self) -> "FileTargetLock":
        try:
            self.lock.acquire()
        except Timeout:
            raise TargetError(
                f"Another update of {self.target.name} has held its lock for over {self.lock.timeout:.0f} s; "
                f"try again, or remove {self.target.lock_path} if no update is running."
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
