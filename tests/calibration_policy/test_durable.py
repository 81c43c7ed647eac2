"""Crash-safe writes: strict JSON, atomic replace, create-never-overwrite, orphan sweep."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from calibration_policy import (
    CalibrationPolicyError,
    InvalidRunError,
    load_recent_calibration_history,
    record_calibration_result,
)
from calibration_policy.durable import (
    TMP_PREFIX,
    atomic_replace,
    create_exclusive,
    dumps,
    find_non_finite,
    read_json,
    sweep_orphans,
)


def temp_files(directory: Path) -> list[str]:
    return [n for n in os.listdir(directory) if n.startswith(TMP_PREFIX)]


# -- strict JSON ----------------------------------------------------------------------------------


def test_dumps_is_strict_sorted_and_ends_with_newline():
    payload = dumps({"b": 1.5, "a": [1, {"z": "é"}], "c": None})
    text = payload.decode()
    assert text.endswith("\n")
    assert text.index('"a"') < text.index('"b"') < text.index('"c"')
    assert "é" in text  # readable, not \\u-escaped
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}")) == {
        "a": [1, {"z": "é"}], "b": 1.5, "c": None,
    }  # fmt: skip
    assert dumps({"x": 1}) == dumps({"x": 1})


@pytest.mark.parametrize(
    "data, where",
    [
        ({"global_metrics": {"mae_vol_points": math.nan}}, "global_metrics.mae_vol_points"),
        ({"bands": {"weekly": {"x": math.inf}}}, "bands.weekly.x"),
        ({"buckets": [{"n": 1}, {"mae": -math.inf}]}, "buckets[1].mae"),
        (math.nan, "(value)"),
    ],
)
def test_dumps_refuses_non_finite_numbers_naming_where(data, where):
    assert find_non_finite(data) == where
    with pytest.raises(InvalidRunError) as info:
        dumps(data)
    assert isinstance(info.value, ValueError)
    assert where in str(info.value) and "nothing was written" in str(info.value)


def test_find_non_finite_accepts_finite_data():
    assert find_non_finite({"a": [1, 2.5, {"b": "nan", "c": None, "d": True}]}) is None


def _stdlib_bytes(data):
    return (json.dumps(data, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n").encode()


def _random_json(rng, depth=0):
    """Plain JSON with the values where encoders tend to differ: tiny, huge and negative-zero floats,
    big integers, escapes, non-ASCII text, empty containers."""
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([0.0, -0.0, 1.0, 1e-4, 9.99e-5, 1.5e-5, 1e-9, 2.5e-10, 1e15, 1e16, 1.5e300, 5e-324])
    if kind == 1:
        return rng.uniform(-1, 1) * 10.0 ** rng.randrange(-12, 20)
    if kind == 2:
        return rng.choice([0, -1, 2**63, -(2**70), 10**30, rng.randrange(-(10**6), 10**6)])
    if kind == 3:
        return rng.choice(["", "é", "a\u0000b\x1b", '"q"\\/', "\b\f\n\r\t\x7f", "\u2028😀", "e-05"])
    if kind == 4:
        return rng.choice([None, True, False])
    if kind == 5:
        return rng.choice([{}, []])
    if kind in (6, 7):
        return {rng.choice(["b", "a", "é", "B", "_", "10", "9", ""]) + str(i): _random_json(rng, depth + 1)
                for i in range(rng.randrange(5))}  # fmt: skip
    return [_random_json(rng, depth + 1) for _ in range(rng.randrange(5))]


def test_dumps_spells_every_value_as_the_standard_library_does():
    """The fast encoder (pydantic-core after a key sort) must give json.dumps's bytes exactly: run files
    written before and after it are alike, byte for byte."""
    import random

    rng = random.Random(26)
    for _ in range(3000):
        data = {"root": _random_json(rng)}
        assert dumps(data) == _stdlib_bytes(data), data
    assert dumps({2: "int keys", 10: "sorted as numbers"}) == _stdlib_bytes({2: "int keys", 10: "sorted as numbers"})
    assert dumps({"t": (1, 2.5e-6)}) == _stdlib_bytes({"t": (1, 2.5e-6)})


def test_dumps_of_a_run_is_the_standard_librarys(make_result):
    from calibration_policy.durable import dumps_model
    from calibration_policy.history import build_run

    run = build_run(make_result(), "SPY", "live")
    assert dumps_model(run, exclude={"run_id"}) == _stdlib_bytes(run.model_dump(mode="json", exclude={"run_id"}))


def test_dumps_of_a_lone_surrogate_fails_as_before():
    with pytest.raises(UnicodeEncodeError):
        dumps({"bad": "\ud800"})


# -- atomic replace -----------------------------------------------------------------------------


def test_atomic_replace_swaps_whole_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "live.json"
    atomic_replace(target, b'{"v": 1}\n')
    assert read_json(target) == {"v": 1}
    atomic_replace(target, b'{"v": 2}\n')
    assert read_json(target) == {"v": 2}
    assert temp_files(tmp_path) == []


def test_atomic_replace_readers_never_see_half_a_file(tmp_path):
    target = tmp_path / "live.json"
    big = [dumps({"v": i, "pad": "x" * 200_000}) for i in range(2)]
    atomic_replace(target, big[0])
    stop, seen, errors = threading.Event(), set(), []

    def reader():
        while not stop.is_set():
            try:
                seen.add(read_json(target)["v"])
            except Exception as error:  # a torn read would show up here
                errors.append(error)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(40):
            atomic_replace(target, big[i % 2])
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert seen <= {0, 1}


def test_atomic_replace_into_missing_folder_fails_cleanly(tmp_path):
    with pytest.raises(CalibrationPolicyError, match="Could not write") as info:
        atomic_replace(tmp_path / "missing" / "live.json", b"{}")
    assert isinstance(info.value, ValueError)


# -- create, never overwrite ------------------------------------------------------------------


def test_create_exclusive_takes_the_first_free_name(tmp_path):
    (tmp_path / "a.json").write_text("old")
    path = create_exclusive(tmp_path, iter(["a.json", "b.json", "c.json"]), b"new")
    assert path == tmp_path / "b.json"
    assert (tmp_path / "a.json").read_text() == "old"
    assert path.read_bytes() == b"new"
    assert temp_files(tmp_path) == []


def test_create_exclusive_with_no_free_name_fails_and_cleans_up(tmp_path):
    (tmp_path / "a.json").write_text("old")
    with pytest.raises(CalibrationPolicyError, match="No free file name"):
        create_exclusive(tmp_path, iter(["a.json"]), b"new")
    assert (tmp_path / "a.json").read_text() == "old"
    assert temp_files(tmp_path) == []


def test_create_exclusive_into_missing_folder_fails_cleanly(tmp_path):
    with pytest.raises(CalibrationPolicyError, match="Could not write"):
        create_exclusive(tmp_path / "missing", iter(["a.json"]), b"{}")


def test_concurrent_records_with_one_timestamp_are_all_kept(tmp_path, make_result):
    history_dir = tmp_path / "runs"
    moment = datetime(2025, 12, 10, 15, 30, tzinfo=UTC)
    results: list = []
    errors: list = []

    def writer(k):
        try:
            for i in range(5):
                results.append(record_calibration_result(
                    make_result(global_m=1 + k / 100 + i / 1000), "SPY", "live", history_dir=history_dir, timestamp=moment,
                ))  # fmt: skip
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({r.run_id for r in results}) == 40
    names = sorted(n for n in os.listdir(history_dir) if n.endswith(".json"))
    assert len(names) == 40
    expected = {"20251210T153000.000000Z_SPY_live.json"} | {
        f"20251210T153000.000000Z_SPY_live_{n}.json" for n in range(2, 41)
    }
    assert set(names) == expected
    loaded = load_recent_calibration_history("SPY", limit=100, history_dir=history_dir)
    assert sorted(r.recommended_iv_multiplier["global"] for r in loaded) == sorted(
        r.recommended_iv_multiplier["global"] for r in results
    )
    assert temp_files(history_dir) == []


# -- orphans ------------------------------------------------------------------------------------


def test_sweep_removes_only_old_temp_files(tmp_path):
    old = tmp_path / f"{TMP_PREFIX}dead"
    young = tmp_path / f"{TMP_PREFIX}busy"
    keep = tmp_path / "20251210T153000.000000Z_SPY_live.json"
    for path in (old, young, keep):
        path.write_text("{")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(keep, (an_hour_ago, an_hour_ago))
    assert sweep_orphans(tmp_path, older_than_seconds=60) == 1
    assert not old.exists() and young.exists() and keep.exists()
    assert sweep_orphans(tmp_path, older_than_seconds=0) == 1
    assert not young.exists() and keep.exists()


def test_sweep_of_missing_folder_is_a_no_op(tmp_path):
    assert sweep_orphans(tmp_path / "nope") == 0


# -- permissions ------------------------------------------------------------------------------


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_recorded_run_files_follow_the_umask(tmp_path, make_result, umask_022):
    from calibration_policy import record_calibration_result

    run = record_calibration_result(make_result(), "SPY", "live", history_dir=tmp_path / "runs")
    plain = tmp_path / "plain.json"
    plain.write_text("{}")
    assert oct(os.stat(tmp_path / "runs" / f"{run.run_id}.json").st_mode & 0o777) == oct(os.stat(plain).st_mode & 0o777)


def test_atomic_replace_keeps_the_files_permissions(tmp_path, umask_022):
    target = tmp_path / "vol_surface.json"
    target.write_text('{"iv_multiplier": 1.0}')
    os.chmod(target, 0o644)
    atomic_replace(target, b'{"iv_multiplier": 1.05}\n')
    assert read_json(target) == {"iv_multiplier": 1.05}
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o644)
