"""Crash-safe file writes: a reader sees the whole old file or the whole new one, never half.

Every write goes to a temporary file in the same directory, is fsynced, then moved into place
(``os.replace`` to update, ``os.link`` to create without ever overwriting), and the directory
is fsynced so the new name survives a power cut. Temp files start with ``.tmp-`` so loaders
ignore them and :func:`sweep_orphans` can remove what a killed writer left behind.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pydantic_core

from .errors import CalibrationPolicyError, InvalidRunError

TMP_PREFIX = ".tmp-"

# Deterministic kill points for the crash tests: with ``$CALIBRATION_POLICY_KILL_AT=n`` (or
# ``set_kill_point(n)`` in a forked child) the process dies (``os._exit``) just before its n-th
# durable step — every fsync and every rename/link below. 0 (the default) never kills.
KILL_EXIT_CODE = 86
_kill_at = int(os.environ.get("CALIBRATION_POLICY_KILL_AT", "0") or 0)
_steps = 0


def set_kill_point(n: int) -> None:
    """Kill before the ``n``-th durable step from now (0: never). For tests."""
    global _kill_at, _steps
    _kill_at, _steps = n, 0


def durable_steps() -> int:
    """How many durable steps ran since the last :func:`set_kill_point`."""
    return _steps


def kill_point() -> None:
    """A durable step of a store's own (a database commit): where the crash tests may kill the process."""
    _step()


def _step() -> None:
    global _steps
    _steps += 1
    if _kill_at and _steps >= _kill_at:
        os._exit(KILL_EXIT_CODE)


def find_non_finite(value: Any, path: str = "") -> str | None:
    """The dotted path of the first NaN/inf inside ``value``, so the error can name it."""
    return _path_of_non_finite(value, path) if _holds_non_finite(value) else None


def _holds_non_finite(value: Any) -> bool:
    """Whether ``value`` holds a NaN/inf: the walk every record takes, without building a path per value (that
    walk took a tenth of a record's time); the path is built only when there is one to name."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, (list, tuple)):
        return False
    for item in value:
        if isinstance(item, (float, dict, list, tuple)) and _holds_non_finite(item):
            return True
    return False


def _path_of_non_finite(value: Any, path: str = "") -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(value)"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _path_of_non_finite(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _path_of_non_finite(item, f"{path}[{i}]")
            if found:
                return found
    return None


def dumps(data: Any) -> bytes:
    """Deterministic, strictly valid JSON (no NaN/Infinity), ending in a newline."""
    bad = find_non_finite(data)
    if bad:
        raise InvalidRunError(f"{bad} is not a finite number (NaN or infinity); nothing was written.")
    return _encode(data)


def _encode(data: Any) -> bytes:
    """Sorted keys, two-space indent, UTF-8 (not ``\\u``-escaped), a newline at the end.

    Most records are encoded by pydantic-core's serialiser after one pass that sorts their keys: the
    standard library's encoder is written in Python once it indents (about 0.1 ms a run record, an
    eighth of recording one). The bytes are the same as ``json.dumps``'s (``tests/calibration_policy/
    test_durable.py`` compares them); data where the two could differ — a float below 1e-4 in size,
    which Python spells ``1e-05`` and pydantic-core ``0.00001``, a key that is not a string, a type
    that is not plain JSON — takes the standard library's path."""
    try:
        text = pydantic_core.to_json(_sorted_plain(data), indent=2)
    except (_NotPlain, ValueError):  # ValueError: PydanticSerializationError (a lone surrogate, …)
        return _encode_stdlib(data)
    return text + b"\n"


