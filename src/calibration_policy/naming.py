"""Names from users become parts of file names only through this module.

An underlying symbol, a source name or a record id is checked against a strict ASCII allowlist
and a length limit before it ever touches the file system, so ``../x``, ``a/b``, NUL bytes or
unicode look-alikes can never steer a write outside the data directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

from .errors import InvalidNameError

_UNDERLYING = re.compile(r"\^?[A-Z0-9][A-Z0-9.\-]{0,14}", re.ASCII)
_SOURCE = re.compile(r"[a-z][a-z0-9\-]{0,31}", re.ASCII)
_RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]{0,127}", re.ASCII)
_STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
# <UTC stamp>_<UNDERLYING>_<source>[_<n>].json — "_" never occurs inside a part, and each part
# is exactly what check_underlying / check_source accept: a file whose name only looks like a run
# ("SPY (1)", a byte that is not UTF-8, lower case) is foreign, never a run of some odd symbol.
_RUN_FILE = re.compile(
    r"(?P<stamp>\d{8}T\d{6}\.\d{6}Z)_(?P<underlying>\^?[A-Z0-9][A-Z0-9.\-]{0,14})_(?P<source>[a-z][a-z0-9\-]{0,31})"
    r"(?:_(?P<seq>[1-9]\d{0,5}))?\.json",
    re.ASCII,
)
# <UTC stamp>[_<n>].json: an archive entry (a change of one target).
_ARCHIVE_FILE = re.compile(r"(?P<stamp>\d{8}T\d{6}\.\d{6}Z)(?:_(?P<seq>[1-9]\d{0,5}))?\.json", re.ASCII)
# <UTC stamp>_<target>[_<n>].json: a suggestion (the target is a record id, so it may hold "_").
_SUGGESTION_FILE = re.compile(r"(?P<stamp>\d{8}T\d{6}\.\d{6}Z)_(?P<rest>[A-Za-z0-9][A-Za-z0-9.\-_]*)\.json", re.ASCII)
_TRAILING_SEQ = re.compile(r"(?P<base>.+?)_(?P<seq>[1-9]\d{0,5})", re.ASCII)
MAX_SEQ = 100_000  # a name taken this many times over in one microsecond means something is badly wrong


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…'"


def check_underlying(value: object) -> str:
    """Return the canonical (upper-case) symbol, or raise naming what is wrong with it."""
    if not isinstance(value, str):
        raise InvalidNameError(f"The underlying must be a text symbol such as 'SPY', not {type(value).__name__}.")
    symbol = value.strip().upper()
    if not _UNDERLYING.fullmatch(symbol) or ".." in symbol:
        raise InvalidNameError(
            f"{_shown(value)} is not a valid underlying symbol: use 1 to 16 plain letters, digits, "
            "'.', '-' (and an optional leading '^'), for example 'SPY' or 'BRK.B'."
        )
    return symbol


def check_source(value: object) -> str:
    """Return the source name (``live``, ``harvested`` or a plugin's), or raise."""
    if not isinstance(value, str) or not _SOURCE.fullmatch(value):
        raise InvalidNameError(
            f"{_shown(value)} is not a valid source name: use lower-case letters, digits and '-', "
            "such as 'live' or 'harvested'."
        )
    return value


def check_record_id(value: object, what: str = "id") -> str:
    """Ids arrive in URLs and CLI arguments; only plain file-name-safe ids get through."""
    if not isinstance(value, str) or not _RECORD_ID.fullmatch(value) or ".." in value:
        raise InvalidNameError(f"{_shown(value)} is not a valid {what}.")
    return value


def utc_stamp(moment: datetime) -> str:
    """A sortable, file-name-safe UTC stamp such as ``20251210T123456.123456Z``."""
    return moment.astimezone(UTC).strftime(_STAMP_FORMAT)


def parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp, _STAMP_FORMAT).replace(tzinfo=UTC)


def run_file_name(stamp: str, underlying: str, source: str, seq: int = 0) -> str:
    suffix = f"_{seq}" if seq else ""
    return f"{stamp}_{underlying}_{source}{suffix}.json"


def parse_run_file_name(name: str) -> tuple[str, str, str, int] | None:
    """``(stamp, underlying, source, seq)`` for a run file name, ``None`` for anything else."""
    match = _RUN_FILE.fullmatch(name)
    if match is None or ".." in match["underlying"]:
        return None
    return match["stamp"], match["underlying"], match["source"], int(match["seq"] or 0)


def is_archive_file_name(name: str) -> bool:
    """``<stamp>[_<n>].json``, the only names an archive folder holds entries under."""
    return _ARCHIVE_FILE.fullmatch(name) is not None


def is_suggestion_file_name(name: str) -> bool:
    """``<stamp>_<target>[_<n>].json`` with a valid record id as its stem."""
    return _SUGGESTION_FILE.fullmatch(name) is not None and len(name) - 5 <= 128 and ".." not in name


def numbered(base: str, suffix: str = ".json", limit: int = MAX_SEQ) -> Iterator[str]:
    """``base.json``, then ``base_2.json``, ``base_3.json``… : the names a record takes when its
    stamp is already taken (a frozen or coarse clock). There is no ``_1``."""
    yield f"{base}{suffix}"
    for seq in range(2, limit):
        yield f"{base}_{seq}{suffix}"


def sequence_key(record_id: str, base: str | None = None) -> tuple[str, int]:
    """``(base, n)`` for an id made by :func:`numbered`, so ``…_10`` sorts after ``…_9``.

    As strings ``_10`` < ``_9``: every place that orders records sharing a stamp (runs,
    suggestions, archive entries) must order by this key instead. Give ``base`` when the base
    itself may end in ``_<digits>`` (a suggestion's target name may); without it the last
    ``_<digits>`` is taken as the number.
    """
    if base is not None:
        if record_id == base:
            return base, 0
        rest = record_id[len(base) + 1 :] if record_id.startswith(base + "_") else ""
        if re.fullmatch(r"[1-9]\d{0,5}", rest, re.ASCII):
            return base, int(rest)
        return record_id, 0
    match = _TRAILING_SEQ.fullmatch(record_id)
    return (match["base"], int(match["seq"])) if match else (record_id, 0)
