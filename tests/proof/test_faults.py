"""Fault injection: disk full, permission denied, I/O errors, read-only folders, a deleted or
corrupted live config, and a clock that goes backwards.

The I/O sweep works like SQLite's I/O-error tests: run an operation once to count the file-system
calls it makes through :mod:`calibration_policy.durable` (temp-file creation, write, fsync, chmod,
link, rename, folder open and fsync), then run it again on a fresh copy of the data once per call, failing
exactly that call with ``OSError(ENOSPC | EACCES | EIO | EROFS)``. After every failure:

* the error is a ``ValueError`` subclass with one plain sentence naming the OS reason;
* no ``.tmp-*`` file is left and every data file is whole, valid JSON;
* the live config is byte-for-byte unchanged — or, when the failure came after the new config was
  already in place, it is exactly the new value set, the error says so (it never claims that
  nothing changed), and the next change settles the archive (documented recovery);
* the next, fault-free change succeeds and the archive is one consistent chain.
"""

from __future__ import annotations

import errno
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from proofkit import (
    HOST_PLUGINS,
    LONG,
    ORIGINAL_JSON_CONFIG,
    ORIGINAL_VOL_SURFACE,
    T0,
    build_result,
    temp_files,
)

from calibration_policy import (
    CalibrationRun,
    CalibrationUpdatePolicy,
    Context,
    HistoryError,
    TargetError,
    UpdateOptions,
    durable,
    load_recent_calibration_history,
    record_calibration_result,
)
from calibration_policy.apply import apply_values
from calibration_policy.archive import Archive, ArchiveEntry
from calibration_policy.naming import parse_run_file_name
from calibration_policy.pipeline import approve_suggestion, force_apply, reject_suggestion, run_update
from calibration_policy.pipeline import roll_back as rollback
from calibration_policy.plugins import get_target_factory, load_plugins_dir
from calibration_policy.review import Suggestion
from calibration_policy.target import JsonFileTarget

ERRNOS = (errno.ENOSPC, errno.EACCES, errno.EIO, errno.EROFS)
POLICY = CalibrationUpdatePolicy(min_delta_global=0.01, min_delta_band=0.01, min_sample_size=10, min_vega_sum=10.0)
APPROVAL = POLICY.model_copy(update={"require_approval": True})
STATS = {"faults_injected": 0, "raised": 0, "config_changed_with_honest_error": 0}


# -- the faulty file system ---------------------------------------------------------------------


class Faults:
    """Counts durable-module file-system calls and fails the ``fail_at``-th one."""

    def __init__(self, fail_at: int | None = None, code: int = errno.ENOSPC) -> None:
        self.calls, self.fail_at, self.code, self.fired = 0, fail_at, code, False

    def tick(self, what: str) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            self.fired = True
            raise OSError(self.code, os.strerror(self.code), what)


