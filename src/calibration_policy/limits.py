"""What the library accepts from outside: how deeply nested JSON may be, which dates exist.

Both limits stop input that no real use needs but that would crash a parser or a date conversion deep
inside (Python's recursion limit, a year that leaves 1–9999 once converted to UTC) and turn into a
server error; here they are refused first, with a sentence naming the field.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .errors import InputLimitError

MAX_JSON_DEPTH = 64
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # exclusive; pandas' own range ends in 2262

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def json_depth(raw: bytes | str) -> int:
    """How deeply ``raw`` JSON nests arrays and objects (0 for a scalar), without parsing it.

    Strings are blanked first (a ``[`` inside one is text); the brackets left are counted with numpy,
    so a 20 MB upload costs tens of milliseconds, never a recursion."""
    data = raw.encode() if isinstance(raw, str) else raw
    if b"[" not in data and b"{" not in data:
        return 0
    if b'"' in data:
        data = _STRING.sub(b'""', data)
    codes = np.frombuffer(data, np.uint8)
    brackets = codes[np.isin(codes, np.concatenate((_OPEN, _CLOSE)))]
    steps = np.where(np.isin(brackets, _OPEN), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def check_depth(raw: bytes | str, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` levels, naming ``what`` it was."""
    depth = json_depth(raw)
    if depth > limit:
        raise InputLimitError(f"{what} nests {depth} levels deep; at most {limit} are accepted.")


def loads(raw: bytes | str, what: str, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for text a person sent: nesting bounded first, a parse error as one sentence."""
    check_depth(raw, what, limit)
    try:
        return json.loads(raw)
    except ValueError as error:
        raise InputLimitError(f"{what} is not valid JSON ({error}).") from None


def moment_problem(value: datetime) -> str | None:
    """What is wrong with ``value`` as a date (``"is 0001-01-01…, outside the supported dates …"``), None if nothing.

    A date at the edge of the calendar (``0001-01-01T00:00:00+05:00``) cannot even be converted to UTC."""
    try:
        moment = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except (OverflowError, ValueError):
        moment = None
    if moment is not None and EARLIEST <= moment < LATEST:
        return None
    return f"is {value.isoformat()}, outside the supported dates {EARLIEST:%Y-%m-%d} to {LATEST.year - 1}-12-31"


def check_moment(value: datetime | None, what: str) -> datetime | None:
    """``value`` if it lies within the supported dates (1900 up to 2200, in UTC), else a sentence naming ``what``."""
    problem = moment_problem(value) if value is not None else None
    if problem:
        raise InputLimitError(f"{what} {problem}.")
    return value
