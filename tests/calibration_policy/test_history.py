"""The run store: record → load, strict JSON on disk, bad input, corrupt files, the name index."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibration_policy import (
    CalibrationRun,
    HistoryError,
    HistoryStore,
    InvalidNameError,
    InvalidRunError,
    load_recent_calibration_history,
    open_store,
    record_calibration_result,
)
from calibration_policy import history as history_module
from calibration_policy import index as index_module

from .conftest import index_listings

DESIGN_KEYS = {
    "schema_version", "timestamp", "underlying", "source", "config", "config_hash", "global_metrics", "bands",
    "recommended_iv_multiplier", "smoothed_iv_multiplier", "sample_size", "vega_sum", "applied", "applied_reason",
}  # fmt: skip
FILE_NAME = re.compile(r"\d{8}T\d{6}\.\d{6}Z_[A-Z0-9.\-^]+_[a-z][a-z0-9\-]*(_\d+)?\.json")


def strict_json(path: Path):
    def refuse(constant):
        raise AssertionError(f"{path.name} contains {constant}, which is not valid JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def run_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file() and p.name.endswith(".json"))


T0 = datetime(2025, 12, 10, 15, 30, tzinfo=UTC)  # the same as the conftest's t0


def listing(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


# -- record → load -------------------------------------------------------------------------------


def test_record_then_load_gives_equal_fields(history_dir, make_result, t0):
    result = make_result(global_m=1.06, bands={"weekly": 1.09, "monthly": 1.02}, n=412, vega_sum=12400.0)
    run = record_calibration_result(
        result, "SPY", "live", history_dir=history_dir, timestamp=t0, config={"bands": "default"}
    )
    (loaded,) = load_recent_calibration_history("SPY", limit=50, history_dir=history_dir)
    assert loaded == run
    assert loaded.model_dump() == run.model_dump()
    assert loaded.timestamp == t0 and loaded.timestamp.tzinfo is not None
    assert loaded.underlying == "SPY" and loaded.source == "live"
    assert loaded.recommended_iv_multiplier == {"global": 1.06, "weekly": 1.09, "monthly": 1.02}
    assert loaded.sample_size == 412 and loaded.vega_sum == 12400.0
    assert loaded.applied is None and loaded.applied_reason is None and loaded.smoothed_iv_multiplier is None
    assert loaded.global_metrics["mae_vol_points"] == 1.84
    assert loaded.bands["weekly"]["min_dte"] == 3 and loaded.bands["monthly"]["max_dte"] == 40
    assert loaded.config == {"bands": "default"} and len(loaded.config_hash) == 16
    assert loaded.dropped_count == 37  # the host's extra metrics are kept
    assert loaded.run_id == run.run_id


def test_file_has_every_design_key_and_is_strict_json(history_dir, make_result, t0):
    run = record_calibration_result(make_result(), "SPY", "harvested", history_dir=history_dir, timestamp=t0)
    path = history_dir / f"{run.run_id}.json"
    data = strict_json(path)
    assert DESIGN_KEYS <= set(data)
    assert data["schema_version"] == 1
    assert data["timestamp"] == "2025-12-10T15:30:00Z"
    assert data["recommended_iv_multiplier"] == {"global": 1.05, "weekly": 1.07, "monthly": 1.03}
    assert data["underlying"] == "SPY" and data["source"] == "harvested"
    assert "run_id" not in data  # the name is the id; never stored twice


def test_file_name_pattern(history_dir, make_result):
    moment = datetime(2025, 12, 10, 12, 34, 56, 123456, tzinfo=UTC)
    run = record_calibration_result(make_result(), "brk.b", "live", history_dir=history_dir, timestamp=moment)
    assert run_files(history_dir) == ["20251210T123456.123456Z_BRK.B_live.json"]
    assert run.run_id == "20251210T123456.123456Z_BRK.B_live"
    assert FILE_NAME.fullmatch(run_files(history_dir)[0])


def test_default_timestamp_is_now_in_utc(history_dir, make_result):
    before = datetime.now(UTC)
    run = record_calibration_result(make_result(), "SPY", "live", history_dir=history_dir)
    after = datetime.now(UTC)
    assert before <= run.timestamp <= after
    assert run.timestamp.utcoffset() == timedelta(0)
    assert FILE_NAME.fullmatch(run_files(history_dir)[0])


def test_same_timestamp_twice_keeps_both(history_dir, make_result, t0):
    first = record_calibration_result(make_result(global_m=1.01), "SPY", "live", history_dir=history_dir, timestamp=t0)
    second = record_calibration_result(make_result(global_m=1.02), "SPY", "live", history_dir=history_dir, timestamp=t0)
    third = record_calibration_result(make_result(global_m=1.03), "SPY", "live", history_dir=history_dir, timestamp=t0)
    stamp = "20251210T153000.000000Z"
    assert run_files(history_dir) == [f"{stamp}_SPY_live.json", f"{stamp}_SPY_live_2.json", f"{stamp}_SPY_live_3.json"]
    assert len({first.run_id, second.run_id, third.run_id}) == 3
    loaded = load_recent_calibration_history("SPY", limit=50, history_dir=history_dir)
    assert [r.recommended_iv_multiplier["global"] for r in loaded] == [1.01, 1.02, 1.03]


def test_naive_timestamp_rejected_and_nothing_written(history_dir, make_result, t0):
    record_calibration_result(make_result(), "SPY", "live", history_dir=history_dir, timestamp=t0)
    before = listing(history_dir)
    with pytest.raises(InvalidRunError, match="timezone-aware"):
        record_calibration_result(
            make_result(), "SPY", "live", history_dir=history_dir, timestamp=datetime(2025, 12, 10, 15, 30)
        )
    with pytest.raises(InvalidRunError, match="timezone-aware"):
        record_calibration_result(
            make_result(), "SPY", "live", history_dir=history_dir, timestamp="2025-12-10T15:30:00Z"
        )  # type: ignore[arg-type]
    assert listing(history_dir) == before


def test_non_utc_timestamp_is_converted_to_utc(history_dir, make_result):
    new_york = timezone(timedelta(hours=-5))
    run = record_calibration_result(
        make_result(), "SPY", "live", history_dir=history_dir, timestamp=datetime(2025, 12, 10, 10, 30, tzinfo=new_york)
    )
    assert run.timestamp == datetime(2025, 12, 10, 15, 30, tzinfo=UTC)
    assert run.timestamp.utcoffset() == timedelta(0)
    assert run_files(history_dir) == ["20251210T153000.000000Z_SPY_live.json"]
    assert strict_json(history_dir / run_files(history_dir)[0])["timestamp"] == "2025-12-10T15:30:00Z"
    (loaded,) = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert loaded.timestamp.utcoffset() == timedelta(0)


def test_underlying_is_case_insensitive(history_dir, make_result, t0):
    record_calibration_result(make_result(), " spy ", "live", history_dir=history_dir, timestamp=t0)
    assert [r.underlying for r in load_recent_calibration_history("spy", history_dir=history_dir)] == ["SPY"]


# -- bad input: a ValueError naming the problem, and nothing written ---------------------------

BAD_UNDERLYINGS = [
    "../x",
    "a/b",
    "S\x00",
    "",
    "A" * 500,
    "\u0405PY",
    "..",
    "SP Y",
    "SP\nY",
    "SPY_",
    "SPY/..",
    "%2e%2e",
    42,
    None,
]


@pytest.mark.parametrize("underlying", BAD_UNDERLYINGS, ids=repr)
def test_hostile_underlying_rejected_nothing_written(history_dir, make_result, t0, underlying, tmp_path):
    record_calibration_result(make_result(), "SPY", "live", history_dir=history_dir, timestamp=t0)
    before, outside = listing(history_dir), listing(tmp_path)
    with pytest.raises(InvalidNameError) as info:
        record_calibration_result(make_result(), underlying, "live", history_dir=history_dir, timestamp=t0)
    assert isinstance(info.value, ValueError)
    assert "underlying" in str(info.value)
    assert listing(history_dir) == before and listing(tmp_path) == outside
    with pytest.raises(InvalidNameError):
        load_recent_calibration_history(underlying, history_dir=history_dir)


@pytest.mark.parametrize("source, error, words", [
    ("bogus", InvalidRunError, ["'bogus'", "live, harvested"]),
    ("Live/../", InvalidNameError, ["source"]),
    ("", InvalidNameError, ["source"]),
    ("live\x00", InvalidNameError, ["source"]),
    ("LIVE", InvalidNameError, ["source"]),
])  # fmt: skip
def test_bad_source_rejected_nothing_written(history_dir, make_result, t0, source, error, words):
    before = listing(history_dir)
    with pytest.raises(error) as info:
        record_calibration_result(make_result(), "SPY", source, history_dir=history_dir, timestamp=t0)
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)
    assert listing(history_dir) == before == []


def _with(result: dict, path: str, value) -> dict:
    target = result
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    target[last] = value
    return result


@pytest.mark.parametrize(
    "path, value, words",
    [
        ("global_metrics.recommended_iv_multiplier", math.nan, ["The Global IV multiplier is NaN"]),
        ("global_metrics.recommended_iv_multiplier", math.inf, ["The Global IV multiplier is infinite"]),
        ("global_metrics.recommended_iv_multiplier", -1.0, ["Global IV multiplier", "positive"]),
        ("global_metrics.recommended_iv_multiplier", "1.05", ["global_metrics.recommended_iv_multiplier", "number"]),
        ("bands.weekly.recommended_iv_multiplier", math.inf, ["Weekly (3–10d) IV multiplier is infinite"]),
        ("bands.monthly.recommended_iv_multiplier", math.nan, ["Monthly (20–40d) IV multiplier is NaN"]),
        ("global_metrics.mae_vol_points", math.nan, ["global_metrics.mae_vol_points", "not a finite number"]),
        ("global_metrics.vega_weighted_mae_pct", -math.inf, ["global_metrics.vega_weighted_mae_pct"]),
        ("bands.weekly.mae_vol_points", math.inf, ["bands.weekly.mae_vol_points"]),
        ("global_metrics.vega_sum", math.nan, ["vega_sum"]),
        ("global_metrics.n", True, ["global_metrics.n"]),
        ("global_metrics.n", -3, ["global_metrics.n"]),
        ("global_metrics.n", 412.5, ["global_metrics.n"]),
        ("anchor_ratios.0.1", math.nan, ["anchor_ratios.0.1"]),
        ("bands.global", {"recommended_iv_multiplier": 1.0}, ["'global' is reserved"]),
        ("bands", ["weekly"], ["bands"]),
    ],
)
def test_bad_numbers_in_result_rejected_nothing_written(history_dir, make_result, t0, path, value, words):
    record_calibration_result(make_result(), "SPY", "live", history_dir=history_dir, timestamp=t0)
    before = listing(history_dir)
    result = make_result()
    if path.startswith("anchor_ratios"):
        result["anchor_ratios"]["0.1"] = value
    else:
        _with(result, path, value)
    with pytest.raises(InvalidRunError) as info:
        record_calibration_result(result, "SPY", "live", history_dir=history_dir, timestamp=t0 + timedelta(hours=1))
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value), str(info.value)
    assert listing(history_dir) == before
    assert not [n for n in os.listdir(history_dir) if n.startswith(".tmp-")]


@pytest.mark.parametrize(
    "result, words",
    [
        ({"bands": {}}, ["global_metrics"]),
        ({"global_metrics": None}, ["global_metrics"]),
        ({"global_metrics": {"n": 400, "vega_sum": 1.0}}, ["recommended_iv_multiplier"]),
        ([("global_metrics", {})], ["must be a dict", "list"]),
        (None, ["must be a dict"]),
        ("{}", ["must be a dict"]),
    ],
)
def test_malformed_result_rejected_nothing_written(history_dir, t0, result, words):
    with pytest.raises(InvalidRunError) as info:
        record_calibration_result(result, "SPY", "live", history_dir=history_dir, timestamp=t0)
    for word in words:
        assert word in str(info.value)
    assert listing(history_dir) == []


def test_nan_in_config_rejected_nothing_written(history_dir, make_result, t0):
    with pytest.raises(InvalidRunError, match="config.filters.min_volume"):
        record_calibration_result(
            make_result(),
            "SPY",
            "live",
            history_dir=history_dir,
            timestamp=t0,
            config={"filters": {"min_volume": math.nan}},
        )
    assert listing(history_dir) == []


def test_result_without_bands_records_global_only(history_dir, make_result, t0):
    result = make_result()
    del result["bands"]
    run = record_calibration_result(result, "SPY", "live", history_dir=history_dir, timestamp=t0)
    assert run.recommended_iv_multiplier == {"global": 1.05}


def test_rows_are_not_stored(history_dir, make_result, t0):
    result = make_result()
    result["rows"] = [{"strike": 600, "market_iv": 0.2}] * 3
    run = record_calibration_result(result, "SPY", "live", history_dir=history_dir, timestamp=t0)
    assert "rows" not in strict_json(history_dir / f"{run.run_id}.json")


def test_host_metrics_cannot_shadow_our_fields(history_dir, make_result, t0):
    result = make_result()
    result["applied"] = True
    result["underlying"] = "../etc"
    run = record_calibration_result(result, "SPY", "live", history_dir=history_dir, timestamp=t0)
    assert run.applied is None and run.underlying == "SPY"


# -- loading: newest `limit`, oldest first ------------------------------------------------------


def test_load_returns_newest_limit_oldest_first(history_dir, record_series):
    runs = record_series(history_dir, 60)
    record_series(history_dir, 5, underlying="QQQ")
    harvested = record_series(
        history_dir, 5, underlying="SPY", source="harvested", start=T0 + timedelta(days=55, hours=1)
    )
    loaded = load_recent_calibration_history("SPY", limit=50, history_dir=history_dir)
    assert len(loaded) == 50
    assert all(r.underlying == "SPY" for r in loaded)
    stamps = [r.timestamp for r in loaded]
    assert stamps == sorted(stamps)
    assert loaded[-1].run_id == harvested[-1].run_id and loaded[-2].run_id == runs[-1].run_id
    # 60 live (days 0–59) + 5 harvested (days 55–59): the newest 50 are live days 15–59 and all harvested.
    assert loaded[0].run_id == runs[15].run_id
    assert {r.run_id for r in harvested} <= {r.run_id for r in loaded}
    assert [r.run_id for r in load_recent_calibration_history("SPY", limit=3, history_dir=history_dir)] == [
        harvested[-2].run_id,
        runs[-1].run_id,
        harvested[-1].run_id,  # day 58 16:30, day 59 15:30, day 59 16:30
    ]
    assert {r.underlying for r in load_recent_calibration_history("QQQ", history_dir=history_dir)} == {"QQQ"}
    assert load_recent_calibration_history("IWM", history_dir=history_dir) == []


def test_load_from_missing_folder_is_empty(tmp_path):
    assert load_recent_calibration_history("SPY", history_dir=tmp_path / "never") == []
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("limit", [0, -1, True, False, "5", 2.5, None, 100_001])
def test_bad_limit_rejected(history_dir, limit, record_series):
    record_series(history_dir, 2)
    with pytest.raises(HistoryError) as info:
        load_recent_calibration_history("SPY", limit=limit, history_dir=history_dir)
    assert isinstance(info.value, ValueError)
    assert "limit" in str(info.value)


def test_history_dir_from_environment_and_default(tmp_path, monkeypatch, make_result, t0):
    monkeypatch.chdir(tmp_path)
    record_calibration_result(make_result(), "SPY", "live", timestamp=t0)
    assert len(os.listdir(tmp_path / "data" / "calibration_runs")) >= 1
    assert len(load_recent_calibration_history("SPY")) == 1
    elsewhere = tmp_path / "env_runs"
    monkeypatch.setenv("CALIBRATION_HISTORY_DIR", str(elsewhere))
    record_calibration_result(make_result(), "QQQ", "live", timestamp=t0)
    assert run_files(elsewhere) == ["20251210T153000.000000Z_QQQ_live.json"]
    assert load_recent_calibration_history("SPY") == []
    assert len(load_recent_calibration_history("QQQ")) == 1


# -- corrupt and foreign files -----------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S.%fZ")


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff\xfegarbage\x89PNG",
        b'{"hello": "world"}',
        b"[1, 2, 3]",
        b'{"schema_version": 1, "timestamp": "2025-12-30T00:00:00Z", "underl',
        b"",
        b'{"timestamp": "2025-12-30T00:00:00Z", "underlying": "SPY", "source": "live", "recommended_iv_multiplier": {"global": NaN}, "sample_size": 1}',
        # Times a file can hold that leave the datetime range in UTC raised OverflowError on every load (issue 11, D5).
        *[
            b'{"timestamp": "%s", "underlying": "SPY", "source": "live", "recommended_iv_multiplier": {"global": 1.0}, "sample_size": 1}'
            % moment
            for moment in (
                b"0001-01-01T00:00:00+05:00",
                b"9999-12-31T23:00:00-05:00",
                b"2025-12-30T00:00:00",
                b"1969-12-31T23:59:59Z",
                b"9999-06-01T00:00:00Z",
            )
        ],
        b'{"a":' * 100_000,  # json raised RecursionError, which no reader caught (issue 11, D4)
    ],
    ids=[
        "garbage",
        "foreign-object",
        "array",
        "truncated",
        "empty",
        "nan",
        "year-1-east",
        "year-9999-west",
        "naive",
        "before-1970",
        "year-9999",
        "deeply-nested",
    ],
)
def test_corrupt_file_is_skipped_with_a_warning(history_dir, caplog, content, record_series):
    runs = record_series(history_dir, 3)
    bad = history_dir / f"{_stamp(T0 + timedelta(days=30))}_SPY_live.json"
    bad.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        loaded = load_recent_calibration_history("SPY", limit=50, history_dir=history_dir)
    assert [r.run_id for r in loaded] == [r.run_id for r in runs]
    assert any(bad.name in rec.getMessage() and rec.levelno == logging.WARNING for rec in caplog.records)


def test_file_whose_content_names_another_underlying_is_skipped(history_dir, caplog, record_series):
    (qqq,) = record_series(history_dir, 1, underlying="QQQ")
    record_series(history_dir, 2)
    shutil.copy(history_dir / f"{qqq.run_id}.json", history_dir / f"{_stamp(T0 + timedelta(days=40))}_SPY_live.json")
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        loaded = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert [r.underlying for r in loaded] == ["SPY", "SPY"]
    assert "does not match its file name" in caplog.text


def test_corrupt_files_do_not_reduce_the_count_when_more_runs_exist(history_dir, caplog, record_series):
    runs = record_series(history_dir, 80)
    # Corrupt the 10 newest and 100 more "newer" junk files, so the loader has to page past them.
    for run in runs[-10:]:
        (history_dir / f"{run.run_id}.json").write_bytes(b"\x00garbage")
    for i in range(100):
        (history_dir / f"{_stamp(T0 + timedelta(days=200, seconds=i))}_SPY_live.json").write_text('{"x": 1}')
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        loaded = load_recent_calibration_history("SPY", limit=50, history_dir=history_dir)
    assert [r.run_id for r in loaded] == [r.run_id for r in runs[20:70]]
    assert len([r for r in caplog.records if "Skipping" in r.getMessage()]) == 110


def test_foreign_and_temp_files_are_ignored(history_dir, record_series):
    runs = record_series(history_dir, 2)
    (history_dir / "README.md").write_text("notes")
    (history_dir / "notes.json").write_text("{}")
    (history_dir / ".tmp-abc123").write_bytes(b'{"half": ')
    (history_dir / f".tmp-{runs[0].run_id}.json").write_bytes(b"{")
    (history_dir / "subdir").mkdir()
    assert [r.run_id for r in load_recent_calibration_history("SPY", history_dir=history_dir)] == [
        r.run_id for r in runs
    ]


def test_orphan_temp_files_are_swept(history_dir, record_series):
    record_series(history_dir, 2)
    old = history_dir / ".tmp-killed-writer"
    old.write_bytes(b'{"half": ')
    past = time.time() - 3600
    os.utime(old, (past, past))
    young = history_dir / ".tmp-still-writing"
    young.write_bytes(b"{")
    store = open_store(history_dir)
    assert store.sweep() == 1  # default: only temp files older than a minute
    assert not old.exists() and young.exists()
    assert store.sweep(older_than_seconds=0) == 1
    assert not young.exists()
    assert len(run_files(history_dir)) == 2
    assert len(load_recent_calibration_history("SPY", history_dir=history_dir)) == 2


def test_successful_records_leave_no_temp_files(history_dir, record_series):
    record_series(history_dir, 10)
    assert [n for n in os.listdir(history_dir) if n.startswith(".tmp-")] == []


# -- the index sees changes made behind its back ---------------------------------------------


def _write_by_hand(history_dir: Path, moment: datetime, underlying="SPY", global_m=1.23) -> str:
    template = next(p for p in history_dir.iterdir() if p.name.endswith(".json"))
    data = json.loads(template.read_text())
    data.update(timestamp=moment.isoformat().replace("+00:00", "Z"), underlying=underlying)
    data["recommended_iv_multiplier"]["global"] = global_m
    name = f"{_stamp(moment)}_{underlying}_live.json"
    with open(history_dir / name, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data))
    return name.removesuffix(".json")


@pytest.mark.parametrize("pause", [0.0, 0.3], ids=["immediately", "after-0.3s"])
def test_a_file_copied_in_by_hand_is_seen(history_dir, pause, record_series):
    record_series(history_dir, 3)
    time.sleep(pause)
    assert len(load_recent_calibration_history("SPY", history_dir=history_dir)) == 3  # index built
    time.sleep(pause)
    run_id = _write_by_hand(history_dir, T0 + timedelta(days=10))
    loaded = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert len(loaded) == 4 and loaded[-1].run_id == run_id
    assert loaded[-1].recommended_iv_multiplier["global"] == 1.23
    time.sleep(pause)
    second = _write_by_hand(history_dir, T0 + timedelta(days=11), global_m=1.24)
    assert load_recent_calibration_history("SPY", history_dir=history_dir)[-1].run_id == second
    assert open_store(history_dir).count("SPY") == 5


def test_a_file_copied_in_by_hand_is_seen_by_a_separate_store(history_dir, record_series):
    record_series(history_dir, 3)
    time.sleep(0.3)
    assert len(HistoryStore(history_dir).latest("SPY")) == 3
    time.sleep(0.3)
    _write_by_hand(history_dir, T0 + timedelta(days=10))
    assert len(HistoryStore(history_dir).latest("SPY")) == 4
    assert len(load_recent_calibration_history("SPY", history_dir=history_dir)) == 4


@pytest.mark.parametrize("pause", [0.0, 0.3], ids=["immediately", "after-0.3s"])
def test_a_deleted_file_is_noticed(history_dir, pause, caplog, record_series):
    runs = record_series(history_dir, 4)
    time.sleep(pause)
    assert len(load_recent_calibration_history("SPY", history_dir=history_dir)) == 4
    time.sleep(pause)
    (history_dir / f"{runs[-1].run_id}.json").unlink()
    with caplog.at_level(logging.WARNING):
        loaded = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert [r.run_id for r in loaded] == [r.run_id for r in runs[:3]]
    assert open_store(history_dir).count("SPY") == 3


def test_deleted_index_is_rebuilt(history_dir, record_series):
    runs = record_series(history_dir, 5)
    time.sleep(0.3)
    assert len(load_recent_calibration_history("SPY", history_dir=history_dir)) == 5
    shutil.rmtree(history_dir / ".index")
    # This process (cached store) and a new one both still give the right answer.
    assert [r.run_id for r in load_recent_calibration_history("SPY", history_dir=history_dir)] == [
        r.run_id for r in runs
    ]
    fresh = HistoryStore(history_dir)
    assert [r.run_id for r in fresh.latest("SPY")] == [r.run_id for r in runs]
    assert (history_dir / ".index" / "runs.sqlite3").is_file()


def test_rewriting_a_decided_run_keeps_the_index_current(history_dir, record_series, monkeypatch):
    """A decided run is written back after every update; the folder must not be listed again for it
    (at a million runs one listing costs half a second: the update step would not stay flat)."""

    runs = record_series(history_dir, 5)
    store = HistoryStore(history_dir)
    assert len(store.latest("SPY")) == 5  # builds the index (its folder is new: this listing is not trusted yet)
    time.sleep(0.3)  # past the racy window: the next listing is trusted
    assert len(store.latest("SPY")) == 5
    store.save(runs[2].model_copy(update={"applied": False, "applied_reason": "Not applied: checked"}))
    listings = index_listings(monkeypatch)
    assert store.get(runs[2].run_id).applied_reason == "Not applied: checked"
    assert [r.run_id for r in store.latest("SPY")] == [r.run_id for r in runs]
    assert listings == []
    assert not [p for p in history_dir.iterdir() if p.name.startswith(".") and p.name != ".index"]  # no temp left


def test_corrupt_index_file_is_rebuilt(history_dir, caplog, record_series):
    runs = record_series(history_dir, 5)
    HistoryStore(history_dir).latest("SPY")
    index = history_dir / ".index"
    for path in index.iterdir():
        path.unlink()
    (index / "runs.sqlite3").write_bytes(b"this is not a database" * 200)
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        fresh = HistoryStore(history_dir)
        assert [r.run_id for r in fresh.latest("SPY")] == [r.run_id for r in runs]
    assert "corrupt" in caplog.text
    with sqlite3.connect(index / "runs.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 5


def test_index_corrupted_under_a_running_process_is_rebuilt(history_dir, record_series, caplog):
    # Regression: a corrupt index used to raise sqlite3.DatabaseError from the cached connection.
    runs = record_series(history_dir, 5)
    time.sleep(0.3)
    assert len(load_recent_calibration_history("SPY", history_dir=history_dir)) == 5
    for path in (history_dir / ".index").iterdir():
        with open(path, "r+b") as handle:
            handle.write(b"garbage!" * 8192)
    extra = _write_by_hand(history_dir, T0 + timedelta(days=9))
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        loaded = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert [r.run_id for r in loaded] == [r.run_id for r in runs] + [extra]
    assert "corrupt" in caplog.text
    assert open_store(history_dir).count("SPY") == 6


def test_index_that_cannot_be_opened_falls_back_to_scanning(history_dir, caplog, record_series, make_result):
    runs = record_series(history_dir, 3)
    shutil.rmtree(history_dir / ".index")  # the first record started it
    (history_dir / ".index").write_text("a regular file where the index folder should be")
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        store = HistoryStore(history_dir)
        assert [r.run_id for r in store.latest("SPY")] == [r.run_id for r in runs]
        assert store.count("SPY") == 3 and store.underlyings() == ["SPY"]
    assert "scanning the directory instead" in caplog.text
    _write_by_hand(history_dir, T0 + timedelta(days=10))
    assert len(store.latest("SPY")) == 4
    # Recording still works without an index.
    record_calibration_result(make_result(), "SPY", "live", history_dir=history_dir, timestamp=T0 + timedelta(days=20))
    assert len(load_recent_calibration_history("SPY", history_dir=history_dir)) == 5


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_still_loads(history_dir, record_series):
    runs = record_series(history_dir, 3)
    shutil.rmtree(history_dir / ".index", ignore_errors=True)
    os.chmod(history_dir, 0o555)
    try:
        assert [r.run_id for r in HistoryStore(history_dir).latest("SPY")] == [r.run_id for r in runs]
    finally:
        os.chmod(history_dir, 0o755)


def test_read_only_directory_write_fails_cleanly(history_dir, make_result, record_series):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    record_series(history_dir, 1)
    os.chmod(history_dir, 0o555)
    try:
        with pytest.raises(ValueError, match="Could not write"):
            record_calibration_result(
                make_result(), "SPY", "live", history_dir=history_dir, timestamp=T0 + timedelta(days=3)
            )
    finally:
        os.chmod(history_dir, 0o755)


def test_history_path_that_is_a_file_fails_cleanly(tmp_path, make_result):
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="history folder"):
        record_calibration_result(make_result(), "SPY", "live", history_dir=blocker, timestamp=T0)


# -- the store ---------------------------------------------------------------------------------


def test_save_writes_the_decision_back(history_dir, record_series):
    (run,) = record_series(history_dir, 1)
    store = open_store(history_dir)
    decided = run.model_copy(
        update={
            "applied": True,
            "applied_reason": "Applied: forced by user",
            "smoothed_iv_multiplier": {"global": 1.01},
        }
    )
    store.save(decided)
    (loaded,) = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert loaded.applied is True and loaded.applied_reason == "Applied: forced by user"
    assert loaded.smoothed_iv_multiplier == {"global": 1.01}
    assert store.get(run.run_id) == loaded
    assert len(run_files(history_dir)) == 1


def test_save_refuses_nan_in_free_form_fields(history_dir, record_series):
    (run,) = record_series(history_dir, 1)
    path = history_dir / f"{run.run_id}.json"
    before = path.read_bytes()
    with pytest.raises(ValueError, match="decision"):
        open_store(history_dir).save(run.model_copy(update={"decision": {"numbers": {"delta": math.nan}}}))
    assert path.read_bytes() == before


@pytest.mark.parametrize("run_id", ["../../etc/passwd", "nope", "20251210T153000.000000Z_SPY_live/../x", ""])
def test_get_rejects_bad_ids(history_dir, run_id, record_series):
    record_series(history_dir, 1)
    with pytest.raises(ValueError):
        open_store(history_dir).get(run_id)


def test_count_and_underlyings(history_dir, record_series):
    record_series(history_dir, 3)
    record_series(history_dir, 2, underlying="QQQ")
    record_series(history_dir, 1, underlying="^VIX")
    store = open_store(history_dir)
    assert store.count("SPY") == 3 and store.count("qqq") == 2 and store.count("IWM") == 0
    assert store.underlyings() == ["QQQ", "SPY", "^VIX"]


# -- property: any valid run round-trips ----------------------------------------------------

UNDERLYING = st.from_regex(r"\^?[A-Z0-9][A-Z0-9\-]{0,6}(\.[A-Z0-9]{1,3})?", fullmatch=True).filter(
    lambda s: ".." not in s
)
BAND = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12).filter(
    lambda s: s != "global"
)
MULTIPLIER = st.floats(min_value=1e-6, max_value=10.0, allow_nan=False, allow_infinity=False).filter(lambda x: x > 0)
MOMENT = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    underlying=UNDERLYING,
    source=st.sampled_from(["live", "harvested"]),
    global_m=MULTIPLIER,
    bands=st.dictionaries(BAND, MULTIPLIER, max_size=5),
    n=st.integers(0, 10**7),
    vega=st.floats(0, 1e9, allow_nan=False),
    mae=st.floats(0, 100, allow_nan=False),
    moment=MOMENT,
    copies=st.integers(1, 3),
)
def test_any_valid_run_round_trips(underlying, source, global_m, bands, n, vega, mae, moment, copies, make_result):
    result = make_result(global_m=global_m, bands=bands, n=n, vega_sum=vega, mae_vol_points=mae)
    with tempfile.TemporaryDirectory() as folder:
        try:
            recorded = [
                record_calibration_result(result, underlying, source, history_dir=folder, timestamp=moment)
                for _ in range(copies)
            ]
            loaded = load_recent_calibration_history(underlying, limit=50, history_dir=folder)
            assert loaded == recorded
            for run in loaded:
                assert run.recommended_iv_multiplier == {"global": global_m, **bands}
                assert run.sample_size == n and run.vega_sum == vega
                assert run.timestamp == moment and run.timestamp.utcoffset() == timedelta(0)
                strict_json(Path(folder) / f"{run.run_id}.json")
                assert FILE_NAME.fullmatch(f"{run.run_id}.json")
        finally:
            store = history_module._stores.pop((str(Path(folder).absolute()), os.getpid()), None)
            if store is not None:
                store._index.close()


def test_run_model_rejects_naive_timestamp():
    with pytest.raises(ValueError, match="timezone-aware"):
        CalibrationRun(
            timestamp=datetime(2025, 1, 1),
            underlying="SPY",
            source="live",
            recommended_iv_multiplier={"global": 1.0},
            sample_size=1,
        )


def test_one_data_root_sets_every_folder(tmp_path, monkeypatch):
    from calibration_policy.archive import resolve_archive_dir
    from calibration_policy.history import resolve_history_dir
    from calibration_policy.review import resolve_suggestions_dir

    for name in ("CALIBRATION_HISTORY_DIR", "CALIBRATION_ARCHIVE_DIR", "CALIBRATION_SUGGESTIONS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALIBRATION_DATA", str(tmp_path / "root"))
    assert resolve_history_dir() == tmp_path / "root" / "calibration_runs"
    assert resolve_archive_dir() == tmp_path / "root" / "config_archive"
    assert resolve_suggestions_dir() == tmp_path / "root" / "suggestions"
    monkeypatch.setenv("CALIBRATION_ARCHIVE_DIR", str(tmp_path / "elsewhere"))  # the host's own layout still wins
    assert resolve_archive_dir() == tmp_path / "elsewhere"
    assert resolve_history_dir(tmp_path / "given") == tmp_path / "given"


def test_between_keeps_every_run_sharing_the_end_stamp(history_dir, make_result):
    """Runs recorded at one timestamp are _2 … _n; a window ending at that stamp holds them all (it used
    to hold only the first and the current one, so the live smoothing and a replay disagreed)."""
    from calibration_policy.history import build_run

    store = HistoryStore(history_dir)
    moment = datetime(2025, 6, 5, 21, tzinfo=UTC)
    ids = [
        store.record(build_run(make_result(global_m=1.0 + i / 100), "SPY", "live", timestamp=moment)).run_id
        for i in range(12)
    ]
    store.record(build_run(make_result(), "SPY", "live", timestamp=moment + timedelta(seconds=1)))
    assert [r.run_id for r in store.between("SPY", moment - timedelta(days=1), moment)] == ids


# -- runs kept parsed: a load opens only files that changed -------------------------------------


@pytest.fixture
def opened(monkeypatch):
    """The names of the run files loads open (the store's one way to read a run file)."""
    from calibration_policy import foreign

    names: list[str] = []
    real = foreign.read_record_and_stat
    monkeypatch.setattr(foreign, "read_record_and_stat", lambda path, *a: names.append(path.name) or real(path, *a))
    return names


def test_a_load_after_records_opens_no_file_and_gives_equal_runs(history_dir, record_series, opened):
    runs = record_series(history_dir, 5)
    loaded = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert opened == []  # kept as written
    assert loaded == runs
    afresh = HistoryStore(history_dir).latest("SPY")  # another store (another process) reads the files
    assert afresh == loaded and len(opened) == 5


@pytest.mark.parametrize("times", [1, 2, 3])
def test_runs_from_kept_copies_are_each_callers_own(history_dir, record_series, times):
    """Whether a load validates the file, the kept JSON (the first load after a record) or copies the
    kept run (later loads), the caller's run shares nothing it could change with the next load's."""
    record_series(history_dir, 2)
    for _ in range(times - 1):
        load_recent_calibration_history("SPY", history_dir=history_dir)
    first = load_recent_calibration_history("SPY", history_dir=history_dir)
    expected = first[-1].model_copy(deep=True)
    first[-1].global_metrics["mae_vol_points"] = 99.0
    first[-1].bands.clear()
    first[-1].recommended_iv_multiplier["global"] = 3.0
    first[-1].applied = True
    first[-1].buckets[0]["n"] = -1  # an extra field (the host's), a list of dictionaries
    first[-1].anchor_ratios.clear()
    again = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert again[-1] == expected and again[-1] is not first[-1]
    assert again[-1].model_fields_set == expected.model_fields_set
    assert again[-1].model_extra == expected.model_extra and again[-1].model_extra is not first[-1].model_extra
    assert load_recent_calibration_history("SPY", history_dir=history_dir)[-1] == expected


@pytest.mark.parametrize("same_size", [True, False], ids=["same-size", "other-size"])
def test_a_run_file_rewritten_in_place_by_hand_is_read_again(history_dir, record_series, opened, same_size):
    (run,) = record_series(history_dir, 1)
    path = history_dir / f"{run.run_id}.json"
    assert load_recent_calibration_history("SPY", history_dir=history_dir)[0].recommended_iv_multiplier["global"] == 1.0
    text = path.read_text()
    edited = text.replace('"global": 1.0', '"global": 1.5' if same_size else '"global": 1.25')
    assert edited != text
    time.sleep(0.02)  # a later clock tick than the write, even on kernels without multigrain timestamps
    with open(path, "r+", encoding="utf-8") as handle:  # in place: the same inode
        handle.write(edited)
        handle.truncate()
    loaded = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert loaded[0].recommended_iv_multiplier["global"] == (1.5 if same_size else 1.25)
    assert opened == [path.name]


def test_a_run_file_replaced_by_a_copy_with_its_old_times_is_read_again(history_dir, record_series, opened):
    runs = record_series(history_dir, 2)
    old, new = (history_dir / f"{r.run_id}.json" for r in runs)
    assert len(load_recent_calibration_history("SPY", history_dir=history_dir)) == 2
    times = os.stat(new)
    replacement = history_dir / "replacement.tmp"
    replacement.write_text(old.read_text().replace(runs[0].timestamp.strftime("%Y-%m-%d"), "2025-12-11"))
    os.utime(replacement, ns=(times.st_atime_ns, times.st_mtime_ns))  # cp -p: the old modification time
    os.replace(replacement, new)
    loaded = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert loaded[-1].recommended_iv_multiplier["global"] == 1.0  # the copy's content, not the kept one (1.001)
    assert new.name in opened


def test_a_run_file_corrupted_after_it_was_kept_is_skipped(history_dir, record_series, caplog):
    runs = record_series(history_dir, 3)
    assert len(load_recent_calibration_history("SPY", history_dir=history_dir)) == 3
    (history_dir / f"{runs[-1].run_id}.json").write_bytes(b"\x00garbage")
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        loaded = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert [r.run_id for r in loaded] == [r.run_id for r in runs[:2]]
    assert "Skipping" in caplog.text


def test_a_run_saved_by_another_store_is_read_again(history_dir, record_series, opened):
    runs = record_series(history_dir, 2)
    assert len(load_recent_calibration_history("SPY", history_dir=history_dir)) == 2
    HistoryStore(history_dir).save(runs[-1].model_copy(update={"applied": True, "applied_reason": "elsewhere"}))
    loaded = load_recent_calibration_history("SPY", history_dir=history_dir)
    assert loaded[-1].applied_reason == "elsewhere" and opened == [f"{runs[-1].run_id}.json"]


def test_a_run_saved_here_is_kept_as_saved(history_dir, record_series, opened):
    runs = record_series(history_dir, 2)
    store = open_store(history_dir)
    store.save(runs[-1].model_copy(update={"applied": False, "applied_reason": "checked"}))
    assert store.latest("SPY")[-1].applied_reason == "checked" and opened == []


def test_a_file_read_within_the_racy_window_is_read_again_until_it_is_older(history_dir, opened, record_series):
    (run,) = record_series(history_dir, 1)
    store = open_store(history_dir)
    store.latest("SPY")  # the index built: the next loads list nothing and wait for nothing
    path = history_dir / f"{run.run_id}.json"
    path.write_text(path.read_text().replace('"global": 1.0', '"global": 1.5'))  # in place: the folder is unchanged
    for _ in range(2):
        assert store.latest("SPY")[-1].recommended_iv_multiplier["global"] == 1.5
    assert opened == [path.name] * 2  # too new to keep: a rewrite in the same clock tick would not show
    time.sleep(index_module.RACY_NS / 1e9 + 0.05)
    for _ in range(2):
        assert store.latest("SPY")[-1].recommended_iv_multiplier["global"] == 1.5
    assert opened == [path.name] * 3  # read once more, then kept


def test_kept_runs_stay_within_their_budget(history_dir, record_series, monkeypatch):
    monkeypatch.setattr(history_module, "PARSED_BUDGET", 5_000)
    runs = record_series(history_dir, 10)
    store = open_store(history_dir)
    assert 0 < store._parsed_bytes <= 5_000 and len(store._parsed) < 10
    assert [r.run_id for r in store.latest("SPY")] == [r.run_id for r in runs]
    assert store._parsed_bytes == sum(len(blob) for _, blob, _ in store._parsed.values()) <= 5_000
    monkeypatch.setattr(history_module, "PARSED_BUDGET", 10**9)  # now the count alone limits
    time.sleep(index_module.RACY_NS / 1e9 + 0.05)  # every file old enough to keep once read
    monkeypatch.setattr(history_module, "PARSED_RUNS", 3)
    assert store.latest("SPY") == store.latest("SPY") and len(store._parsed) == 3
