"""The run store: one JSON file per calibration run in one flat folder.

Files are named ``<UTC stamp>_<UNDERLYING>_<source>.json`` so they sort by time and say what
they are without being opened. Writes are atomic and never overwrite; a second run with the
same stamp gets ``_2``. A corrupt or foreign file is skipped with one warning, never fatal
(see :mod:`.foreign`); a damaged folder (a file in its place, unreadable) is a
:class:`~.errors.DataFolderError` naming it, never an empty history.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from . import foreign
from .durable import (
    atomic_replace,
    create_exclusive,
    dumps_model,
    find_non_finite,
    sweep_orphans,
)
from .errors import HistoryError, InvalidRunError
from .index import INDEX_DIR, Key, RunIndex, racy_ns, run_key
from .models import RUN_EARLIEST, RUN_LATEST, CalibrationRun
from .naming import (
    check_record_id,
    check_source,
    check_underlying,
    numbered,
    parse_run_file_name,
    utc_stamp,
)
from .paths import data_path
from .plugins import get_domain
from .redact import get_logger

log = get_logger(__name__)

T = TypeVar("T")
WHAT = "history folder"
HISTORY_ENV = "CALIBRATION_HISTORY_DIR"
MAX_LIMIT = 100_000
PARSED_RUNS = 1024  # runs a store keeps validated (those kept longest are forgotten first)
PARSED_BUDGET = 4 * 1024 * 1024  # and bytes of their JSON or marshalled state, at most
PARSED_MAX = 64 * 1024  # a run file bigger than this is read afresh every time


# (file status, its JSON as written here) or (file status, the run's dictionaries and lists marshalled, the run)
_Kept = tuple[tuple[int, ...], bytes, CalibrationRun | None]
_IMMUTABLE = (str, int, float, bool, type(None), datetime)


def _copy_of(template: CalibrationRun, blob: bytes) -> CalibrationRun:
    """A run equal to ``template`` that shares nothing mutable with it: what validating its file again
    would give, without the validation (it was validated when kept)."""
    state, extra = marshal.loads(blob)
    run = template.model_copy()  # a new __dict__, extras and fields set; values shared…
    run.__dict__.update(state)  # …but for new dictionaries and lists
    object.__setattr__(run, "__pydantic_extra__", extra)
    return run


def _run_of(name: str, data: dict[str, Any]) -> CalibrationRun:
    """The run a file named ``name`` holds, from its JSON object; ``ValueError`` when it is not a valid one."""
    data["run_id"] = name[:-5]  # the file name without ".json"
    run = CalibrationRun.model_validate(data)
    if run.underlying != parse_run_file_name(name)[1]:  # type: ignore[index]
        raise ValueError("its underlying does not match its file name")
    return run


def _signature(info: os.stat_result) -> tuple[int, ...]:
    """What changes when a file's content does: a new file (a replace, a copy) has another inode or
    change time; a rewrite in place moves the modification and change times (and often the size)."""
    return (info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def resolve_history_dir(history_dir: str | os.PathLike[str] | None = None) -> Path:
    """``history_dir``, else ``$CALIBRATION_HISTORY_DIR``, else ``<data root>/calibration_runs``."""
    return data_path(history_dir, HISTORY_ENV, "calibration_runs")


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable fingerprint of the calibration config, to tell runs of different setups apart."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def cursor_of(run: CalibrationRun) -> str:
    """The keyset cursor of a run: ``<UTC timestamp>,<run id>`` (what ``before=`` / ``after=`` take)."""
    return f"{run.timestamp.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ},{run.run_id}"


def parse_cursor(cursor: str) -> Key:
    """``(stamp, seq, name)`` of a cursor ``"<timestamp>,<run id>"`` (or a bare run id); a
    :class:`HistoryError` saying what a cursor looks like otherwise."""
    text = cursor.strip() if isinstance(cursor, str) else ""
    moment, _, run_id = text.rpartition(",")
    key = run_key(f"{run_id}.json") if len(run_id) <= 128 else None
    if key is not None and moment:
        try:
            given = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            key = None
        else:
            if given.tzinfo is None or utc_stamp(given) != key[0]:
                key = None
    if key is None:
        raise HistoryError(
            f"{text!r:.80} is not a paging cursor; use <timestamp>,<run id> as given in a page "
            "(for example 2025-12-10T12:34:56.123456Z,20251210T123456.123456Z_SPY_live)."
        )
    return key


def cursor_key(underlying: str, cursor: str | Key | None) -> Key | None:
    """The paging key of a cursor (or None for none), refused when it is a run of another underlying."""
    if cursor is None or cursor == "":
        return None
    key = parse_cursor(cursor) if isinstance(cursor, str) else cursor
    parts = parse_run_file_name(key[2])
    if parts is None or parts[1] != underlying:
        raise HistoryError(f"The cursor {key[2][:-5]!r:.80} is a run of another underlying than {underlying}.")
    return key


def position_key(underlying: str, cursor: str | Key) -> Key:
    """The paging key of the run whose position is asked; an empty cursor names no run."""
    key = cursor_key(underlying, cursor)
    if key is None:
        raise HistoryError("A position needs a run's cursor; an empty one names no run.")
    return key


def _check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise HistoryError(f"limit must be a whole number from 1 to {MAX_LIMIT:,}, not {limit!r:.40}.")
    return limit


def _friendly_validation(error: ValidationError) -> str:
    item = error.errors()[0]
    field = ".".join(str(p) for p in item["loc"]) or "run"
    return f"{field}: {item['msg'].removeprefix('Value error, ')}"


class HistoryStore:
    """All runs of all underlyings in one directory, with a cached name index."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._index = RunIndex(self.directory)
        self._lock = threading.Lock()
        # Run files read or written lately, by name (see _read_kept): a load that finds a file's status
        # unchanged copies the kept run instead of opening, parsing and validating the file.
        self._parsed: dict[str, _Kept] = {}
        self._parsed_bytes = 0
        self._parsed_lock = threading.Lock()

    # -- writing -------------------------------------------------------------------------------

    def record(self, run: CalibrationRun) -> CalibrationRun:
        """Store a new run durably and return it with its ``run_id`` (the file name stem)."""
        return self._create(run, numbered(f"{utc_stamp(run.timestamp)}_{run.underlying}_{run.source}", limit=1_000_000))

    def put(self, run: CalibrationRun) -> bool:
        """Store a run under its own ``run_id`` (a migration from another store); False if it is here already."""
        if self._path(run.run_id).exists():
            return False
        self._create(run, iter([f"{run.run_id}.json"]))
        return True

    def _create(self, run: CalibrationRun, names: Iterator[str]) -> CalibrationRun:
        payload = dumps_model(run, exclude={"run_id"})
        if not os.path.isdir(self.directory):  # one stat; mkdir(exist_ok=True) costs a failed mkdir and a stat
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as error:
                raise foreign.folder_error(self.directory, WHAT, error) from None
            except OSError as error:
                raise HistoryError(f"Cannot create the history folder {self.directory}: {error.strerror}.") from None
        try:
            path = create_exclusive(
                self.directory,
                names,
                payload,
                guard=self._adding,
                temp_dir=self._index.temp_dir(),
                written=lambda path, info: self._keep_written(path, info, payload),
            )
        except ValueError as error:
            raise HistoryError(str(error)) from None
        return run.model_copy(update={"run_id": path.stem})

    @contextmanager
    def _adding(self) -> Iterator[Callable[[str], None]]:
        """The index's write step around the link; the store's lock only for that (not the fsync)."""
        with self._lock, self._index.adding() as taken:  # the index's connection is shared by this store's threads
            yield taken

    def save(self, run: CalibrationRun) -> None:
        """Write back a decided run (applied, reason, smoothed values) atomically, in place."""
        path = self._path(run.run_id)
        if not path.exists():
            raise HistoryError(f"Run {run.run_id} is not in {self.directory}; record it first.")
        payload = dumps_model(run, exclude={"run_id"})
        try:  # the temp file beside the index and the rename under its lock: the index stays current (no relisting)
            self._forget(path.name)  # kept until it is written anew (a kept copy could outlive a failed write)
            atomic_replace(
                path,
                payload,
                temp_dir=self._index.temp_dir(),
                guard=self._adding,
                written=lambda path, info: self._keep_written(path, info, payload),
            )
        except ValueError as error:
            raise HistoryError(str(error)) from None

    # -- reading -------------------------------------------------------------------------------

    def _path(self, run_id: str) -> Path:
        name = check_record_id(run_id, "run id") + ".json"
        if parse_run_file_name(name) is None:
            raise HistoryError(f"{run_id!r:.60} is not a run id.")
        return self.directory / name

    def _read(self, name: str) -> CalibrationRun | None:
        kept = self._parsed.get(name)
        if kept is not None:
            run = self._read_kept(name, kept)
            if run is not None:
                return run
        path = self.directory / name
        try:
            data, info = foreign.read_record_and_stat(path)
            run = _run_of(name, data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            foreign.warn_once(log, "Skipping %s: not a valid calibration run (%s).", path, str(error).splitlines()[0])
            return None
        if self._keepable(info):
            self._keep_run(name, _signature(info), run)
        return run

    # -- the runs kept in memory -----------------------------------------------------------------
    #
    # A load of the newest 50 runs reads the same files again and again (a backfill reads each 50
    # times). A file whose status (inode, size, modification and change time) is the one it had when
    # it was read or written here is not opened again: a copy of the run validated from it is given
    # instead, its dictionaries and lists new (callers never share one, nor change the kept run).
    # Only status that cannot hide a change is kept: a file read here must not have changed within
    # the last RACY_NS (a rewrite in the same clock tick would leave its times as they were); a file
    # this store wrote is kept as it was written, so a rewrite in place by hand, to the same size,
    # within the same clock tick as the write (microseconds on kernels with multigrain timestamps,
    # Linux 6.13+) is seen only once the file changes again — the index's own window for names. A
    # new file in its place (a copy, a replace) always has another inode or change time.

    @staticmethod
    def _keepable(info: os.stat_result) -> bool:
        changed = max(info.st_mtime_ns, info.st_ctime_ns)
        return info.st_size <= PARSED_MAX and time.time_ns() - changed > racy_ns(changed)

    def _read_kept(self, name: str, kept: _Kept) -> CalibrationRun | None:
        """The kept run if its file is unchanged; None (and forgotten) otherwise: the caller reads it."""
        signature, blob, template = kept
        try:
            unchanged = _signature(os.lstat(os.path.join(self.directory, name))) == signature
        except OSError:
            unchanged = False
        try:
            if unchanged and template is not None:
                return _copy_of(template, blob)
            if unchanged:  # as written here: validated once, like any file read
                run = _run_of(name, json.loads(blob))
                self._keep_run(name, signature, run)
                return run
        except ValueError:  # never expected: read it as any file, with its warning
            pass
        self._forget(name)
        return None

    def _keep_written(self, path: Path, info: os.stat_result, payload: bytes) -> None:
        """Keep a run file this store just wrote (its bytes; validated at the first load that wants it)."""
        fine = info.st_mtime_ns % 1_000_000_000 and info.st_ctime_ns % 1_000_000_000  # not whole seconds
        if fine and info.st_size == len(payload) <= PARSED_MAX:
            self._keep(path.name, (_signature(info), payload, None))
        else:
            self._forget(path.name)

    def _keep_run(self, name: str, signature: tuple[int, ...], run: CalibrationRun) -> None:
        """Keep a validated run (before it is handed out: the caller may change its own)."""
        template = run.model_copy()
        state = {key: value for key, value in template.__dict__.items() if type(value) not in _IMMUTABLE}
        try:
            blob = marshal.dumps((state, template.__pydantic_extra__))
        except ValueError:  # not plain JSON values (never from a file): not kept
            self._forget(name)
            return
        self._keep(name, (signature, blob, template))

    def _keep(self, name: str, kept: _Kept) -> None:
        with self._parsed_lock:
            self._drop(name)
            self._parsed[name] = kept
            self._parsed_bytes += len(kept[1])
            while self._parsed_bytes > PARSED_BUDGET or len(self._parsed) > PARSED_RUNS:  # the oldest kept first
                self._drop(next(iter(self._parsed)))

    def _forget(self, name: str) -> None:
        with self._parsed_lock:
            self._drop(name)

    def _drop(self, name: str) -> None:  # the caller holds _parsed_lock
        old = self._parsed.pop(name, None)
        if old is not None:
            self._parsed_bytes -= len(old[1])

    def _exists(self) -> bool:
        """False while the folder does not exist yet (no runs); a damaged folder raises."""
        return foreign.check_folder(self.directory, WHAT)

    def _indexed(self, query: Callable[[], T]) -> T:
        """Ask the name index; a folder the OS refuses to list is named in a plain error."""
        try:
            with self._lock:
                return query()
        except FileNotFoundError:
            raise HistoryError(
                f"The history folder {self.directory} disappeared while it was read; try again."
            ) from None
        except OSError as error:
            raise foreign.folder_error(self.directory, WHAT, error) from None

    def get(self, run_id: str) -> CalibrationRun:
        run = self._read(self._path(run_id).name)
        if run is None:
            raise HistoryError(f"There is no readable run {run_id} in {self.directory}.")
        return run

    def _names(self, underlying: str, key: Key | None = None, newest: bool = True) -> Iterator[str]:
        """Run file names of ``underlying`` from ``key`` on (exclusive), a keyset page at a time."""
        page = 64
        while True:
            if newest:
                names = self._indexed(lambda: self._index.newest(underlying, page, before=key))
            else:
                names = self._indexed(lambda: self._index.oldest(underlying, page, after=key))
            yield from names
            if len(names) < page:
                return
            key = run_key(names[-1])
            page = min(page * 4, 4096)

    def _newest_names(self, underlying: str) -> Iterator[str]:
        return self._names(underlying)

    def _read_page(self, names: Iterator[str], limit: int, skip: int = 0) -> list[CalibrationRun]:
        runs: list[CalibrationRun] = []
        for name in names:
            run = self._read(name)
            if run is None:
                continue
            if skip:
                skip -= 1
                continue
            runs.append(run)
            if len(runs) == limit:
                break
        return runs

    def latest(
        self, underlying: str, limit: int = 50, offset: int = 0, before: str | Key | None = None
    ) -> list[CalibrationRun]:
        """The newest ``limit`` readable runs of ``underlying``, oldest first.

        ``before`` (a cursor ``"<timestamp>,<run id>"`` from :func:`cursor_of`, or a run id) keeps
        only runs older than that one: keyset paging, as fast for the oldest page as the newest.
        ``offset`` skips that many readable runs first (it reads them: prefer ``before``).
        """
        underlying, limit = check_underlying(underlying), _check_limit(limit)
        key = self._cursor(underlying, before)
        if not self._exists():
            return []
        if offset and key is None:  # skip the names in the index, then read only the page
            start = self._indexed(lambda: self._index.newest(underlying, 1, offset=offset - 1))
            if not start:
                return []
            key = run_key(start[0])
        runs = self._read_page(self._names(underlying, key), limit)
        runs.reverse()
        return runs

    def oldest(self, underlying: str, limit: int = 50, after: str | Key | None = None) -> list[CalibrationRun]:
        """The oldest ``limit`` readable runs of ``underlying`` (newer than the cursor ``after``), oldest first."""
        underlying, limit = check_underlying(underlying), _check_limit(limit)
        key = self._cursor(underlying, after)
        if not self._exists():
            return []
        return self._read_page(self._names(underlying, key, newest=False), limit)

    def position(self, underlying: str, cursor: str | Key) -> int:
        """How many runs of ``underlying`` are as new as the cursor's or newer (1 for the newest run)."""
        underlying = check_underlying(underlying)
        key = position_key(underlying, cursor)
        if not self._exists():
            return 0
        return self._indexed(lambda: self._index.count_from(underlying, key))

    def _cursor(self, underlying: str, cursor: str | Key | None) -> Key | None:
        return cursor_key(underlying, cursor)

    def reindex(self) -> int:
        """Rebuild the name index from one listing of the folder; the number of runs it holds."""
        if not self._exists():
            return 0
        return self._indexed(self._index.rebuild)

    def between(self, underlying: str, start: datetime, end: datetime) -> list[CalibrationRun]:
        """Readable runs of ``underlying`` stamped within [start, end], oldest first.

        Walks the index from the newest name down and stops at the first name older than
        ``start``: the stamp is in the name, so files outside the range are never opened.
        """
        underlying = check_underlying(underlying)
        if not self._exists():
            return []
        low, high = utc_stamp(start), utc_stamp(end)
        runs = []
        # from ``end`` down, never the newer names; the cursor's number sorts after every run's (_2 … _999999999):
        # the index spells a number with its digit count first, so 10**9 ("10…") sorted before _2 ("12")
        for name in self._names(underlying, (high, 10**9 - 1, "~")):
            stamp = name[: len(low)]
            if stamp > high:
                continue
            if stamp < low:
                break
            run = self._read(name)
            if run is not None:
                runs.append(run)
        runs.reverse()
        return runs

    def count(self, underlying: str) -> int:
        underlying = check_underlying(underlying)
        if not self._exists():
            return 0
        return self._indexed(lambda: self._index.count(underlying))

    def underlyings(self) -> list[str]:
        if not self._exists():
            return []
        return self._indexed(self._index.underlyings)

    def sweep(self, older_than_seconds: float = 60.0) -> int:
        """Remove temp files that killed writers left behind (in the folder and beside the index)."""
        removed = sweep_orphans(self.directory, older_than_seconds)
        return removed + sweep_orphans(self.directory / INDEX_DIR, older_than_seconds)


_stores: dict[tuple[str, int], HistoryStore] = {}
_stores_lock = threading.Lock()


def open_history(history_dir: str | os.PathLike[str] | None = None) -> HistoryStore:
    """The file store's runs in ``history_dir`` (see :func:`resolve_history_dir`), one per folder and
    process (it keeps the folder's name index open). Callers want :func:`calibration_policy.open_store`."""
    key = (str(resolve_history_dir(history_dir).absolute()), os.getpid())
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = HistoryStore(key[0])
        return store


def build_run(
    result: Mapping[str, Any],
    underlying: str,
    source: str,
    timestamp: datetime | None = None,
    config: Mapping[str, Any] | None = None,
    domain: str = "vol_surface",
) -> CalibrationRun:
    """Turn a host's calibration result into a validated (not yet stored) run."""
    underlying, source = check_underlying(underlying), check_source(source)
    governed = get_domain(domain)
    if source not in governed.sources:
        raise InvalidRunError(
            f"{source!r} is not a source of {governed.title}; use one of: {', '.join(governed.sources)}."
        )
    if timestamp is None:
        timestamp = datetime.now(UTC)
    elif not isinstance(timestamp, datetime) or timestamp.tzinfo is None:
        raise InvalidRunError("timestamp must be a timezone-aware datetime (for example in UTC), or None for now.")
    if not RUN_EARLIEST <= timestamp < RUN_LATEST:
        raise InvalidRunError(f"timestamp {timestamp.isoformat()} is outside the years 1970 to 2261.")
    extracted = governed.extract(result)
    for scope, value in extracted.recommended.items():  # named in the domain's words, not as a field of ours
        governed.check_number(scope, value, extracted.details)
    config = dict(config or result.get("config") or {})
    bad = find_non_finite({**extracted.details, "config": config})  # JSON mode would silently turn NaN into null
    if bad:
        raise InvalidRunError(
            f"The calibration result's {bad} is not a finite number (NaN or infinity); nothing was written."
        )
    # Keep the host's extra metrics, but never let them shadow our own fields.
    own = set(CalibrationRun.model_fields) - {"global_metrics", "bands"}
    details = {key: value for key, value in extracted.details.items() if key not in own}
    try:
        return CalibrationRun(
            timestamp=timestamp,
            underlying=underlying,
            source=source,
            domain=domain,
            config=config,
            config_hash=config_hash(config),
            recommended_iv_multiplier=extracted.recommended,
            sample_size=extracted.sample_size,
            vega_sum=extracted.vega_sum,
            **{"global_metrics": {}, "bands": {}, **details},
        )
    except ValidationError as error:
        raise InvalidRunError(f"The calibration result cannot be stored: {_friendly_validation(error)}.") from None