class _FailingWrites(io.RawIOBase):
    def __init__(self, handle, faults: Faults) -> None:
        self.handle, self.faults = handle, faults

    def write(self, data):  # a disk that fills up halfway through the write
        self.handle.write(bytes(data)[: len(data) // 2])
        self.faults.tick("write")
        return self.handle.write(bytes(data)[len(data) // 2 :])

    def flush(self):
        self.handle.flush()

    def fileno(self):
        return self.handle.fileno()

    def close(self):
        self.handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class FaultyOs:
    """Stands in for ``os`` inside ``calibration_policy.durable``; everything else is the real ``os``."""

    def __init__(self, faults: Faults) -> None:
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def fdopen(self, fd, *args, **kwargs):
        return _FailingWrites(os.fdopen(fd, *args, **kwargs), self._faults)

    def open(self, path, flags, *args, **kwargs):  # creating a temp file, or opening a folder to fsync it
        self._faults.tick("open")
        return os.open(path, flags, *args, **kwargs)

    def chmod(self, path, mode, *args, **kwargs):
        self._faults.tick("chmod")
        return os.chmod(path, mode, *args, **kwargs)

    def fsync(self, fd):
        self._faults.tick("fsync")
        return os.fsync(fd)

    def link(self, src, dst, *args, **kwargs):
        self._faults.tick("link")
        return os.link(src, dst, *args, **kwargs)

    def replace(self, src, dst, *args, **kwargs):
        self._faults.tick("replace")
        return os.replace(src, dst, *args, **kwargs)


def inject(monkeypatch: pytest.MonkeyPatch, faults: Faults) -> None:
    monkeypatch.setattr(durable, "os", FaultyOs(faults))


# -- a small world to break -----------------------------------------------------------------------


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.history, self.archive, self.suggestions = root / "history", root / "archive", root / "suggestions"
        self.config = root / "config" / "live.json"
        self.config.parent.mkdir(parents=True, exist_ok=True)
        if not self.config.exists():
            self.config.write_text(json.dumps(ORIGINAL_JSON_CONFIG, indent=2, sort_keys=True) + "\n")
        self.target = JsonFileTarget(self.config)

    @classmethod
    def seeded(cls, root: Path) -> World:
        world = cls(root)
        for i in range(3):
            record_calibration_result(
                build_result(global_m=1.0 + i / 50),
                "SPY",
                "live",
                history_dir=world.history,
                timestamp=T0 + timedelta(days=i),
            )
        apply_values(world.target, {"global": 1.01}, archive_dir=world.archive, kind="force", reason="Applied: seed")
        outcome = run_update(
            build_result(global_m=1.2),
            underlying="SPY",
            source="live",
            target=world.target,
            options=UpdateOptions(timestamp=T0 + timedelta(days=3)),
            context=Context.build(
                policy=APPROVAL, history_dir=world.history, archive_dir=world.archive, suggestions_dir=world.suggestions
            ),
        )
        world.pending = outcome.run.pending_suggestion
        assert world.pending
        return world

    def copy_to(self, root: Path) -> World:
        shutil.copytree(self.root, root)
        world = World(root)
        world.pending = self.pending
        return world

    def check_whole(self) -> None:
        """No temp files; every data file is whole JSON and validates."""
        assert not temp_files(self.root), f"temp files left behind: {temp_files(self.root)}"
        for path in self.history.glob("*.json"):
            assert parse_run_file_name(path.name), path
            CalibrationRun.model_validate({**json.loads(path.read_bytes()), "run_id": path.stem})
        for path in (self.archive / self.target.name).glob("*.json"):
            ArchiveEntry.model_validate(json.loads(path.read_bytes()))
        for path in self.suggestions.glob("*.json"):
            Suggestion.model_validate(json.loads(path.read_bytes()))
        json.loads(self.config.read_bytes())

    def check_chain(self) -> None:
        archive = Archive(self.archive, self.target.name)
        archive.reconcile(self.target, self.target.load())
        previous = ORIGINAL_JSON_CONFIG
        for entry in archive.entries():
            assert entry.previous_snapshot == previous
            previous = entry.new_snapshot
        assert previous == self.target.load()


OPERATIONS: dict[str, Callable[[World], Any]] = {
    "record": lambda w: record_calibration_result(
        build_result(global_m=1.3), "SPY", "live", history_dir=w.history, timestamp=T0 + timedelta(days=4)
    ),
    "run_update": lambda w: run_update(
        build_result(global_m=1.3),
        underlying="SPY",
        source="live",
        target=w.target,
        options=UpdateOptions(timestamp=T0 + timedelta(days=4)),
        context=Context.build(policy=POLICY, history_dir=w.history, archive_dir=w.archive),
    ),
    "run_update_force": lambda w: run_update(
        build_result(global_m=1.0),
        underlying="SPY",
        source="live",
        target=w.target,
        options=UpdateOptions(force=True, timestamp=T0 + timedelta(days=4)),
        context=Context.build(policy=POLICY, history_dir=w.history, archive_dir=w.archive),
    ),
    "force_apply": lambda w: force_apply(
        "SPY",
        target=w.target,
        use="recommended",
        context=Context.build(policy=POLICY, history_dir=w.history, archive_dir=w.archive),
    ),
    "apply_values": lambda w: apply_values(
        w.target, {"global": 1.5, "weekly": 1.4}, archive_dir=w.archive, kind="force", reason="Applied: fault test"
    ),
    "propose": lambda w: run_update(
        build_result(global_m=1.4),
        underlying="SPY",
        source="live",
        target=w.target,
        options=UpdateOptions(timestamp=T0 + timedelta(days=4)),
        context=Context.build(
            policy=APPROVAL, history_dir=w.history, archive_dir=w.archive, suggestions_dir=w.suggestions
        ),
    ),
    "approve": lambda w: approve_suggestion(
        w.pending,
        target=w.target,
        context=Context.build(suggestions_dir=w.suggestions, actor="ana", archive_dir=w.archive, history_dir=w.history),
    ),
    "reject": lambda w: reject_suggestion(w.pending, context=Context.build(suggestions_dir=w.suggestions, actor="ana")),
    "rollback": lambda w: rollback(w.target, "original", context=Context.build(archive_dir=w.archive)),
}


def _count_calls(base: World, tmp: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> int:
    world = base.copy_to(tmp / "count")
    faults = Faults()
    with monkeypatch.context() as m:
        inject(m, faults)
        OPERATIONS[name](world)
    assert faults.calls > 0
    return faults.calls


@pytest.fixture(scope="module")
def base_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World.seeded(tmp_path_factory.mktemp("faults") / "base")


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_every_io_call_can_fail_cleanly(
    name: str, base_world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = _count_calls(base_world, tmp_path, monkeypatch, name)
    plans = (
        [(k, code) for k in range(1, total + 1) for code in ERRNOS]
        if LONG
        else [(k, ERRNOS[k % len(ERRNOS)]) for k in range(1, total + 1)]
    )
    for k, code in plans:
        world = base_world.copy_to(tmp_path / f"k{k}-{code}")
        before = world.config.read_bytes()
        faults = Faults(fail_at=k, code=code)
        error: Exception | None = None
        with monkeypatch.context() as m:
            inject(m, faults)
            try:
                OPERATIONS[name](world)
            except Exception as caught:
                error = caught
        STATS["faults_injected"] += 1
        assert faults.fired
        where = f"{name}: call {k}/{total} failing with {errno.errorcode[code]}"
        assert error is not None, f"{where}: the failure was swallowed silently"
        assert isinstance(error, ValueError), f"{where}: raised {type(error).__name__}, not a ValueError: {error}"
        message = str(error)
        STATS["raised"] += 1
        assert os.strerror(code) in message, f"{where}: the message does not name the reason: {message}"
        assert "\n" not in message and "Traceback" not in message
        world.check_whole()
        after = world.config.read_bytes()
        if after != before:
            # The failure came after the new config was in place: the values ARE live; the error
            # must not claim otherwise, and the next change settles the archive.
            STATS["config_changed_with_honest_error"] += 1
            assert "Nothing was changed" not in message and "nothing was changed" not in message, (
                f"{where}: the config changed but the error says nothing was: {message}"
            )
            prepared = [
                e
                for e in Archive(world.archive, world.target.name).entries(include_all=True)
                if e.status in ("prepared", "committed")
            ]
            assert any(e.new_snapshot == json.loads(after) for e in prepared), f"{where}: config not archived"
        # Life goes on without faults.
        apply_values(
            world.target, {"global": 1.111}, archive_dir=world.archive, kind="force", reason="Applied: after fault"
        )
        world.check_whole()
        world.check_chain()
    print(f"\n[faults] {name}: {len(plans)} faults at {total} call sites; totals so far {STATS}", file=sys.stderr)


# -- read-only folders (a real immutable folder; root cannot write there either) -----------------


def _chattr(flag: str, path: Path) -> bool:
    return (
        shutil.which("chattr") is not None
        and subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False).returncode == 0
    )


@pytest.fixture
def immutable(tmp_path: Path):
    made: list[Path] = []

    def make(path: Path) -> Path:
        if not _chattr("+i", path):
            if os.geteuid() != 0:
                path.chmod(0o555)
            else:
                pytest.skip("cannot make a read-only folder: running as root and chattr +i is unavailable")
        made.append(path)
        return path

    yield make
    for path in made:
        _chattr("-i", path)
        path.chmod(0o755)


def test_read_only_history_folder(tmp_path: Path, immutable) -> None:
    world = World.seeded(tmp_path / "w")
    shutil.rmtree(world.history / ".index")  # so loads must cope without writing an index
    before = sorted(p.name for p in world.history.iterdir())
    immutable(world.history)
    with pytest.raises(HistoryError) as caught:
        record_calibration_result(build_result(), "SPY", "live", history_dir=world.history)
    assert "Nothing was changed" in str(caught.value) or "not permitted" in str(caught.value)
    with pytest.raises(ValueError):
        run_update(
            build_result(global_m=1.4),
            underlying="SPY",
            source="live",
            target=world.target,
            context=Context.build(policy=POLICY, history_dir=world.history, archive_dir=world.archive),
        )
    assert sorted(p.name for p in world.history.iterdir()) == before
    # Reading still works (the run index falls back to a directory scan).
    assert len(load_recent_calibration_history("SPY", history_dir=world.history)) == 4


def test_read_only_archive_folder_leaves_config_alone(tmp_path: Path, immutable) -> None:
    world = World.seeded(tmp_path / "w")
    before = world.config.read_bytes()
    immutable(world.archive / world.target.name)
    with pytest.raises(ValueError) as caught:
        apply_values(world.target, {"global": 1.7}, archive_dir=world.archive, kind="force", reason="x")
    assert "not permitted" in str(caught.value)
    with pytest.raises(ValueError):
        run_update(
            build_result(global_m=1.7),
            underlying="SPY",
            source="live",
            target=world.target,
            options=UpdateOptions(force=True),
            context=Context.build(policy=POLICY, history_dir=world.history, archive_dir=world.archive),
        )
    assert world.config.read_bytes() == before
    world.check_whole()


def test_read_only_config_folder_leaves_config_alone(tmp_path: Path, immutable) -> None:
    world = World.seeded(tmp_path / "w")
    before = world.config.read_bytes()
    immutable(world.config.parent)
    with pytest.raises(TargetError) as caught:
        apply_values(world.target, {"global": 1.7}, archive_dir=world.archive, kind="force", reason="x")
    assert "not permitted" in str(caught.value)
    assert world.config.read_bytes() == before
    world.check_whole()
    _chattr("-i", world.config.parent)
    world.check_chain()  # the prepared entry is abandoned, the chain is whole


def test_unwritable_parent_of_missing_data_folders(tmp_path: Path, immutable) -> None:
    world = World.seeded(tmp_path / "w")
    locked_parent = immutable(tmp_path / "w" / "config")
    with pytest.raises(ValueError):
        record_calibration_result(build_result(), "SPY", "live", history_dir=locked_parent / "history")
    with pytest.raises(ValueError):
        Archive(locked_parent / "archive", "live").prepare(
            ArchiveEntry(
                target="live",
                kind="force",
                at=T0,
                reason="x",
                previous_values={},
                previous_snapshot={},
                new_values={},
                new_snapshot={},
            )
        )
    with pytest.raises(ValueError):
        run_update(
            build_result(global_m=1.4),
            underlying="SPY",
            source="live",
            target=world.target,
            options=UpdateOptions(timestamp=T0 + timedelta(days=5)),
            context=Context.build(
                policy=APPROVAL,
                history_dir=world.history,
                archive_dir=world.archive,
                suggestions_dir=locked_parent / "suggestions",
            ),
        )


# -- the live config deleted or corrupted between runs ------------------------------------------------


CORRUPTIONS = {
    "deleted": None,
    "empty": b"",
    "truncated": b'{"global": 1.0, "weekly": 1.',
    "binary": bytes(range(256)),
    "array": b"[1.0, 1.1]",
    "nan": b'{"global": NaN, "weekly": 1.0}',
    "infinity": b'{"global": Infinity}',
    "string": b'{"global": "1.05"}',
    "null": b'{"global": null}',
    "nested": b'{"global": {"x": 1}}',
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
@pytest.mark.parametrize("call", ["run_update", "force_apply", "apply_values", "approve", "rollback"])
def test_deleted_or_corrupt_config(tmp_path: Path, kind: str, call: str) -> None:
    world = World.seeded(tmp_path / "w")
    if CORRUPTIONS[kind] is None:
        world.config.unlink()
    else:
        world.config.write_bytes(CORRUPTIONS[kind])
    archive_before = sorted((world.archive / world.target.name).iterdir())
    name = {"run_update": "run_update_force"}.get(call, call)
    with pytest.raises(ValueError) as caught:
        OPERATIONS[name](world)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert str(world.config) in message or "current" in message, message
    if CORRUPTIONS[kind] is None:
        assert not world.config.exists(), "a deleted config was recreated"
    else:
        assert world.config.read_bytes() == CORRUPTIONS[kind], "a corrupt config was overwritten"
    assert sorted((world.archive / world.target.name).iterdir()) == archive_before
    assert not temp_files(world.root)


@pytest.mark.parametrize("kind", ["deleted", "truncated", "binary", "nan", "band_overlap"])
def test_deleted_or_corrupt_host_vol_surface(tmp_path: Path, kind: str) -> None:
    load_plugins_dir(HOST_PLUGINS)
    config = tmp_path / "vol_surface.json"
    config.write_text(json.dumps(ORIGINAL_VOL_SURFACE))
    target = get_target_factory("vol_surface")("SPY", str(config))
    corrupt = {
        "deleted": None,
        "truncated": b'{"iv_multiplier": 1.',
        "binary": b"\xff\xfe\x00",
        "nan": b'{"iv_multiplier": NaN, "bands": {}}',
        "band_overlap": json.dumps(
            {
                "iv_multiplier": 1.0,
                "bands": {
                    "a": {"min_dte": 1, "max_dte": 10, "iv_multiplier": 1.0},
                    "b": {"min_dte": 5, "max_dte": 20, "iv_multiplier": 1.0},
                },
            }
        ).encode(),
    }[kind]
    if corrupt is None:
        config.unlink()
    else:
        config.write_bytes(corrupt)
    with pytest.raises(ValueError) as caught:
        run_update(
            build_result(),
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(force=True),
            context=Context.build(policy=POLICY, history_dir=tmp_path / "h", archive_dir=tmp_path / "a"),
        )
    assert "\n" not in str(caught.value) and str(config) in str(caught.value)
    assert (not config.exists()) if corrupt is None else config.read_bytes() == corrupt
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").rglob("*.json"))


# -- the clock goes backwards ---------------------------------------------------------------------------


class BackwardsClock:
    """Each reading is an hour earlier than the last (or frozen, with ``step=0``)."""

    def __init__(self, start: datetime, step: timedelta = timedelta(hours=-1)) -> None:
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


@pytest.mark.parametrize("step", [timedelta(hours=-1), timedelta(0), timedelta(microseconds=-1)])
def test_clock_going_backwards_keeps_the_archive_ordered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step) -> None:
    import calibration_policy.apply as apply_module
    import calibration_policy.archive as archive_module
    import calibration_policy.review as review_module
    import calibration_policy.steps as update_module

    world = World(tmp_path / "w")
    clock = BackwardsClock(datetime(2026, 1, 1, tzinfo=UTC), step)
    for module in (apply_module, archive_module, review_module, update_module):
        monkeypatch.setattr(module, "now_utc", clock)
    values = []
    for i in range(12):
        value = round(1.0 + i / 20, 3)
        values.append(value)
        if i % 3 == 0:
            run_update(
                build_result(global_m=value),
                underlying="SPY",
                source="live",
                target=world.target,
                options=UpdateOptions(force=True, force_values="recommended", timestamp=T0 + timedelta(days=i)),
                context=Context.build(policy=POLICY, history_dir=world.history, archive_dir=world.archive),
            )
        elif i % 3 == 1:
            apply_values(world.target, {"global": value}, archive_dir=world.archive, kind="force", reason="x")
        else:
            rollback(world.target, "original", context=Context.build(archive_dir=world.archive))
            values[-1] = 1.0
    archive = Archive(world.archive, world.target.name)
    changes = archive.entries()
    assert len(changes) == 12
    times = [c.at for c in changes]
    assert times == sorted(times) and len(set(times)) == 12, "a clock step back reordered the archive"
    assert [c.new_values["global"] for c in changes] == values
    periods = archive.periods()
    for before, after in itertools.pairwise(periods):
        assert before.until == after.since
    for period in periods[1:]:
        assert archive.as_of(period.since) == period
    world.check_chain()


def test_clock_going_backwards_keeps_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import calibration_policy.history as history_module

    clock = BackwardsClock(datetime(2026, 1, 1, tzinfo=UTC), timedelta(minutes=-5))

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return clock()

    monkeypatch.setattr(history_module, "datetime", FakeDatetime)
    ids = [
        record_calibration_result(build_result(global_m=1 + i / 100), "SPY", "live", history_dir=tmp_path / "h").run_id
        for i in range(10)
    ]
    assert len(set(ids)) == 10
    loaded = load_recent_calibration_history("SPY", limit=10, history_dir=tmp_path / "h")
    # Documented: history is ordered by the runs' timestamps, so the last-recorded run sorts first.
    assert [r.run_id for r in loaded] == list(reversed(ids))
