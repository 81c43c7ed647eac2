"""Foreign files in a data folder: skipped with one warning each, never a reason for a load to fail.

A data folder (the history, the archive, the suggestions) may hold things none of our writers
made: a FIFO, a symbolic link, a directory, a huge file, a name that is not UTF-8 or not a valid
record name, a truncated JSON. Each is skipped and logged once per process (this module
remembers what it warned about), and the loads go on with the records that are fine.

:func:`read_record` is the one way a record file is opened: it never follows a symbolic link
(so nothing outside the folder is ever read), never opens anything but a regular file (a FIFO
would block the reader for ever, a device could have side effects) and never reads more than
:data:`MAX_RECORD_BYTES`. :func:`foreign_files` lists what a folder holds that is not a valid
record, with the reason in words, for a ``doctor`` command.

A damaged *folder* is different: a file where the folder should be, or a folder that cannot be
listed, hides every record in it, so :func:`check_folder` raises a :class:`DataFolderError`
naming the folder and what to do rather than answer "no records".
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import DataFolderError
from .redact import get_logger

log = get_logger(__name__)

MAX_RECORD_BYTES = 16 * 1024 * 1024  # a run, suggestion or archive entry is a few kB; 16 MB is no record
MAX_REMEMBERED = 10_000  # warnings remembered per process; past that, one summary line instead of one per file
FolderKind = Literal["history", "archive", "suggestions"]
FOLDER_WORDS = {"history": "history folder", "archive": "archive folder", "suggestions": "suggestions folder"}


class ForeignFileError(ValueError):
    """A file in a data folder that is not a readable record; the message says why (no path)."""


@dataclass(frozen=True)
class ForeignFile:
    """One entry of a data folder that is not a valid record, and why."""

    path: Path
    reason: str

    @property
    def name(self) -> str:
        return shown_name(self.path.name)

    def text(self) -> str:
        return f"{self.name}: {self.reason}"


def shown_name(name: str) -> str:
    """A file name fit to print: bytes that are not UTF-8 (``os.fsdecode`` keeps them as lone
    surrogates, which cannot even be logged or stored) are shown as ``\\xff``."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# -- warning once --------------------------------------------------------------------------------

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()
_overflowed = False


def warn_once(logger: logging.Logger, message: str, path: os.PathLike[str] | str, reason: str) -> None:
    """Log ``message % (path, reason)`` at WARNING the first time this path has this problem.

    Loads run on every request; a foreign file that stays must not fill the log, so each
    (path, reason) is reported once per process. A different problem with the same file (it was
    replaced by another broken one) is reported again.
    """
    global _overflowed
    key = (os.path.abspath(os.fsdecode(path)), reason)
    with _warned_lock:
        if key in _warned:
            return
        if len(_warned) >= MAX_REMEMBERED:
            if _overflowed:
                return
            _overflowed = True
            message, reason = "Skipping more foreign or unreadable files (first: %s: %s); not listing each one.", reason
        _warned.add(key)
    logger.warning(message, shown_name(os.fsdecode(path)), reason)


def forget_warnings() -> None:
    """Warn again about everything (for tests, or after an operator cleaned a folder)."""
    global _overflowed
    with _warned_lock:
        _warned.clear()
        _overflowed = False


# -- reading one record ------------------------------------------------------------------------------


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISLNK(mode):
        return "a symbolic link, which is never followed"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:,.1f} MB" if count >= 1024 * 1024 else f"{count:,} bytes"


