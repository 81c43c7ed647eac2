"""Names that become file names: underlyings, sources, record ids, stamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration_policy import InvalidNameError
from calibration_policy.naming import (
    check_record_id,
    check_source,
    check_underlying,
    is_archive_file_name,
    is_suggestion_file_name,
    numbered,
    parse_run_file_name,
    parse_stamp,
    run_file_name,
    sequence_key,
    utc_stamp,
)


@pytest.mark.parametrize(
    "raw, canonical",
    [("SPY", "SPY"), ("spy", "SPY"), (" qqq ", "QQQ"), ("BRK.B", "BRK.B"), ("^VIX", "^VIX"), ("ES-F", "ES-F"),
     ("A", "A"), ("X" * 15, "X" * 15), ("0700.HK", "0700.HK")],
)  # fmt: skip
def test_valid_underlyings(raw, canonical):
    assert check_underlying(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    ["../x", "a/b", "a\\b", "S\x00", "", "   ", "A" * 16, "A" * 500, "\u0405PY", "SP\u0423", "ＳＰＹ", "..", "A..B",
     ".SPY", "-SPY", "SPY_1", "SP Y", "S\tPY", "^", "^^VIX", "SPY$", "~", "SPY/../../etc", "%2e%2e", "C:"],
)  # fmt: skip
def test_hostile_underlyings_rejected_with_an_example(raw):
    with pytest.raises(InvalidNameError) as info:
        check_underlying(raw)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "not a valid underlying symbol" in message and "'SPY'" in message
    assert len(message) < 300  # a 500-char input is shortened, not echoed in full


@pytest.mark.parametrize("raw", [None, 42, b"SPY", ["SPY"]])
def test_non_text_underlying_rejected(raw):
    with pytest.raises(InvalidNameError, match="text symbol"):
        check_underlying(raw)


@pytest.mark.parametrize("raw", ["live", "harvested", "my-source", "s3"])
def test_valid_sources(raw):
    assert check_source(raw) == raw


@pytest.mark.parametrize(
    "raw", ["Live", "Live/../", "", "live_2", "live.json", "../live", "a" * 33, "1live", "live\x00", None]
)
def test_bad_sources_rejected(raw):
    with pytest.raises(InvalidNameError, match="source"):
        check_source(raw)


@pytest.mark.parametrize("raw", ["20251210T123456.123456Z_SPY_live", "abc-1.2_x"])
def test_valid_record_ids(raw):
    assert check_record_id(raw) == raw


@pytest.mark.parametrize("raw", ["../x", "a/b", "", ".hidden", "a..b", "x" * 129, "a b", "a\x00"])
def test_bad_record_ids(raw):
    with pytest.raises(InvalidNameError):
        check_record_id(raw, "run id")


def test_stamp_is_utc_sortable_and_filename_safe():
    moment = datetime(2025, 12, 10, 12, 34, 56, 123456, tzinfo=UTC)
    assert utc_stamp(moment) == "20251210T123456.123456Z"
    berlin = moment.astimezone(timezone(timedelta(hours=1)))
    assert utc_stamp(berlin) == "20251210T123456.123456Z"
    assert parse_stamp("20251210T123456.123456Z") == moment


def test_file_name_round_trip():
    assert run_file_name("20251210T123456.123456Z", "SPY", "live") == "20251210T123456.123456Z_SPY_live.json"
    assert (
        run_file_name("20251210T123456.123456Z", "BRK.B", "harvested", 2)
        == "20251210T123456.123456Z_BRK.B_harvested_2.json"
    )
    assert parse_run_file_name("20251210T123456.123456Z_BRK.B_harvested_2.json") == (
        "20251210T123456.123456Z",
        "BRK.B",
        "harvested",
        2,
    )
    assert parse_run_file_name("20251210T123456.123456Z_^VIX_live.json") == (
        "20251210T123456.123456Z",
        "^VIX",
        "live",
        0,
    )


@pytest.mark.parametrize(
    "name",
    [".tmp-x", "README.md", "20251210T123456.123456Z_SPY_live.json.tmp", "20251210T123456Z_SPY_live.json",
     "20251210T123456.123456Z_SPY.json", "20251210T123456.123456Z_SPY_live_0.json", "20251210T123456.123456Z__live.json",
     "20251210T123456.123456Z_SPY_Live.json", "x20251210T123456.123456Z_SPY_live.json",
     # issue 11, D4: names that only look like runs. Each was indexed as a run of an impossible
     # symbol, so the panel's list of underlyings failed check_underlying and answered 400.
     "20251210T123456.123456Z_SPY (1)_live.json", "20251210T123456.123456Z_spy_live.json",
     "20251210T123456.123456Z_SP..Y_live.json", "20251210T123456.123456Z_SPY\udcff_live.json",
     "20251210T123456.123456Z_\u0405PY_live.json", "20251210T123456.123456Z_ABCDEFGHIJKLMNOPQ_live.json",
     "\uff12\uff10251210T123456.123456Z_SPY_live.json", "20251210T123456.123456Z_SPY_live\udcff.json"],
)  # fmt: skip
def test_other_names_are_not_runs(name):
    assert parse_run_file_name(name) is None


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_every_name_that_parses_as_a_run_has_a_valid_symbol_and_source(name):
    """Whatever a folder holds, a parsed name never yields a symbol check_underlying refuses (D4)."""
    parts = parse_run_file_name(f"20251210T123456.123456Z_{name}.json")
    if parts is not None:
        assert check_underlying(parts[1]) == parts[1] and check_source(parts[2]) == parts[2]
        parts[1].encode("ascii")


def test_archive_and_suggestion_file_names():
    assert is_archive_file_name("20251210T123456.123456Z.json") and is_archive_file_name(
        "20251210T123456.123456Z_12.json"
    )
    for name in (
        "20251210T123456.123456Z (1).json",
        "notes.json",
        "20251210T123456.123456Z\udcff.json",
        "20251210T123456.123456Z_0.json",
    ):
        assert not is_archive_file_name(name), name
    assert is_suggestion_file_name("20251210T123456.123456Z_vol_surface_SPY_2.json")
    for name in (
        "20251210T123456.123456Z_live (1).json",
        "20251210T123456.123456Z_live\udcff.json",
        "20251210T123456.123456Z_.json",
        "20251210T123456.123456Z_a..b.json",
        "x.json",
    ):
        assert not is_suggestion_file_name(name), name


def test_numbered_names_skip_one_and_sort_numerically():
    names = numbered("20251210T123456.123456Z_live")
    first = [next(names) for _ in range(12)]
    assert first[:3] == [
        "20251210T123456.123456Z_live.json",
        "20251210T123456.123456Z_live_2.json",
        "20251210T123456.123456Z_live_3.json",
    ]
    stems = [n.removesuffix(".json") for n in first]
    shuffled = sorted(stems)  # as text: …_10, …_11, …_12 come before …_2
    assert shuffled != stems
    assert sorted(shuffled, key=sequence_key) == stems


@pytest.mark.parametrize(
    "record_id, base, key",
    [("20251210T123456.123456Z", None, ("20251210T123456.123456Z", 0)),
     ("20251210T123456.123456Z_10", None, ("20251210T123456.123456Z", 10)),
     ("20251210T123456.123456Z_SPY_live_9", None, ("20251210T123456.123456Z_SPY_live", 9)),
     # a target may itself end in _<digits>: with its base the number is never mistaken
     ("S_target_2", "S_target_2", ("S_target_2", 0)),
     ("S_target_2_10", "S_target_2", ("S_target_2", 10)),
     ("S_other", "S_target", ("S_other", 0))],
)  # fmt: skip
def test_sequence_key(record_id, base, key):
    assert sequence_key(record_id, base) == key


@settings(max_examples=100, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)),
    underlying=st.from_regex(r"\^?[A-Z0-9][A-Z0-9.\-]{0,14}", fullmatch=True).filter(lambda s: ".." not in s),
    source=st.from_regex(r"[a-z][a-z0-9\-]{0,31}", fullmatch=True),
    seq=st.integers(0, 999_999).filter(lambda n: n != 1),
)
def test_any_valid_parts_round_trip_and_sort_by_time(moment, underlying, source, seq):
    stamp = utc_stamp(moment)
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z", stamp)
    assert parse_stamp(stamp) == moment
    name = run_file_name(stamp, check_underlying(underlying), check_source(source), seq)
    assert parse_run_file_name(name) == (stamp, underlying, source, seq)
    later = utc_stamp(moment + timedelta(microseconds=1))
    assert later > stamp
