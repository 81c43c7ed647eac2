"""Names from users become parts of file names only through this module.

An underlying symbol, a source name or a record id is checked against a strict ASCII allowlist
and a length limit before it ever touches the file system, so ``../x``, ``a/b``, NUL bytes or
unicode look-alikes can never steer a write outside the data directory.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from .errors import InvalidNameError

_UNDERLYING = re.compile(r"\^?[A-Z0-9][A-Z0-9.\-]{0,14}", re.ASCII)
_SOURCE = re.compile(r"[a-z][a-z0-9\-]{0,31}", re.ASCII)
_RECORD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]{0,127}", re.ASCII)
_STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
# <UTC stamp>_<UNDERLYING>_<source>[_<n>].json — "_" never occurs inside a part.
_RUN_FILE = re.compile(
    r"(?P<stamp>\d{8}T\d{6}\.\d{6}Z)_(?P<underlying>[^_/]+)_(?P<source>[a-z][a-z0-9\-]*)"
    r"(?:_(?P<seq>[1-9]\d{0,5}))?\.json",
    re.ASCII,
)


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
    return moment.astimezone(timezone.utc).strftime(_STAMP_FORMAT)


def parse_stamp(stamp: str) -> datetime:
    return datetime.strptime(stamp, _STAMP_FORMAT).replace(tzinfo=timezone.utc)


def run_file_name(stamp: str, underlying: str, source: str, seq: int = 0) -> str:
    suffix = f"_{seq}" if seq else ""
    return f"{stamp}_{underlying}_{source}{suffix}.json"


def parse_run_file_name(name: str) -> tuple[str, str, str, int] | None:
    """``(stamp, underlying, source, seq)`` for a run file name, ``None`` for anything else."""
    match = _RUN_FILE.fullmatch(name)
    if match is None:
        return None
    return match["stamp"], match["underlying"], match["source"], int(match["seq"] or 0)
