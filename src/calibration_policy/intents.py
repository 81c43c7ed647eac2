"""Write-ahead intents: a change that writes several files first says what it will do.

Before an update, force-apply, approval or modification writes anything, it records an intent
(what will change, from which version, for which run or suggestion) in the target's archive
folder (``<archive>/.intents/<target>/``), holds a lock on it while it works, and removes it
when done. A process killed in between leaves the intent behind, unlocked; the next change of
that target (or ``calibration-policy doctor --repair``) finds it with one directory listing and
settles it: completes what reached the live config, undoes (records as not applied) what did not.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from . import foreign
from .archive import now_utc, resolve_archive_dir
from .durable import atomic_replace, dumps, read_json
from .errors import HistoryError
from .naming import check_record_id, utc_stamp

FOLDER = ".intents"


def intents_dir(archive_dir: str | os.PathLike[str] | None, target_name: str) -> Path:
    """``<archive>/.intents/<target>/``: beside the archive, so a change that archives nothing leaves no target folder."""
    return resolve_archive_dir(archive_dir) / FOLDER / check_record_id(target_name, "target name")


@dataclass
class Intent:
    """One recorded intent; ``data`` is what it says it will do."""

    path: Path
    data: dict[str, Any]
    lock: FileLock | None = None
    created: tuple[Path, ...] = ()  # folders this intent made, removed again when done if empty

    @property
    def intent_id(self) -> str:
        return self.path.stem

    def note(self, **info: Any) -> None:
        """Add what became known on the way (the run id once recorded, the decision …)."""
        self.data.update({k: v for k, v in info.items()})
        atomic_replace(self.path, dumps(self.data))

    def done(self) -> None:
        """The change is complete: remove the intent, then let go of its lock."""
        try:  # not flushed: an intent that comes back after a power cut settles as already complete
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # left behind, it is settled (as complete) by the next change
        finally:
            self.release(forget=True)
        for folder in reversed(self.created):  # a change that archived nothing leaves no folder behind
            try:
                folder.rmdir()
            except OSError:
                break

    def release(self, forget: bool = False) -> None:
        if self.lock is not None:
            if forget:  # no lock file left behind per change
                Path(self.lock.lock_file).unlink(missing_ok=True)
            self.lock.release()
            self.lock = None


def _try_lock(folder: Path, intent_id: str) -> FileLock | None:
    """The intent's lock, held; None when its writer still holds it.

    Another change that finishes removes the folders it made once empty, possibly between our
    mkdir and our lock, so a vanished folder is made again and the lock tried again.
    """
    locks = folder / ".locks"
    for attempt in range(5):
        try:
            _make_folder(locks)
            lock = FileLock(str(locks / f"{intent_id}.lock"), timeout=0)
            lock.acquire()
            return lock
        except Timeout:
            return None
        except FileNotFoundError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _make_folder(folder: Path) -> None:
    """``mkdir -p``, made again when another change's clean-up removes it mid-way.

    ``Path.mkdir(exist_ok=True)`` reports a folder that existed at its mkdir and was removed (empty, by a
    finishing change) before its own check as "exists and is not a folder"; only a path that is still
    there and not a folder is that.
    """
    for attempt in range(5):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return
        except (FileExistsError, FileNotFoundError):
            if attempt == 4 or any(p.exists() and not p.is_dir() for p in (folder, *folder.parents)):
                raise


def begin(archive_dir: str | os.PathLike[str] | None, target_name: str, kind: str, **info: Any) -> Intent:
    """Record (durably) that ``kind`` is about to change ``target_name``; the caller holds its lock until done."""
    # A damaged archive (the target's folder replaced by a file) fails here, before an intent is written.
    foreign.check_folder(
        resolve_archive_dir(archive_dir) / check_record_id(target_name, "target name"), "archive folder"
    )
    folder = intents_dir(archive_dir, target_name)
    created = tuple(p for p in (folder.parent.parent, folder.parent, folder, folder / ".locks") if not p.exists())
    try:
        _make_folder(folder)
    except (FileExistsError, NotADirectoryError) as error:
        raise foreign.folder_error(folder.parent, "archive folder", error) from None
    except OSError as error:
        raise HistoryError(
            f"Cannot create the intents folder {folder}: {os.strerror(error.errno) if error.errno else error}. "
            "Nothing was changed."
        ) from None
    intent_id = f"{utc_stamp(now_utc())}_{secrets.token_hex(4)}"
    lock = _try_lock(folder, intent_id)  # a fresh id: nobody else holds it
    data = {"kind": kind, "target": target_name, "started_at": now_utc().isoformat(), "pid": os.getpid(), **info}
    intent = Intent(folder / f"{intent_id}.json", data, lock, created)
    try:
        atomic_replace(intent.path, dumps(data))
    except BaseException:
        intent.release()
        raise
    return intent


def pending_names(archive_dir: str | os.PathLike[str] | None, target_name: str) -> list[str]:
    """Intent files of the target (one directory listing; empty when the folder is absent)."""
    try:
        names = os.listdir(intents_dir(archive_dir, target_name))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(n for n in names if n.endswith(".json") and not n.startswith("."))


def abandoned(archive_dir: str | os.PathLike[str] | None, target_name: str) -> Iterator[Intent]:
    """Intents whose writer is gone (their lock is free), each locked by us while the caller settles it.

    An intent whose writer still works is skipped: it is not interrupted, only in progress.
    """
    folder = intents_dir(archive_dir, target_name)
    for name in pending_names(archive_dir, target_name):
        intent_id = name.removesuffix(".json")
        lock = _try_lock(folder, intent_id)
        if lock is None:
            continue
        path = folder / name
        try:
            data = read_json(path)
        except FileNotFoundError:  # finished between the listing and the lock: leave no lock file behind
            Intent(path, {}, lock).release(forget=True)
            continue
        except ValueError:
            data = {"kind": "unreadable"}
        yield Intent(path, data if isinstance(data, dict) else {"kind": "unreadable"}, lock)


def in_progress(archive_dir: str | os.PathLike[str] | None, target_name: str) -> list[str]:
    """Ids of intents whose writer still holds them (a change running right now)."""
    folder = intents_dir(archive_dir, target_name)
    busy = []
    for name in pending_names(archive_dir, target_name):
        lock = _try_lock(folder, name.removesuffix(".json"))
        if lock is None:
            busy.append(name.removesuffix(".json"))
        else:  # abandoned, or finished since the listing (then its lock file goes too)
            Intent(folder / name, {}, lock).release(forget=not (folder / name).exists())
    return busy