def _encode_stdlib(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n").encode()


class _NotPlain(Exception):
    """Data that pydantic-core might spell differently from ``json.dumps``."""


def _sorted_plain(value: Any) -> Any:
    """``value`` with every object's keys sorted; :class:`_NotPlain` for anything but plain JSON
    values whose spelling both encoders share."""
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str:
                raise _NotPlain
        return {key: _sorted_plain(value[key]) for key in sorted(value)}
    if kind is list:
        return [_sorted_plain(item) for item in value]
    if kind is float:
        if value != value or value in (math.inf, -math.inf) or (value != 0.0 and -1e-4 < value < 1e-4):
            raise _NotPlain
        return value
    if kind is str or kind is int or kind is bool or value is None:
        return value
    raise _NotPlain


def fsync_dir(directory: Path) -> None:
    _step()
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dumps_model(model: Any, exclude: set[str] | None = None) -> bytes:
    """:func:`dumps` for a pydantic model; NaN is caught *before* JSON mode would turn it into null."""
    bad = find_non_finite(model.model_dump(exclude=exclude))
    if bad:
        raise InvalidRunError(f"{bad} is not a finite number (NaN or infinity); nothing was written.")
    return _encode(model.model_dump(mode="json", exclude=exclude))  # checked above: JSON mode adds no NaN


def _write_temp(directory: Path, payload: bytes, mode: int = 0o666) -> tuple[Path, int]:
    """The temp file holding ``payload``, flushed to disk, and its inode number."""
    # Not mkstemp: its 0600 would make run files unreadable to a panel or backup running as another user.
    name = directory / f"{TMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            _step()
            os.fsync(handle.fileno())
            inode = os.fstat(handle.fileno()).st_ino
    except BaseException:
        name.unlink(missing_ok=True)
        raise
    return Path(name), inode


Written = Callable[[Path, os.stat_result], None]


def _tell_written(written: Written | None, path: Path, inode: int) -> None:
    """Give ``written`` the status of the file just put at ``path`` if it is still the one written
    (another process may have replaced it since): a cache of its content can then tell a change."""
    if written is None:
        return
    try:
        info = os.lstat(path)
    except OSError:
        return
    if info.st_ino == inode:
        written(path, info)


def _os_error(action: str, path: Path, error: OSError) -> CalibrationPolicyError:
    reason = os.strerror(error.errno) if error.errno else str(error)
    return CalibrationPolicyError(f"Could not {action} {path}: {reason}. Nothing was changed.")


def atomic_replace(
    path: Path,
    payload: bytes,
    temp_dir: Path | None = None,
    guard: Callable[[], AbstractContextManager[Any]] | None = None,
    written: Written | None = None,
) -> None:
    """Write ``payload`` to ``path``, replacing any old content atomically.

    ``temp_dir`` (on the same file system) holds the temp file and ``guard`` is held around the
    rename, as in :func:`create_exclusive`: the run index uses both so that rewriting a decided run
    changes the folder by the rename alone, which it records, and the next load lists nothing.
    ``written`` is told the new file's status once it is durable (if it is still the file written)."""
    try:
        try:
            mode = os.stat(path).st_mode & 0o7777  # a replaced config keeps its permissions
        except FileNotFoundError:
            mode = 0o666
        temp, inode = _write_temp(temp_dir or path.parent, payload, mode)
        try:
            if mode != 0o666:
                os.chmod(temp, mode)
            _step()
            with guard() if guard is not None else nullcontext():
                os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except OSError as error:
        raise _os_error("write", path, error) from error
    try:
        fsync_dir(path.parent)
    except OSError as error:  # the new content is already in place: say so, never "nothing was changed"
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise CalibrationPolicyError(
            f"Wrote {path}, but could not flush its folder to disk ({reason}); the new content is in place "
            "but may not survive a power cut."
        ) from error
    _tell_written(written, path, inode)


def create_exclusive(
    directory: Path,
    names: Iterator[str],
    payload: bytes,
    guard: Callable[[], AbstractContextManager[Callable[[str], None]]] | None = None,
    temp_dir: Path | None = None,
    written: Written | None = None,
) -> Path:
    """Create the first free name from ``names`` with ``payload``; never overwrites a file.

    ``os.link`` fails if the name exists, which makes "take the next name" race-free
    across processes while the content still arrives whole. ``guard`` (the run index's
    :meth:`~.index.RunIndex.adding`) is held around the link and the removal of the temp file,
    and told the name taken, so the index learns it in the same step. ``temp_dir`` (a folder
    inside ``directory``, on the same file system) holds the temp file, so that only the link
    itself changes ``directory``'s modification time. ``written`` is told the new file's status once
    it is durable (if it is still the file written).
    """
    try:
        temp, inode = _write_temp(temp_dir or directory, payload)
    except OSError as error:
        raise _os_error("write into", directory, error) from error
    try:
        with guard() if guard is not None else nullcontext(_ignore) as taken:
            try:
                for name in names:
                    target = directory / name
                    try:
                        _step()
                        os.link(temp, target)
                    except FileExistsError:
                        continue
                    break
                else:
                    raise CalibrationPolicyError(f"No free file name left in {directory}.")
            finally:
                temp.unlink(missing_ok=True)
            taken(name)
        try:
            fsync_dir(directory)
        except OSError:
            target.unlink(missing_ok=True)  # undo, so "nothing was changed" stays true
            raise
        _tell_written(written, target, inode)
        return target
    except OSError as error:
        raise _os_error("write into", directory, error) from error
    finally:
        temp.unlink(missing_ok=True)


def _ignore(name: str) -> None:
    return None


def sweep_orphans(directory: Path, older_than_seconds: float = 60.0) -> int:
    """Remove temp files a killed writer left behind; young ones may still be in use."""
    removed = 0
    cutoff = time.time() - older_than_seconds
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith(TMP_PREFIX):
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
    return removed


def read_json(path: Path) -> Any:
    with open(path, "rb") as handle:
        return json.loads(handle.read())
