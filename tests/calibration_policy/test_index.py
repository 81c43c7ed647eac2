"""RunIndex: the rebuildable SQLite cache of run file names."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calibration_policy.index import INDEX_DIR, INDEX_NAME, RunIndex, scan_names

STAMP = "20251210T153000.000000Z"


def touch_run(directory: Path, stamp: str, underlying: str = "SPY", source: str = "live", seq: int = 0) -> str:
    name = f"{stamp}_{underlying}_{source}{f'_{seq}' if seq else ''}.json"
    (directory / name).write_text("{}")
    return name


def stamp(day: int, second: int = 0) -> str:
    return f"202512{day:02d}T0000{second:02d}.000000Z"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    return path


@pytest.fixture
def index(folder: Path):
    idx = RunIndex(folder)
    yield idx
    idx.close()


def test_newest_first_by_stamp_then_numeric_sequence(folder, index):
    names = [touch_run(folder, STAMP)] + [touch_run(folder, STAMP, seq=s) for s in range(2, 13)]
    touch_run(folder, stamp(1))
    later = touch_run(folder, stamp(31))
    got = index.newest("SPY", 100)
    assert got[0] == later
    # _10, _11, _12 sort after _9 (numerically, not as text).
    assert got[1:13] == list(reversed(names))
    assert got[-1] == f"{stamp(1)}_SPY_live.json"


def test_limit_offset_and_filters_by_underlying(folder, index):
    spy = [touch_run(folder, stamp(d)) for d in range(1, 21)]
    for d in range(1, 6):
        touch_run(folder, stamp(d), underlying="QQQ")
        touch_run(folder, stamp(d, 1), source="harvested")
    assert index.newest("SPY", 3) == [spy[19], spy[18], spy[17]]
    newest = index.newest("SPY", 100)
    assert len(newest) == 25 and all("_SPY_" in n for n in newest)
    assert index.newest("SPY", 5, offset=0) == newest[:5]
    assert index.newest("SPY", 5, offset=5) == newest[5:10]
    assert index.newest("SPY", 5, offset=24) == newest[24:]
    assert index.count("SPY") == 25 and index.count("QQQ") == 5 and index.count("IWM") == 0
    assert index.underlyings() == ["QQQ", "SPY"]


def test_foreign_temp_and_unparseable_names_are_not_indexed(folder, index):
    good = touch_run(folder, STAMP)
    for junk in (".tmp-abc", "README.md", "x.json", f"{STAMP}_SPY_Live.json", f"{STAMP}_SPY_live_0.json",
                 f"{STAMP}_SPY_live_01.json", "2025121T153000.000000Z_SPY_live.json", f"{STAMP}_SPY_live.json.bak"):  # fmt: skip
        (folder / junk).write_text("{}")
    (folder / "sub").mkdir()
    assert index.newest("SPY", 100) == [good]
    assert set(scan_names(folder)) == {good}


def test_index_lives_in_a_subfolder_and_loads_never_touch_the_run_folder(folder, index):
    touch_run(folder, STAMP)
    time.sleep(0.05)
    index.newest("SPY", 10)
    before = os.stat(folder).st_mtime_ns
    for _ in range(5):
        index.newest("SPY", 10)
        index.count("SPY")
    assert (folder / INDEX_DIR / INDEX_NAME).is_file()
    assert os.stat(folder).st_mtime_ns == before


def test_changes_are_seen_without_waiting(folder, index):
    assert index.newest("SPY", 10) == []
    for i in range(1, 20):
        name = touch_run(folder, stamp(i))
        assert index.newest("SPY", 1) == [name]  # every new file, however quick
    os.unlink(folder / name)
    assert index.newest("SPY", 1) == [f"{stamp(18)}_SPY_live.json"]


def test_a_scan_of_a_quiet_folder_is_trusted_and_a_change_still_seen(folder, index):
    touch_run(folder, stamp(1))
    time.sleep(0.3)  # past the racy window: this scan may be trusted
    assert index.count("SPY") == 1
    time.sleep(0.3)
    name = touch_run(folder, stamp(2))
    assert index.newest("SPY", 1) == [name]
    time.sleep(0.3)
    os.unlink(folder / name)
    assert index.newest("SPY", 5) == [f"{stamp(1)}_SPY_live.json"]


def test_two_indexes_on_one_folder_agree(folder):
    a, b = RunIndex(folder), RunIndex(folder)
    try:
        touch_run(folder, stamp(1))
        assert a.newest("SPY", 5) == b.newest("SPY", 5)
        name = touch_run(folder, stamp(2))
        assert b.newest("SPY", 1) == [name] and a.newest("SPY", 1) == [name]
    finally:
        a.close()
        b.close()


def test_index_rebuilt_after_deletion(folder):
    names = [touch_run(folder, stamp(d)) for d in range(1, 4)]
    first = RunIndex(folder)
    first.newest("SPY", 10)
    first.close()
    shutil.rmtree(folder / INDEX_DIR)
    second = RunIndex(folder)
    try:
        assert second.newest("SPY", 10) == list(reversed(names))
        assert (folder / INDEX_DIR / INDEX_NAME).is_file()
    finally:
        second.close()


def test_garbage_index_is_rebuilt_with_a_warning(folder, caplog):
    names = [touch_run(folder, stamp(d)) for d in range(1, 4)]
    (folder / INDEX_DIR).mkdir()
    (folder / INDEX_DIR / INDEX_NAME).write_bytes(os.urandom(4096))
    idx = RunIndex(folder)
    try:
        with caplog.at_level(logging.WARNING, logger="calibration_policy"):
            assert idx.newest("SPY", 10) == list(reversed(names))
        assert "corrupt" in caplog.text
    finally:
        idx.close()


def test_unopenable_index_falls_back_to_scanning(folder, caplog):
    names = [touch_run(folder, stamp(d)) for d in range(1, 4)]
    (folder / INDEX_DIR).write_text("not a folder")
    idx = RunIndex(folder)
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        assert idx.newest("SPY", 2) == [names[2], names[1]]
        assert idx.newest("SPY", 2, offset=2) == [names[0]]
        assert idx.count("SPY") == 3 and idx.underlyings() == ["SPY"]
    assert "scanning the directory instead" in caplog.text
    new = touch_run(folder, stamp(9))
    assert idx.newest("SPY", 1) == [new]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_folder_falls_back_to_scanning(folder):
    names = [touch_run(folder, stamp(d)) for d in range(1, 4)]
    os.chmod(folder, 0o555)
    try:
        idx = RunIndex(folder)
        assert idx.newest("SPY", 10) == list(reversed(names))
    finally:
        os.chmod(folder, 0o755)


def test_many_names_one_underlying_query(folder, index):
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(2000):
        moment = start + timedelta(minutes=17 * i)
        touch_run(folder, f"{moment:%Y%m%dT%H%M%S.%fZ}", underlying=("SPY", "QQQ", "IWM", "DIA")[i % 4])
    assert index.count("SPY") == 500 and index.count("DIA") == 500
    newest = index.newest("SPY", 50)
    assert newest == sorted(newest, reverse=True) and len(newest) == 50
    last = start + timedelta(minutes=17 * 1996)
    assert newest[0] == f"{last:%Y%m%dT%H%M%S.%fZ}_SPY_live.json"


def test_a_file_added_within_one_coarse_mtime_tick_is_seen(folder, index):
    touch_run(folder, stamp(1))
    index.count("SPY")  # creates .index (which itself changes the folder's mtime)
    # Emulate a filesystem that stores whole seconds: the folder's mtime is a whole second, 0.5–1.5 s ago.
    tick = (time.time_ns() // 1_000_000_000 - 1) * 1_000_000_000
    os.utime(folder, ns=(tick, tick))
    assert index.count("SPY") == 1  # a scan at least 0.5 s after the mtime: trusted
    name = touch_run(folder, stamp(2))
    os.utime(folder, ns=(tick, tick))  # same second, so a coarse filesystem shows the same mtime
    assert index.newest("SPY", 1) == [name]


def test_an_index_that_cannot_be_written_is_left_alone_and_the_folder_is_scanned(folder, index, monkeypatch):
    first = touch_run(folder, stamp(1))
    assert index.newest("SPY", 5) == [first]
    database = folder / ".index" / "runs.sqlite3"

    def read_only(db):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(index, "_sync", read_only)
    second = touch_run(folder, stamp(2))
    assert index.newest("SPY", 5) == [second, first]  # still right, from a plain scan
    assert database.exists()  # a read-only index is not "corrupt": it is not deleted


@pytest.mark.parametrize(
    "raw_name",
    [
        b"20251210T153000.000000Z_SP\xffY_live.json",
        b"20251210T153000.000000Z_SPY_live\xff.json",
        b"20251210T153000.000000Z_SPY (1)_live.json",
        b"20251210T153000.000000Z_spy_live.json",
        b"x\n20251210T153000.000000Z_SPY_live.json",  # read as two lines, its second was a run that is not there
    ],
    ids=["not-utf8-symbol", "not-utf8-source", "copy-suffix", "lower-case", "newline"],
)
@pytest.mark.parametrize("fallback", [False, True], ids=["sqlite", "scan"])
def test_a_name_that_only_looks_like_a_run_is_never_indexed(folder, raw_name, fallback, caplog):
    """Issue 11, D4: a byte that is not UTF-8 made SQLite raise on every load of every underlying;
    "SPY (1)" was indexed as an underlying, so the panel's list of them answered 400."""
    runs = [touch_run(folder, stamp(d)) for d in range(1, 4)]
    touch_run(folder, stamp(2), underlying="QQQ")
    with open(os.path.join(os.fsencode(folder), raw_name), "wb") as handle:
        handle.write(b"{}")
    if fallback:
        (folder / INDEX_DIR).write_text("not a folder")  # the index cannot be opened: plain scans
    idx = RunIndex(folder)
    try:
        with caplog.at_level(logging.WARNING, logger="calibration_policy"):
            for _ in range(3):
                assert idx.newest("SPY", 10) == list(reversed(runs))
                assert idx.underlyings() == ["QQQ", "SPY"] and idx.count("SPY") == 3
    finally:
        idx.close()
    shown = raw_name.decode("utf-8", "backslashreplace")
    assert len([r for r in caplog.records if shown in r.getMessage()]) == 1


