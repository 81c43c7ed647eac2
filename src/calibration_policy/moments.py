"""Dates and times a person types (``as-of DATE``, ``?at=``): parsed to UTC by one function, or one plain sentence.

Python's datetimes end at years 1 and 9999, so a moment near either end can exist in its own
zone but not in UTC (``0001-01-01T00:00+05:00`` is in year 0 there): converting it raises
``OverflowError``, which no caller expects. Everything that turns typed text into a UTC moment
comes through here and gets a :class:`~.errors.CalibrationPolicyError` instead.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from .errors import CalibrationPolicyError

EXAMPLE = "YYYY-MM-DD (the end of that UTC day) or an ISO time such as 2025-12-01T14:00Z"


def _shown(text: object) -> str:
    shown = repr(text)
    return shown if len(shown) <= 42 else shown[:39] + "…'"


def to_utc(moment: datetime, text: object = None, field: str | None = None) -> datetime:
    """``moment`` in UTC (a naive one is taken as UTC, like every time the panel shows).

    A moment that falls outside the years 1 to 9999 once converted raises a
    :class:`CalibrationPolicyError` naming it (``text``: what the person typed, in ``field``).
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        side = "before the year 1" if moment.year < 5000 else "after the year 9999"
        named = f"{field} " if field else ""
        raise CalibrationPolicyError(
            f"{named}{_shown(text if text is not None else moment.isoformat())} is {side} in UTC, the earliest and "
            "latest times that can be looked up; give a time between 0001-01-01 and 9999-12-31 UTC."
        ) from None


def parse_moment(text: object, field: str) -> datetime:
    """What a person typed as a date or time (``policy as-of DATE``, ``?at=``, ``?as_of=``), as an aware UTC moment.

    Every such question is "what held at this moment", so a bare date (``2025-12-01``) means the
    END of that UTC day (23:59:59.999999): what was live when the day closed, changes made during
    it included. A time with an offset or ``Z`` is converted to UTC; one without a zone is UTC,
    like every time the panel shows. Anything else, or a moment outside the years 1 to 9999 once in
    UTC (``0001-01-01T00:00+05:00``), is a :class:`CalibrationPolicyError` naming ``field``.
    """
    wrong = CalibrationPolicyError(f"{field} {_shown(text)} is not a date or time; use {EXAMPLE}.")
    if not isinstance(text, str) or not text.strip() or len(text) > 100:
        raise wrong
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time.max, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise wrong from None
    return to_utc(moment, text, field)


def aware_utc(value: datetime | None) -> datetime | None:
    """For the records' validators: an aware time in UTC, else a ``ValueError`` saying why.

    A record file may hold any time a hand or another tool wrote; a naive one is ambiguous and
    one that leaves the years 1 to 9999 in UTC cannot be compared or stored, so either makes
    the record invalid (skipped with a warning) rather than crash every load with an
    ``OverflowError`` or a ``TypeError`` later.
    """
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be timezone-aware (UTC); a naive time is ambiguous")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside the years 1 to 9999 once converted to UTC") from None
