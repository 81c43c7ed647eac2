"""Typed dates and times to UTC: every date (year 1, 9999, naive, any offset) is a UTC moment or one
plain sentence naming the field, never an ``OverflowError`` (issue 11, D5); a bare date is the end of
that UTC day, for the CLI, the API and the weights alike (issue 29)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from calibration_policy import CalibrationPolicyError
from calibration_policy.moments import aware_utc, parse_moment, to_utc

OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
MOMENTS = st.datetimes(min_value=datetime.min, max_value=datetime.max)


def in_utc(moment: datetime) -> datetime | None:
    """The moment in UTC by plain arithmetic, or None when it leaves the years 1 to 9999."""
    offset = moment.utcoffset() or timedelta(0)
    naive = moment.replace(tzinfo=None)
    try:
        return (naive - offset).replace(tzinfo=UTC)
    except OverflowError:
        return None


@pytest.mark.parametrize(
    "text, expected",
    [("0001-01-01", datetime(1, 1, 1, 23, 59, 59, 999999, tzinfo=UTC)),
     ("9999-12-31", datetime.max.replace(tzinfo=UTC)),
     ("2025-12-01", datetime(2025, 12, 1, 23, 59, 59, 999999, tzinfo=UTC)),  # a date: what was live at its close
     ("20251201", datetime(2025, 12, 1, 23, 59, 59, 999999, tzinfo=UTC)),
     (" 2025-12-01 ", datetime(2025, 12, 1, 23, 59, 59, 999999, tzinfo=UTC)),
     ("2025-12-01 14:00", datetime(2025, 12, 1, 14, tzinfo=UTC)),  # no zone: UTC
     ("2025-12-01T14:00+02:00", datetime(2025, 12, 1, 12, tzinfo=UTC)),
     ("2025-12-01T00:30+05:30", datetime(2025, 11, 30, 19, tzinfo=UTC)),  # the day before, in UTC
     ("0001-01-01T00:00-05:00", datetime(1, 1, 1, 5, tzinfo=UTC)),
     ("9999-12-31T23:59:59.999999", datetime.max.replace(tzinfo=UTC)),
     ("9999-12-31T20:00+03:00", datetime(9999, 12, 31, 17, tzinfo=UTC)),
     ("2025-12-10T12:00Z", datetime(2025, 12, 10, 12, tzinfo=UTC)),
     ("2025-12-10T12:00", datetime(2025, 12, 10, 12, tzinfo=UTC)),
     ("2025-12-10T12:00-00:30", datetime(2025, 12, 10, 12, 30, tzinfo=UTC))],
)  # fmt: skip
def test_valid_moments_are_aware_utc(text, expected):
    got = parse_moment(text, "at")
    assert got == expected and got.tzinfo is UTC


@pytest.mark.parametrize(
    "text, side",
    [
        ("0001-01-01T00:00+05:00", "before the year 1"),
        ("0001-01-01T04:59:59+05:00", "before the year 1"),
        ("9999-12-31T23:00-05:00", "after the year 9999"),
        ("9999-12-31T23:59:59.999999-00:01", "after the year 9999"),
    ],
)
def test_moments_outside_utc_are_one_plain_sentence_naming_the_field(text, side):
    with pytest.raises(CalibrationPolicyError) as caught:
        parse_moment(text, "as_of")
    assert str(caught.value) == (
        f"as_of {text!r} is {side} in UTC, the earliest and latest times that can be looked up; "
        "give a time between 0001-01-01 and 9999-12-31 UTC."
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "yesterday",
        "2025-02-30",
        "0000-01-01",
        "99999-01-01",
        "2025-12-10T25:00",
        "2025-12-10T12:00+24:00",
        "1 Dec",
        "2025-12-01Z",
        "x" * 200,
        None,
        20251201,
    ],
)
def test_what_is_not_a_date_says_so_naming_the_field(text):
    with pytest.raises(CalibrationPolicyError) as caught:
        parse_moment(text, "DATE")
    message = str(caught.value)
    assert message.startswith("DATE ") and message.endswith(
        " is not a date or time; use YYYY-MM-DD (the end of that UTC day) or an ISO time such as 2025-12-01T14:00Z."
    )


@settings(max_examples=400, deadline=None)
@given(
    moment=MOMENTS, zone=st.one_of(st.none(), OFFSETS), timespec=st.sampled_from(["minutes", "seconds", "microseconds"])
)
@example(moment=datetime(1, 1, 1), zone=timezone(timedelta(hours=5)), timespec="minutes")
@example(moment=datetime(9999, 12, 31, 23), zone=timezone(timedelta(hours=-5)), timespec="minutes")
@example(moment=datetime(9999, 12, 31, 23, 59, 59, 999999), zone=None, timespec="microseconds")
def test_any_typed_moment_is_utc_or_a_plain_refusal(moment, zone, timespec):
    typed = moment.replace(tzinfo=zone)
    if timespec != "microseconds":
        typed = typed.replace(microsecond=0, second=0 if timespec == "minutes" else typed.second)
    text = typed.isoformat(timespec=timespec)
    expected = in_utc(typed) if zone is not None else typed.replace(tzinfo=UTC)
    try:
        got = parse_moment(text, "at")
    except CalibrationPolicyError as error:
        assert expected is None, f"{text} was refused but is {expected} in UTC: {error}"
        assert text in str(error)
        return
    assert expected is not None and got == expected and got.tzinfo is UTC, (text, got)


@settings(max_examples=200, deadline=None)
@given(day=st.dates())
def test_a_bare_date_is_the_end_of_that_utc_day(day):
    end = parse_moment(day.isoformat(), "at")
    assert end == datetime.combine(day, time.max, tzinfo=UTC) == parse_moment(f"{day}T23:59:59.999999Z", "at")
    assert end.tzinfo is UTC


@settings(max_examples=200, deadline=None)
@given(moment=MOMENTS, zone=OFFSETS)
def test_to_utc_and_aware_utc_never_overflow(moment, zone):
    typed = moment.replace(tzinfo=zone)
    expected = in_utc(typed)
    try:
        assert to_utc(typed) == expected
    except CalibrationPolicyError:
        assert expected is None
    try:
        assert aware_utc(typed) == expected
    except ValueError as error:
        assert expected is None and "outside the years 1 to 9999" in str(error)


def test_aware_utc_refuses_naive_times():
    with pytest.raises(ValueError, match="naive"):
        aware_utc(datetime(2025, 12, 10))
    assert aware_utc(None) is None
