"""Issue 12: the index kept current by the library's own writes, changes behind its back noticed,
keyset paging without duplicates or gaps, an index build that survives a kill."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from calibration_policy import index as index_module
from calibration_policy.errors import HistoryError
from calibration_policy.history import HistoryStore, build_run, cursor_of, parse_cursor
from calibration_policy.index import INDEX_DIR, INDEX_NAME

from .conftest import T0, index_listings


@pytest.fixture
def store(history_dir: Path):
    s = HistoryStore(history_dir)
    yield s
    s._index.close()


def _quiet(folder: Path) -> None:
    """Wait past the racy window so a listing of ``folder`` may be trusted."""
    time.sleep(index_module.RACY_NS / 1e9 + 0.05)


def _record(store: HistoryStore, make_result, moment, underlying="SPY", source="live", g=1.05):
    return store.record(build_run(make_result(global_m=g), underlying, source, timestamp=moment))


def test_record_adds_its_name_to_the_index_and_the_next_load_lists_nothing(
    store, history_dir, make_result, monkeypatch
):
    for day in range(3):
        _record(store, make_result, T0 + timedelta(days=day))
    _quiet(history_dir)
    assert len(store.latest("SPY")) == 3  # builds the index from one listing
    _quiet(history_dir)
    store.latest("SPY")  # a trusted listing
    listings = index_listings(monkeypatch)
    for day in range(3, 8):
        run = _record(store, make_result, T0 + timedelta(days=day))
        loaded = store.latest("SPY", 50)
        assert loaded[-1].run_id == run.run_id and len(loaded) == day + 1
    assert store.count("SPY") == 8
    assert listings == []  # each record kept the index current: not one listing of the folder
    assert not any(p.name.startswith(".tmp-") for p in history_dir.iterdir())  # the temp files live beside the index


def test_a_file_copied_in_by_hand_is_noticed_by_the_next_load(store, history_dir, make_result):
    runs = [_record(store, make_result, T0 + timedelta(days=d)) for d in range(4)]
    store.latest("SPY")
    _quiet(history_dir)
    store.latest("SPY")
    run = _record(store, make_result, T0 + timedelta(days=10))  # the library's write: index current
    copied = history_dir / "20251201T000000.000000Z_SPY_live.json"  # an older run, copied in by hand
    shutil.copyfile(history_dir / f"{runs[0].run_id}.json", copied)
    os.utime(copied)
    ids = [r.run_id for r in store.latest("SPY", 50)]
    assert ids[0] == copied.stem and ids[-1] == run.run_id and len(ids) == 6
    # …and one removed by hand is gone from the next load, its count with it.
    _quiet(history_dir)
    os.unlink(history_dir / f"{runs[1].run_id}.json")
    assert runs[1].run_id not in [r.run_id for r in store.latest("SPY", 50)]
    assert store.count("SPY") == 5
    # a fresh store (another process) agrees
    other = HistoryStore(history_dir)
    try:
        assert [r.run_id for r in other.latest("SPY", 50)] == [r.run_id for r in store.latest("SPY", 50)]
    finally:
        other._index.close()


def test_a_bad_file_among_many_is_skipped_with_one_warning(store, history_dir, make_result, caplog):
    for d in range(5):
        _record(store, make_result, T0 + timedelta(days=d))
    (history_dir / "20251212T000000.000000Z_SPY_live.json").write_text('{"timestamp": "2025-')  # half-written
    (history_dir / "notes (1).json").write_text("{}")  # foreign
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        for _ in range(3):
            assert len(store.latest("SPY", 50)) == 5
    warned = [r.getMessage() for r in caplog.records]
    assert len([m for m in warned if "20251212T000000" in m]) == 1
    assert len([m for m in warned if "notes (1).json" in m]) == 1


def _shared_stamps(store: HistoryStore, make_result) -> list[str]:
    """23 runs: several sharing one stamp (…, _2 … _12, sources live and harvested), newest first."""
    ids = []
    for d in range(5):
        ids.append(_record(store, make_result, T0 + timedelta(days=d)).run_id)
    same = T0 + timedelta(days=6)
    for _i in range(12):
        ids.append(_record(store, make_result, same).run_id)  # _2 … _12 (…_10 after …_9)
    for _i in range(3):
        ids.append(_record(store, make_result, same, source="harvested").run_id)
    for d in range(3):
        ids.append(_record(store, make_result, T0 + timedelta(days=8 + d)).run_id)
    return ids


@pytest.mark.parametrize("size", [1, 3, 7, 50])
def test_keyset_pages_have_no_duplicates_and_no_gaps(store, make_result, size):
    _shared_stamps(store, make_result)
    everything = [r.run_id for r in reversed(store.latest("SPY", 100))]  # newest first
    assert len(everything) == 23 and len(set(everything)) == 23
    seen, cursor = [], None
    while True:
        page = store.latest("SPY", size, before=cursor)  # oldest first within the page
        if not page:
            break
        seen.extend(r.run_id for r in reversed(page))
        cursor = cursor_of(page[0])
    assert seen == everything
    # and forward from the oldest
    seen, cursor = [], None
    while True:
        page = store.oldest("SPY", size, after=cursor)
        if not page:
            break
        seen.extend(r.run_id for r in page)
        cursor = cursor_of(page[-1])
    assert seen == list(reversed(everything))
    # a cursor's position: the newest run is 1
    assert store.position("SPY", cursor_of(store.latest("SPY", 1)[0])) == 1
    assert store.position("SPY", everything[-1]) == 23


def test_a_cursor_is_checked(store, make_result):
    run = _record(store, make_result, T0)
    assert parse_cursor(cursor_of(run))[2] == f"{run.run_id}.json"
    for bad in ("x", "2025-12-10T15:30:00Z,../etc", f"2024-01-01T00:00:00Z,{run.run_id}", "," * 300):
        with pytest.raises(HistoryError):
            store.latest("SPY", 5, before=bad)
    with pytest.raises(HistoryError, match="another underlying"):
        store.latest("QQQ", 5, before=cursor_of(run))


def test_cli_history_pages_by_cursor(store, history_dir, make_result, capsys):
    import json
    import shlex

    from calibration_policy.cli import main

    _shared_stamps(store, make_result)
    newest_first = [r.run_id for r in reversed(store.latest("SPY", 100))]
    assert main(["history", "SPY", "--limit", "5", "--history-dir", str(history_dir)]) == 0
    line = [text for text in capsys.readouterr().out.splitlines() if "--before" in text][0]
    older = shlex.split(line.split("Older runs: ", 1)[1])  # the next page's command, as printed
    cursor = older[older.index("--before") + 1]
    assert parse_cursor(cursor)[2] == f"{newest_first[4]}.json"
    assert main([*older[1:], "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == newest_first[5:10]
    assert main(["history", "SPY", "--before", "nonsense", "--history-dir", str(history_dir)]) == 2
    assert "not a paging cursor" in capsys.readouterr().err


KILLED_BUILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from calibration_policy import index
    index.CHUNK = 50
    index.PROGRESS_AFTER_S = 1e9
    real = index._Progress.update
    def slow(self, done):
        print("chunk", done, flush=True)
        time.sleep(0.2)
    index._Progress.update = slow
    from calibration_policy.history import HistoryStore
    HistoryStore(Path(sys.argv[1])).latest("SPY", 5)
    print("finished", flush=True)
""")