def test_a_listing_read_in_chunks_gives_every_name_and_the_buckets_figures_of_one_listdir(tmp_path, monkeypatch):
    """The packed listing (issue 26: a relist of a million names held 110 MB as Python objects) hands back exactly
    what ``os.listdir`` gives, across chunk edges, with names that are not UTF-8 or hold a newline."""
    import zlib

    import numpy as np

    from calibration_policy import index as index_module

    monkeypatch.setattr(index_module, "LISTING_CHUNK", 3)
    for i in range(10):
        touch_run(tmp_path, stamp(1, i))
    for odd in (b"caf\xe9.json", b"two\nlines.json", b".tmp-half"):
        (Path(os.fsdecode(bytes(tmp_path))) / os.fsdecode(odd)).write_bytes(b"")
    listed = os.listdir(os.fsencode(tmp_path))
    listing = index_module._Listing(tmp_path)
    assert len(listing) == len(listed) == 13
    buckets = np.array([zlib.crc32(n) % index_module.BUCKETS for n in listed])
    assert listing.counts.tolist() == np.bincount(buckets, minlength=index_module.BUCKETS).tolist()
    assert listing.sums[buckets[0]] == sum(
        zlib.crc32(n) for n in listed if zlib.crc32(n) % index_module.BUCKETS == buckets[0]
    )
    some = [buckets[0], buckets[5], buckets[12]]
    assert listing.in_buckets(some) == [name for name, bucket in zip(listed, buckets) if bucket in some]
    assert listing.every() == listed