def _reason(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else str(error)


def read_record(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> dict[str, Any]:
    """The JSON object in a record file that is a small regular file in place.

    Raises ``FileNotFoundError`` if it is gone (deleted between listing and reading: not a
    problem), ``NotADirectoryError`` if its folder is a file (see :func:`check_folder`), and
    :class:`ForeignFileError` saying why it is not a record otherwise.
    """
    return read_record_and_stat(path, max_bytes)[0]


def read_record_and_stat(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> tuple[dict[str, Any], os.stat_result]:
    """:func:`read_record`, and the file's status as it was opened (before it was read): a cache of
    what was read can tell by it whether the file changed since."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # gone, or its folder is (the caller checks the folder)
        raise
    except OSError as error:
        raise ForeignFileError(f"cannot be examined ({_reason(error)})") from None
    if not stat.S_ISREG(info.st_mode):  # decided before opening: a FIFO or a device is never opened
        raise ForeignFileError(f"is {_kind(info.st_mode)}, not a record file")
    if info.st_size > max_bytes:
        raise ForeignFileError(f"is {_size(info.st_size)}, more than a record can be ({_size(max_bytes)})")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as error:
        if error.errno == errno.ELOOP:  # swapped for a symlink since the lstat
            raise ForeignFileError(f"is {_kind(stat.S_IFLNK)}, not a record file") from None
        raise ForeignFileError(f"cannot be read ({_reason(error)})") from None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):  # swapped since the lstat
            raise ForeignFileError(f"is {_kind(opened.st_mode)}, not a record file")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1024 * 1024, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as error:
        raise ForeignFileError(f"cannot be read ({_reason(error)})") from None
    finally:
        os.close(fd)
    if total > max_bytes:
        raise ForeignFileError(f"is more than a record can be ({_size(max_bytes)})")
    raw = b"".join(chunks)
    try:
        data = json.loads(raw.decode("utf-8-sig"))  # our records are UTF-8; json.loads(bytes) would guess UTF-16
    except UnicodeDecodeError:
        raise ForeignFileError("is not UTF-8 text") from None
    except ValueError as error:
        shown = "it is empty" if not raw.strip() else str(error)
        raise ForeignFileError(f"is not valid JSON ({shown}; a truncated or half-written file?)") from None
    except RecursionError:
        raise ForeignFileError("is not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ForeignFileError(f"holds a JSON {type(data).__name__}, not a JSON object")
    return data, opened


# -- damaged folders -----------------------------------------------------------------------------------


def check_folder(folder: Path, what: str) -> bool:
    """True if ``folder`` is a folder, False if it does not exist (yet): then there are no records.

    Anything else hides every record, so it raises :class:`DataFolderError` naming the folder:
    a file in its place (or in place of a folder above it), or a folder that cannot be read.
    """
    try:
        info = os.stat(folder)
    except FileNotFoundError:
        if os.path.islink(folder):  # a link to a folder that is gone hides the records as surely as a file
            raise _dangling(folder, what) from None
        return False
    except NotADirectoryError:
        raise _not_a_folder(folder, what) from None
    except OSError as error:
        raise folder_error(folder, what, error) from None
    if not stat.S_ISDIR(info.st_mode):
        raise _not_a_folder(folder, what) from None
    return True


def _blocking_file(folder: Path) -> Path:
    """The path that is a file where a folder should be: ``folder`` itself or one above it."""
    for candidate in reversed([folder, *folder.parents]):
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            return folder
        if not stat.S_ISDIR(mode):
            return candidate
    return folder


def _not_a_folder(folder: Path, what: str) -> DataFolderError:
    blocking = _blocking_file(folder)
    problem = "it is a file, not a folder" if blocking == folder else f"{blocking} is a file where a folder should be"
    return DataFolderError(
        f"Cannot use the {what} {folder}: {problem}. Move that file aside (or restore the folder from a backup) "
        "and try again; nothing was changed."
    )


def _dangling(folder: Path, what: str) -> DataFolderError:
    return DataFolderError(
        f"Cannot use the {what} {folder}: it is a symbolic link to {os.readlink(folder)}, which does not exist. "
        "Mount or restore that folder, or remove the link, and try again; nothing was changed."
    )


def folder_error(folder: Path, what: str, error: OSError) -> DataFolderError:
    """The plain sentence for a data folder the OS refuses to list or write."""
    if isinstance(error, FileExistsError) and os.path.islink(folder) and not os.path.exists(folder):
        return _dangling(folder, what)
    if isinstance(error, (NotADirectoryError, FileExistsError)):
        return _not_a_folder(folder, what)
    reason = _reason(error)
    if error.errno in (errno.EACCES, errno.EPERM):
        remedy = "give the user that runs calibration-policy (or the panel) read and write access to it"
    else:
        remedy = "check the disk and the folder, then try again"
    return DataFolderError(f"Cannot read the {what} {folder} ({reason}); {remedy}. Nothing was changed.")


def list_folder(folder: Path, what: str) -> list[os.DirEntry[str]]:
    """The entries of a data folder ([] if it does not exist); a damaged folder raises."""
    if not check_folder(folder, what):
        return []
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except FileNotFoundError:
        return []
    except OSError as error:
        raise folder_error(folder, what, error) from None


# -- listing what is foreign ------------------------------------------------------------------------------