def test_an_index_build_killed_midway_leaves_a_usable_index(history_dir, make_result):
    store = HistoryStore(history_dir)
    template = _record(store, make_result, T0)
    store._index.close()
    data = (history_dir / f"{template.run_id}.json").read_bytes()
    names = [template.run_id]
    for i in range(1, 400):
        moment = T0 + timedelta(minutes=i)
        stem = f"{moment:%Y%m%dT%H%M%S.%fZ}_SPY_live"
        (history_dir / f"{stem}.json").write_bytes(
            data.replace(b"2025-12-10T15:30:00Z", f"{moment:%Y-%m-%dT%H:%M:%SZ}".encode())
        )
        names.append(stem)
    shutil.rmtree(history_dir / INDEX_DIR, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, str(history_dir)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        lines = [child.stdout.readline() for _ in range(3)]  # three chunks of 50 inserted, not committed
        assert all(line.startswith("chunk") for line in lines), lines
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(10)
    assert (history_dir / INDEX_DIR / INDEX_NAME).exists()
    # The half-built transaction is gone: the next load builds it whole and answers right.
    after = HistoryStore(history_dir)
    try:
        assert [r.run_id for r in after.latest("SPY", 10)] == names[-10:]
        assert after.count("SPY") == 400
        db = sqlite3.connect(history_dir / INDEX_DIR / INDEX_NAME)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 400
        db.close()
    finally:
        after._index.close()


def test_a_big_build_shows_a_progress_bar_on_stderr(history_dir, make_result, monkeypatch, capsys):
    store = HistoryStore(history_dir)
    for d in range(3):
        _record(store, make_result, T0 + timedelta(days=d))
    store.latest("SPY")
    store._index.close()
    shutil.rmtree(history_dir / INDEX_DIR)
    monkeypatch.setattr(index_module, "PROGRESS_AFTER_S", 0.0)
    monkeypatch.setattr(index_module, "CHUNK", 1)
    fresh = HistoryStore(history_dir)
    try:
        assert len(fresh.latest("SPY")) == 3
    finally:
        fresh._index.close()
    captured = capsys.readouterr()
    assert "Indexing" in captured.err and "Indexing" not in captured.out


def test_an_index_of_an_older_release_is_rebuilt(history_dir, store, make_result):
    for d in range(3):
        _record(store, make_result, T0 + timedelta(days=d))
    store.latest("SPY")
    store._index.close()
    db = sqlite3.connect(history_dir / INDEX_DIR / INDEX_NAME)
    db.execute("PRAGMA user_version=1")
    db.execute("DROP TABLE runs")
    db.execute("CREATE TABLE runs (name TEXT PRIMARY KEY, underlying TEXT, stamp TEXT, seq INTEGER, source TEXT)")
    db.commit()
    db.close()
    again = HistoryStore(history_dir)
    try:
        assert len(again.latest("SPY")) == 3 and again.count("SPY") == 3
    finally:
        again._index.close()


def test_a_record_never_waits_long_for_a_busy_index(store, history_dir, make_result, monkeypatch):
    _record(store, make_result, T0)
    store.latest("SPY")
    monkeypatch.setattr(index_module, "RECORD_WAIT_MS", 50)
    other = sqlite3.connect(history_dir / INDEX_DIR / INDEX_NAME, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the index's write lock (a long build)
    try:
        started = time.perf_counter()
        run = _record(store, make_result, T0 + timedelta(days=1))
        assert time.perf_counter() - started < 5
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.latest("SPY")[-1].run_id == run.run_id  # the next load lists the folder and finds it


def test_after_a_record_a_listing_still_waits_out_another_writer(store, history_dir, make_result, monkeypatch):
    """A record leaves the index's connection waiting at most RECORD_WAIT_MS for the write lock (it is
    set only when it changes); the listing a load then needs must wait as long as it always did,
    never give up on the index and scan the folder on every later load."""
    _record(store, make_result, T0)
    store.latest("SPY")
    monkeypatch.setattr(index_module, "RECORD_WAIT_MS", 50)
    _record(store, make_result, T0 + timedelta(days=1))  # the connection now waits 50 ms for a writer
    (history_dir / "20251212T153000.000000Z_SPY_live.json").write_bytes(
        (history_dir / f"{store.latest('SPY')[-1].run_id}.json").read_bytes().replace(b"2025-12-11", b"2025-12-12")
    )  # a copy behind the index's back: the next load lists the folder, in a write transaction
    other = sqlite3.connect(history_dir / INDEX_DIR / INDEX_NAME, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process writes the index for a while
    release = threading.Timer(0.5, lambda: other.execute("ROLLBACK"))
    release.start()
    try:
        assert len(store.latest("SPY")) == 3  # waited the 0.5 s out (not 50 ms, then a scan)
        assert not store._index._unusable and store._index._fallback is None
    finally:
        release.join()
        other.close()


# -- issue 26: trust is never lost on a loop ------------------------------------------------------


def test_a_backfill_into_a_new_folder_lists_it_at_most_once(history_dir, make_result, monkeypatch):
    """Records into a folder with no index yet, each followed by a load: the first load builds the
    index from one listing and every later record keeps it trusted (before, 500 of 500 loads listed)."""
    import numpy  # noqa: F401  (a warm process: the first listing is not slowed past the racy window by an import)

    store = HistoryStore(history_dir)
    listings = index_listings(monkeypatch)
    try:
        for i in range(500):
            run = _record(store, make_result, T0 + timedelta(minutes=i), g=1.0 + i / 10_000)
            loaded = store.latest("SPY", 3)
            assert loaded[-1].run_id == run.run_id
        assert store.count("SPY") == 500
    finally:
        store._index.close()
    assert len([p for p in listings if p == str(history_dir)]) <= 1


def test_the_first_record_into_a_new_folder_starts_the_index_so_the_first_load_never_waits(
    history_dir, make_result, monkeypatch
):
    """Every test and every new data folder used to pay 0.2 s here: the first load waited out the racy window."""
    waits: list[int] = []
    monkeypatch.setattr(index_module, "_wait_out_racy_window", waits.append)
    store = HistoryStore(history_dir)
    listings = index_listings(monkeypatch)
    try:
        run = _record(store, make_result, T0)
        assert [r.run_id for r in store.latest("SPY", 3)] == [run.run_id]
        assert (history_dir / ".index").is_dir(), "the first record did not start the index"
        later = _record(store, make_result, T0 + timedelta(days=1), g=1.1)
        assert [r.run_id for r in store.latest("SPY", 3)] == [run.run_id, later.run_id]
    finally:
        store._index.close()
    assert waits == [], "a load waited out the racy window after the library's own first record"
    assert len([p for p in listings if p == str(history_dir)]) <= 1  # then trusted: later loads list nothing


def test_a_first_record_into_a_folder_of_runs_without_an_index_leaves_the_build_to_the_load(
    store, history_dir, make_result
):
    """Runs written by an older release (no index): the record does not start an index of one name over them."""
    for i in range(3):
        _record(store, make_result, T0 + timedelta(days=i))
    store._index.close()
    shutil.rmtree(history_dir / ".index")
    fresh = HistoryStore(history_dir)
    try:
        _record(fresh, make_result, T0 + timedelta(days=5))
        assert not (history_dir / ".index").exists()
        assert fresh.count("SPY") == 4 and len(fresh.latest("SPY", 10)) == 4
    finally:
        fresh._index.close()


def test_the_first_load_of_a_folder_of_runs_without_an_index_builds_it_from_one_trusted_listing_without_waiting(
    store, history_dir, make_result, monkeypatch
):
    """Making .index/ changes the folder; that change is the library's own, so the build's one listing is trusted
    at once (it used to wait out the 0.2 s racy window: 215 ms for the first load of 1,000 runs, not 8)."""
    for i in range(3):
        _record(store, make_result, T0 + timedelta(days=i))
    store._index.close()
    shutil.rmtree(history_dir / ".index")
    _quiet(history_dir)  # the runs are old; only making .index/ is new
    waits: list[int] = []
    monkeypatch.setattr(index_module, "_wait_out_racy_window", waits.append)
    listings = index_listings(monkeypatch)
    fresh = HistoryStore(history_dir)
    try:
        for _ in range(5):
            assert fresh.count("SPY") == 3 and len(fresh.latest("SPY", 10)) == 3
    finally:
        fresh._index.close()
    assert waits == [] and len([p for p in listings if p == str(history_dir)]) == 1
    copied = history_dir / "20251201T000000.000000Z_SPY_live.json"  # behind its back: the wait stays for that
    shutil.copyfile(next(history_dir.glob("*_SPY_live.json")), copied)
    again = HistoryStore(history_dir)
    try:
        assert again.count("SPY") == 4
    finally:
        again._index.close()
    assert len(waits) == 1


def test_after_a_hand_copied_file_the_next_cycles_list_once_then_never(store, history_dir, make_result, monkeypatch):
    runs = [_record(store, make_result, T0 + timedelta(days=d)) for d in range(5)]
    store.latest("SPY")
    listings = index_listings(monkeypatch)
    copied = history_dir / "20251201T000000.000000Z_SPY_live.json"
    shutil.copyfile(history_dir / f"{runs[0].run_id}.json", copied)
    for i in range(40):
        run = _record(store, make_result, T0 + timedelta(days=10, minutes=i))
        ids = [r.run_id for r in store.latest("SPY", 100)]
        assert ids[0] == copied.stem and ids[-1] == run.run_id
    assert len(listings) == 1


def test_after_a_load_that_saw_a_hand_copy_first_the_next_cycles_list_once_then_never(
    store, history_dir, make_result, monkeypatch
):
    runs = [_record(store, make_result, T0 + timedelta(days=d)) for d in range(5)]
    store.latest("SPY")
    listings = index_listings(monkeypatch)
    copied = history_dir / "20251201T000000.000000Z_SPY_live.json"
    shutil.copyfile(history_dir / f"{runs[0].run_id}.json", copied)
    assert store.latest("SPY", 100)[0].run_id == copied.stem  # the load right after the copy lists
    for i in range(40):
        _record(store, make_result, T0 + timedelta(days=10, minutes=i))
        assert len(store.latest("SPY", 100)) == 5 + 1 + i + 1
    assert len(listings) == 1


def test_a_record_that_missed_the_index_lock_costs_one_listing(store, history_dir, make_result, monkeypatch):
    """A record that cannot take the index's lock within its wait writes without it; the next load
    lists once and the loop after it lists nothing."""
    _record(store, make_result, T0)
    store.latest("SPY")
    monkeypatch.setattr(index_module, "RECORD_WAIT_MS", 50)
    blocker = sqlite3.connect(history_dir / INDEX_DIR / INDEX_NAME, timeout=0, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        missed = _record(store, make_result, T0 + timedelta(days=1))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    listings = index_listings(monkeypatch)
    assert store.latest("SPY", 10)[-1].run_id == missed.run_id
    for i in range(20):
        run = _record(store, make_result, T0 + timedelta(days=2, minutes=i))
        assert store.latest("SPY", 1)[0].run_id == run.run_id
    assert len(listings) == 1


def test_a_record_that_missed_the_lock_is_never_hidden_by_one_that_held_it(
    store, history_dir, make_result, monkeypatch
):
    """The interleaving behind a run once left undecided in a SIGKILL test: record A holds the index's lock and
    has looked at the folder's modification time; record B, out of patience for that lock, links its file; then A
    links its own. A's look after its link cannot tell the two changes apart; B's marker tells it, so the next load
    lists the folder and finds B, and that listing clears the marker, so the loop after it lists nothing."""
    first = _record(store, make_result, T0)
    _quiet(history_dir)
    store.latest("SPY")  # trusted
    monkeypatch.setattr(index_module, "RECORD_WAIT_MS", 0)
    other = HistoryStore(history_dir)  # another process's store: its own connection to the index
    real_adding = index_module.RunIndex.adding
    seen: dict[str, object] = {}

    @contextmanager
    def a_holding_the_lock_while_b_records(self):
        with real_adding(self) as add:
            if self is store._index and "b" not in seen:  # A is between its two looks: B records now
                seen["b"] = _record(other, make_result, T0 + timedelta(days=1))
            yield add

    monkeypatch.setattr(index_module.RunIndex, "adding", a_holding_the_lock_while_b_records)
    a = _record(store, make_result, T0 + timedelta(days=2))
    monkeypatch.undo()
    b = seen["b"]
    listings = index_listings(monkeypatch)
    assert [r.run_id for r in store.latest("SPY", 10)] == [run.run_id for run in (first, b, a)]
    assert len(listings) == 1
    assert not [m for m in (history_dir / INDEX_DIR).iterdir() if m.name.startswith("unlocked-")]
    for i in range(5):
        run = _record(store, make_result, T0 + timedelta(days=3, minutes=i))
        assert store.latest("SPY", 1)[0].run_id == run.run_id
    assert len(listings) == 1
    other._index.close()


def test_changes_behind_its_back_in_quick_succession_are_all_seen(store, history_dir, make_result):
    """The racy-mtime protection stays: files copied in by hand right after a load that listed are seen."""
    run = _record(store, make_result, T0)
    source = history_dir / f"{run.run_id}.json"
    for day in range(1, 30):
        copied = history_dir / f"202512{day:02d}T000000.000000Z_SPY_harvested.json"
        shutil.copyfile(source, copied)
        assert store.latest("SPY", 100)[0].run_id == "20251201T000000.000000Z_SPY_harvested"
        assert store.count("SPY") == day + 1
