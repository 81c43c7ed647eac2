"""Foreign files and damaged folders in the data (issue 11, items 5 and D4/D6).

Foreign files never block: a FIFO, a symlink (never followed out of the folder), a directory, a
huge file, a name that is not UTF-8 or not a record's, a truncated JSON, in any data folder
(history, archive, suggestions), is skipped with ONE warning and every load (the Python API,
the panel, its JSON routes, the CLI) keeps giving the same answers. ``foreign_files`` lists
each of them with the reason.

A damaged folder (a file where it should be, a folder that cannot be listed) gives one plain
sentence naming the folder and what to do: an error page or JSON ``detail`` (503), an alert on
the panel, ``Error: …`` from the CLI, never a 500 or a traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from proofkit import ORIGINAL_JSON_CONFIG, T0, build_result, data_state

from calibration_policy import (
    CalibrationUpdatePolicy,
    Context,
    DataFolderError,
    HistoryStore,
    UpdateOptions,
    foreign_files,
    record_calibration_result,
)
from calibration_policy import foreign as foreign_module
from calibration_policy.apply import apply_values
from calibration_policy.archive import Archive
from calibration_policy.foreign import MAX_RECORD_BYTES, shown_name
from calibration_policy.pipeline import run_update
from calibration_policy.review import ReviewStore
from calibration_policy.target import JsonFileTarget

POLICY = CalibrationUpdatePolicy(min_sample_size=10, min_vega_sum=10.0)
APPROVAL = POLICY.model_copy(update={"require_approval": True})
FOLDERS = ("history", "archive", "suggestions")
LATER = "20301231T235959.000000Z"  # newer than every real record, so each load meets the planted entry first


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        data = root / "data"
        self.history, self.archive, self.suggestions = (
            data / "calibration_runs",
            data / "config_archive",
            data / "suggestions",
        )
        self.config = data / "config" / "vol_surface_SPY.json"

    @property
    def target(self) -> JsonFileTarget:
        return JsonFileTarget(self.config)

    def seed(self) -> World:
        self.config.parent.mkdir(parents=True)
        self.config.write_text(json.dumps(ORIGINAL_JSON_CONFIG) + "\n")
        for i in range(3):
            record_calibration_result(
                build_result(global_m=1 + i / 50),
                "SPY",
                "live",
                history_dir=self.history,
                timestamp=T0 + timedelta(days=i),
            )
        record_calibration_result(build_result(), "QQQ", "live", history_dir=self.history, timestamp=T0)
        apply_values(self.target, {"global": 1.02}, archive_dir=self.archive, kind="force", reason="Applied: seed")
        run_update(
            build_result(global_m=1.3),
            underlying="SPY",
            source="live",
            target=self.target,
            options=UpdateOptions(timestamp=T0 + timedelta(days=4)),
            context=Context.build(
                policy=APPROVAL, history_dir=self.history, archive_dir=self.archive, suggestions_dir=self.suggestions
            ),
        )
        return self

    def copy_to(self, root: Path) -> World:
        shutil.copytree(self.root, root, symlinks=True)
        shutil.rmtree(
            root / "data" / "calibration_runs" / ".index", ignore_errors=True
        )  # a cache: rebuilt from the files
        return World(root)

    def folder(self, which: str) -> Path:
        return {"history": self.history, "archive": self.archive / self.target.name, "suggestions": self.suggestions}[
            which
        ]

    def loads(self) -> dict[str, Any]:
        """Every way the data is read, as plain values to compare."""
        store = HistoryStore(self.history)
        archive = Archive(self.archive, self.target.name)
        try:
            return {
                "runs": [r.run_id for r in store.latest("SPY", 50)],
                "between": [r.run_id for r in store.between("SPY", T0, T0 + timedelta(days=10))],
                "underlyings": store.underlyings(),
                "archive": [e.change_id for e in archive.entries()],
                "last_change": archive.last_change().change_id,  # type: ignore[union-attr]
                "as_of": archive.as_of(T0.replace(year=2100)).values,  # type: ignore[union-attr]
                "suggestions": [s.suggestion_id for s in ReviewStore(self.suggestions).all()],
                "pending": [s.suggestion_id for s in ReviewStore(self.suggestions).all(status="pending")],
            }
        finally:
            store._index.close()

    def client(self):
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        from calibration_policy_ui import create_router

        app = FastAPI()
        app.include_router(
            create_router(
                history_dir=self.history,
                archive_dir=self.archive,
                suggestions_dir=self.suggestions,
                policy=POLICY,
                target_for=lambda underlying: JsonFileTarget(self.config.with_name(f"vol_surface_{underlying}.json")),
                secret="proof-secret",
            ),
            prefix="/calibration",
        )
        return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("folders") / "base").seed()


# -- the foreign things, and where each goes ---------------------------------------------------------------


def record_name(which: str, stem_extra: str = "") -> str:
    return {
        "history": f"{LATER}_SPY{stem_extra}_live.json",
        "archive": f"{LATER}{stem_extra}.json",
        "suggestions": f"{LATER}_vol_surface_SPY{stem_extra}.json",
    }[which]


def valid_copy(world: World, which: str) -> bytes:
    """The content of a real record of that folder: if a planted link were followed, it would load."""
    folder = world.folder(which)
    return next(p for p in sorted(folder.iterdir()) if p.suffix == ".json").read_bytes()


def plant(world: World, which: str, kind: str) -> tuple[bytes, str]:
    """Put one foreign thing in the folder; returns its path (as bytes) and the word its reason holds."""
    folder = world.folder(which)
    name = record_name(which)
    path = folder / name
    if kind == "fifo":
        os.mkfifo(path)
        return os.fsencode(path), "FIFO"
    if kind == "symlink-out":  # a valid record outside the folder, linked in under a record's name
        outside = world.root / f"outside-{which}.json"
        outside.write_bytes(valid_copy(world, which))
        path.symlink_to(outside)
        return os.fsencode(path), "symbolic link"
    if kind == "symlink-dev":
        path.symlink_to("/dev/zero")
        return os.fsencode(path), "symbolic link"
    if kind == "directory":
        path.mkdir()
        (path / "inner.json").write_text("{}")
        return os.fsencode(path), "a directory"
    if kind == "huge":
        with open(path, "wb") as handle:
            handle.truncate(MAX_RECORD_BYTES * 64)  # sparse: 1 GB on paper
        return os.fsencode(path), "more than a record can be"
    if kind == "truncated":
        path.write_bytes(valid_copy(world, which)[:57])
        return os.fsencode(path), "not valid JSON"
    if kind == "array":
        path.write_text("[1, 2, 3]")
        return os.fsencode(path), "JSON list"
    if kind == "non-utf8-name":
        raw = os.fsencode(folder) + b"/" + os.fsencode(record_name(which, "\udcff"))  # one byte that is not UTF-8
        with open(raw, "wb") as handle:
            handle.write(valid_copy(world, which))
        return raw, "UTF-8"
    if kind == "non-record-name":  # "…_SPY (1)_live.json": a copy a file manager made
        path = folder / record_name(which, " (1)")
        path.write_bytes(valid_copy(world, which))
        return os.fsencode(path), "not a record name"
    raise AssertionError(kind)


KINDS = [
    "fifo",
    "symlink-out",
    "symlink-dev",
    "directory",
    "huge",
    "truncated",
    "array",
    "non-utf8-name",
    "non-record-name",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("which", FOLDERS)
def test_a_foreign_file_never_blocks_and_is_warned_about_once(
    base: World, tmp_path: Path, which: str, kind: str, caplog, within
) -> None:
    world = base.copy_to(tmp_path / "w")
    expected = world.loads()
    client = world.client()
    panel_before = client.get("/calibration/?underlying=SPY")
    assert panel_before.status_code == 200
    before = data_state(world.root / "data")  # before planting: reading a FIFO would block the snapshot itself
    raw_path, reason_word = plant(world, which, kind)
    shown = shown_name(os.fsdecode(os.path.basename(raw_path)))

    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        for _ in range(3):
            assert within(30, world.loads) == expected
            for url in (
                "/calibration/?underlying=SPY",
                "/calibration/api/status?underlying=SPY",
                "/calibration/api/runs?underlying=SPY",
                "/calibration/api/as-of?underlying=SPY&at=2100-01-01",
            ):
                response = within(30, lambda url=url: client.get(url))
                assert response.status_code == 200, f"{url}: HTTP {response.status_code}: {response.text[:300]}"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and shown in r.getMessage()]
    assert len(warnings) == 1, f"expected one warning about {shown}, got {warnings}"
    for record in caplog.records:
        record.getMessage().encode("utf-8")  # a lone surrogate would break the host's log handlers

    listed = {os.fsencode(f.path): f for f in within(30, lambda: foreign_files(*_listing_args(world, which)))}
    assert raw_path in listed, f"{shown} is not listed: {[f.text() for f in listed.values()]}"
    assert reason_word in listed[raw_path].reason, listed[raw_path].text()
    assert len(listed) == 1, [f.text() for f in listed.values()]
    if os.path.isdir(raw_path) and not os.path.islink(raw_path):
        shutil.rmtree(raw_path)
    else:
        os.unlink(raw_path)
    assert data_state(world.root / "data") == before, "a load changed the data"


def _listing_args(world: World, which: str) -> tuple[Path, str]:
    return {
        "history": (world.history, "history"),
        "archive": (world.archive, "archive"),
        "suggestions": (world.suggestions, "suggestions"),
    }[which]  # type: ignore[return-value]


def test_a_clean_world_has_nothing_foreign(base: World) -> None:
    for which in FOLDERS:
        assert foreign_files(*_listing_args(base, which)) == []


def test_a_record_linked_in_from_outside_is_never_read(base: World, tmp_path: Path) -> None:
    """The symlink points at a valid run of SPY with a far higher multiplier: it must not show anywhere."""
    world = base.copy_to(tmp_path / "w")
    outside = world.root / "elsewhere.json"
    data = json.loads(valid_copy(world, "history"))
    data["recommended_iv_multiplier"]["global"] = 3.21
    data["timestamp"] = "2030-12-31T23:59:59Z"
    outside.write_text(json.dumps(data))
    (world.history / record_name("history")).symlink_to(outside)
    runs = HistoryStore(world.history).latest("SPY", 50)
    assert all(r.recommended["global"] != 3.21 for r in runs)
    page = world.client().get("/calibration/?underlying=SPY")
    assert page.status_code == 200 and "3.210" not in page.text


# -- damaged folders ------------------------------------------------------------------------------------------


def replace_with_file(path: Path) -> None:
    shutil.rmtree(path)
    path.write_text("this used to be a folder\n")


DAMAGE = {
    "history-is-a-file": lambda w: replace_with_file(w.history),
    "archive-is-a-file": lambda w: replace_with_file(w.archive),
    "target-archive-is-a-file": lambda w: replace_with_file(w.archive / w.target.name),
    "suggestions-is-a-file": lambda w: replace_with_file(w.suggestions),
}
NAMED = {
    "history-is-a-file": "history folder",
    "archive-is-a-file": "archive folder",
    "target-archive-is-a-file": "archive folder",
    "suggestions-is-a-file": "suggestions folder",
}


def _blocking(world: World, damage: str) -> Path:
    return {
        "history-is-a-file": world.history,
        "archive-is-a-file": world.archive,
        "target-archive-is-a-file": world.archive / world.target.name,
        "suggestions-is-a-file": world.suggestions,
    }[damage]


def _plain(message: str, world: World, damage: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message and "Errno" not in message, message
    assert NAMED[damage] in message and str(_blocking(world, damage)) in message, message
    assert "Move that file aside" in message, message


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_folder_is_named_with_what_to_do(base: World, tmp_path: Path, damage: str) -> None:
    world = base.copy_to(tmp_path / "w")
    DAMAGE[damage](world)
    client = world.client()
    before = data_state(world.root / "data")

    # Python: the loads that read the damaged folder raise one plain DataFolderError; none answers "nothing there".
    with pytest.raises(DataFolderError) as caught:
        world.loads()
    _plain(str(caught.value), world, damage)

    # JSON routes: 503 with the sentence (what would read the damaged folder), never a 500.
    as_of = client.get("/calibration/api/as-of", params={"underlying": "SPY", "at": "2100-01-01"})
    status = client.get("/calibration/api/status", params={"underlying": "SPY"})
    if damage == "history-is-a-file":
        assert status.status_code == 503
        _plain(status.json()["detail"], world, damage)
    elif damage == "suggestions-is-a-file":
        assert as_of.status_code == 200
        assert status.status_code == 200
        _plain(status.json()["current_error"], world, damage)
    else:
        assert as_of.status_code == 503, as_of.text
        _plain(as_of.json()["detail"], world, damage)
        assert status.status_code == 200  # the runs still show; what is live cannot be read, and says why
        _plain(status.json()["current_error"], world, damage)

    # The page: an error page (503) when nothing can be shown, else the panel with an alert.
    page = client.get("/calibration/", params={"underlying": "SPY"})
    if damage == "history-is-a-file":
        assert page.status_code == 503 and "Cannot read the calibration data" in page.text
    else:
        assert page.status_code == 200
    from html import unescape

    assert str(_blocking(world, damage)) in unescape(page.text) and "Move that file aside" in unescape(page.text)

    # Writes refuse with the same sentence and change nothing.
    csrf = client.get("/calibration/api/csrf-token").json()["csrf_token"]
    forced = client.post("/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": csrf})
    if damage != "suggestions-is-a-file":
        assert forced.status_code == 503, forced.text
        _plain(forced.json()["detail"], world, damage)
        assert data_state(world.root / "data") == before


@pytest.mark.parametrize("damage", ["history-is-a-file", "archive-is-a-file"])
def test_the_cli_names_a_damaged_folder(base: World, tmp_path: Path, damage: str, capsys) -> None:
    from calibration_policy.cli import main

    world = base.copy_to(tmp_path / "w")
    DAMAGE[damage](world)
    if damage == "history-is-a-file":
        code = main(["history", "SPY", "--history-dir", str(world.history)])
    else:
        code = main(["as-of", "2100-01-01", "--target", world.target.name, "--archive-dir", str(world.archive)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("Error: ") and len(err.strip().splitlines()) == 1, err
    _plain(err, world, damage)


def test_an_approval_into_a_damaged_suggestions_folder_writes_nothing(base: World, tmp_path: Path) -> None:
    world = base.copy_to(tmp_path / "w")
    replace_with_file(world.suggestions)
    config_before = world.config.read_bytes()
    with pytest.raises(DataFolderError) as caught:
        run_update(
            build_result(global_m=1.4),
            underlying="SPY",
            source="live",
            target=world.target,
            options=UpdateOptions(timestamp=T0 + timedelta(days=5)),
            context=Context.build(
                policy=APPROVAL, history_dir=world.history, archive_dir=world.archive, suggestions_dir=world.suggestions
            ),
        )
    _plain(str(caught.value), world, "suggestions-is-a-file")
    assert world.config.read_bytes() == config_before


class RefusingOs:
    """``os`` for :mod:`calibration_policy.foreign`, refusing to list or open one path (as for a
    folder or file without read permission; root ignores permissions, so they are simulated)."""

    def __init__(self, refused: Path, calls: tuple[str, ...]) -> None:
        self.refused, self.calls = os.fsencode(refused), calls

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in self.calls:
            return real

        def refuse(path, *args, **kwargs):
            if os.fsencode(path) == self.refused:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))
            return real(path, *args, **kwargs)

        return refuse


def test_an_unreadable_archive_folder_is_named(base: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = base.copy_to(tmp_path / "w")
    folder = world.archive / world.target.name
    monkeypatch.setattr(foreign_module, "os", RefusingOs(folder, ("scandir",)))
    with pytest.raises(DataFolderError) as caught:
        Archive(world.archive, world.target.name).entries()
    message = str(caught.value)
    assert str(folder) in message and "Permission denied" in message and "read and write access" in message, message
    response = world.client().get("/calibration/api/as-of", params={"underlying": "SPY", "at": "2100-01-01"})
    assert response.status_code == 503 and str(folder) in response.json()["detail"]


def test_an_unreadable_record_is_skipped_once_and_listed(base: World, tmp_path: Path, monkeypatch, caplog) -> None:
    world = base.copy_to(tmp_path / "w")
    newest = sorted((world.archive / world.target.name).glob("*.json"))[-1]
    monkeypatch.setattr(foreign_module, "os", RefusingOs(newest, ("open",)))
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        for _ in range(3):
            entries = Archive(world.archive, world.target.name).entries()
    assert newest.stem not in [e.change_id for e in entries]
    assert len([r for r in caplog.records if newest.name in r.getMessage()]) == 1
    listed = foreign_files(world.archive, "archive")
    assert [(f.path, "Permission denied" in f.reason) for f in listed] == [(newest, True)]


def test_an_unreadable_history_folder_is_named(base: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import calibration_policy.index as index_module

    world = base.copy_to(tmp_path / "w")

    class NoListing:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        def listdir(self, path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

        scandir = listdir

    monkeypatch.setattr(index_module, "os", NoListing())
    with pytest.raises(DataFolderError) as caught:
        HistoryStore(world.history).latest("SPY")
    assert str(world.history) in str(caught.value) and "Permission denied" in str(caught.value)
    assert world.client().get("/calibration/api/runs", params={"underlying": "SPY"}).status_code == 503


def test_when_the_history_folder_is_damaged_at_record_time_nothing_is_written(base: World, tmp_path: Path) -> None:
    world = base.copy_to(tmp_path / "w")
    replace_with_file(world.history)
    with pytest.raises(DataFolderError, match="Move that file aside"):
        record_calibration_result(build_result(), "SPY", "live", history_dir=world.history)
    with pytest.raises(DataFolderError):
        record_calibration_result(build_result(), "SPY", "live", history_dir=world.history / "inner")
    assert world.history.read_text() == "this used to be a folder\n"
