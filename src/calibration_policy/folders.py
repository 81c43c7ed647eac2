"""What the data folders hold that is not a valid record: the listing ``doctor`` reads.

Kept apart from :mod:`.foreign` (the safe reading every load uses) because validating a record
needs the record models of the history, the archive and the review store, which read through
:mod:`.foreign` themselves.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import ValidationError

from .archive import ArchiveEntry, resolve_archive_dir
from .errors import DataFolderError
from .foreign import (
    FOLDER_WORDS,
    FolderKind,
    ForeignFile,
    ForeignFileError,
    _kind,
    _reason,
    list_folder,
    read_record,
)
from .history import resolve_history_dir
from .models import CalibrationRun
from .naming import (
    _RECORD_ID,
    is_archive_file_name,
    is_suggestion_file_name,
    parse_run_file_name,
)
from .review import Suggestion, resolve_suggestions_dir


def _is_text_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_content(path: Path, kind: FolderKind) -> str | None:
    """Why the record at ``path`` is not valid, or None if it is."""
    try:
        data = read_record(path)
    except FileNotFoundError:
        return None
    except ForeignFileError as error:
        return str(error)
    stem = path.name.removesuffix(".json")
    try:
        if kind == "history":
            run = CalibrationRun.model_validate({**data, "run_id": stem})
            if run.underlying != parse_run_file_name(path.name)[1]:  # type: ignore[index]
                return f"holds a run of {run.underlying}, which does not match its file name"
        elif kind == "archive":
            ArchiveEntry.model_validate({**data, "change_id": stem})
        else:
            Suggestion.model_validate({**data, "suggestion_id": stem})
    except ValidationError as error:
        item = error.errors()[0]
        field = ".".join(str(p) for p in item["loc"]) or "record"
        return f"is not a valid record ({field}: {item['msg'].removeprefix('Value error, ')})"
    except ValueError as error:
        return f"is not a valid record ({str(error).splitlines()[0]})"
    return None


def _entry_problem(entry: os.DirEntry[str], kind: FolderKind, check_content: bool) -> str | None:
    name = entry.name
    if not _is_text_name(name):
        return "its name is not valid UTF-8, so it is not a record"
    valid = {
        "history": lambda: parse_run_file_name(name) is not None,
        "archive": lambda: is_archive_file_name(name),
        "suggestions": lambda: is_suggestion_file_name(name),
    }[kind]()
    if not valid:
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError:
            mode = 0
        what = "a directory" if stat.S_ISDIR(mode) else "a file"
        expected = {
            "history": "<stamp>_<SYMBOL>_<source>.json",
            "archive": "<stamp>.json",
            "suggestions": "<stamp>_<target>.json",
        }[kind]
        return f"{what} whose name is not a record name ({expected}), so it is ignored"
    if check_content:
        return _check_content(Path(entry.path), kind)
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError as error:
        return f"cannot be examined ({_reason(error)})"
    if not stat.S_ISREG(info.st_mode):
        return f"is {_kind(info.st_mode)}, not a record file"
    return None


def foreign_files(
    folder: str | os.PathLike[str], kind: FolderKind = "history", *, check_content: bool = True
) -> list[ForeignFile]:
    """What ``folder`` holds that is not a valid record of ``kind``, with the reason, by name.

    ``kind`` is ``history`` (the runs), ``suggestions`` or ``archive`` (the archive root: one
    folder per target, each holding that target's changes). Our own hidden entries (``.index``,
    ``.locks``, ``.tmp-*`` files) are not listed. With ``check_content`` (the default) each
    record is also read and validated, so a truncated or invalid one is listed too; that reads
    every file, so it is for a ``doctor`` command, not for every load.

    A missing folder has nothing foreign; a damaged one (a file in its place, unreadable) raises
    :class:`DataFolderError`.
    """
    folder = Path(folder)
    what = FOLDER_WORDS[kind]
    found: list[ForeignFile] = []
    for entry in sorted(list_folder(folder, what), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if kind == "archive":
            found.extend(_foreign_in_archive_entry(entry, check_content))
            continue
        problem = _entry_problem(entry, kind, check_content)
        if problem:
            found.append(ForeignFile(Path(entry.path), problem))
    return found


def _foreign_in_archive_entry(entry: os.DirEntry[str], check_content: bool) -> list[ForeignFile]:
    path = Path(entry.path)
    if not _is_text_name(entry.name) or not _RECORD_ID.fullmatch(entry.name) or ".." in entry.name:
        return [ForeignFile(path, "its name is not a target name, so it is not an archive of any target")]
    try:
        is_folder = entry.is_dir(follow_symlinks=False)
    except OSError:
        is_folder = False
    if not is_folder:
        return [ForeignFile(path, "is not a folder; each archived target is a folder of changes")]
    found = []
    for inner in sorted(list_folder(path, "archive folder"), key=lambda e: e.name):
        if inner.name.startswith("."):
            continue
        problem = _entry_problem(inner, "archive", check_content)
        if problem:
            found.append(ForeignFile(Path(inner.path), problem))
    return found


def data_folder_report(
    history_dir: str | os.PathLike[str] | None = None,
    archive_dir: str | os.PathLike[str] | None = None,
    suggestions_dir: str | os.PathLike[str] | None = None,
    *,
    check_content: bool = True,
) -> dict[Path, list[ForeignFile] | DataFolderError]:
    """:func:`foreign_files` of all three data folders (the defaults as the CLI resolves them);
    a damaged folder maps to its error instead of a list."""
    report: dict[Path, list[ForeignFile] | DataFolderError] = {}
    for folder, kind in (
        (resolve_history_dir(history_dir), "history"),
        (resolve_archive_dir(archive_dir), "archive"),
        (resolve_suggestions_dir(suggestions_dir), "suggestions"),
    ):
        try:
            report[folder] = foreign_files(folder, kind, check_content=check_content)  # type: ignore[arg-type]
        except DataFolderError as error:
            report[folder] = error
    return report
