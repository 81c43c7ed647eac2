"""The file store: the data folder, one JSON file per record (the default; right for one machine).

Each part is the core's own file class; this module only says which, so the pipeline can ask any
store the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .. import intents as file_intents
from ..errors import TargetError


class FileStore:
    """Runs in ``calibration_runs/``, suggestions in ``suggestions/``, archives and intents in ``config_archive/``."""

    name = "files"

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else None  # None: the data root and folder settings in force

    def _in_root(self, given: Any, folder: str) -> Any:
        return given if given is not None or self.root is None else self.root / folder

    def runs(self, history_dir: Any = None) -> Any:
        from ..history import open_history

        return open_history(self._in_root(history_dir, "calibration_runs"))

    def reviews(self, suggestions_dir: Any = None) -> Any:
        from ..review import ReviewStore

        return ReviewStore(self._in_root(suggestions_dir, "suggestions"))

    def archive(self, archive_dir: Any, target_name: str) -> Any:
        from ..archive import Archive

        return Archive(self._in_root(archive_dir, "config_archive"), target_name)

    def lock(self, target: Any, timeout: float) -> Any:
        return FileTargetLock(target, timeout)

    @property
    def intents(self) -> Any:
        return file_intents

    def govern(self, target: Any) -> Any:
        return target  # the host's own file is the live config

    def targets(self, archive_dir: Any = None) -> list[str]:
        from ..archive import resolve_archive_dir

        root = resolve_archive_dir(self._in_root(archive_dir, "config_archive"))
        try:
            return sorted(
                e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
            )
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return []

    def records(self, kind: str, folder: Path | None = None) -> Any:
        """Policy versions (``<data>/policy_versions``) or proposals (``…/proposals``), unless ``folder`` says where."""
        from ..paths import data_root
        from .records import FOLDERS, FolderRecords

        return FolderRecords(folder if folder is not None else (self.root or data_root()) / FOLDERS[kind])

    def outbox(self, data_dir: Any = None) -> Any:
        """Events waiting for delivery and their delivery log, in ``<data root>/outbox/``."""
        from ..history import resolve_history_dir
        from ..outbox import FileOutbox

        return FileOutbox(data_dir if data_dir is not None else (self.root or resolve_history_dir(None).parent))

    def current_policy(self) -> dict[str, Any] | None:
        return None  # the policy file in the data folder is the policy in force (a policy change writes it)

    def describe(self) -> str:
        from ..paths import data_root

        return f"the data folder {(self.root or data_root()).absolute()}"


class FileTargetLock:
    """A lock file beside the live config (a lock on the config itself would die when it is replaced)."""

    def __init__(self, target: Any, timeout: float) -> None:
        self.target, self.lock = target, FileLock(str(target.lock_path), timeout=timeout)

    def __enter__(self) -> FileTargetLock:
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
