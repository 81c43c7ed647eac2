"""Write-ahead intents under races: another change that finishes removes the folders it made, at
any moment, and whoever is listing or beginning intents carries on rather than crashing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from calibration_policy import intents


@pytest.fixture
def vanishing_folder(monkeypatch):
    """The first lock file opened finds the intents folder just removed, as when the change that
    owned the only intent finishes (intent, lock file and empty folders gone) at that moment."""
    armed: dict[str, Path | None] = {"folder": None}
    real_open = os.open

    def raced_open(path, *args, **kwargs):
        folder = armed["folder"]
        if folder is not None and str(path).endswith(".lock") and folder in Path(path).parents:
            armed["folder"] = None
            shutil.rmtree(folder)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", raced_open)
    return armed


def finished_elsewhere(archive: Path) -> Path:
    """An intent folder as another change left it just before finishing: one intent, listed by us."""
    folder = intents.intents_dir(archive, "vol_surface")
    (folder / ".locks").mkdir(parents=True)
    (folder / "20261201T184140.519819Z_0bb40fbe.json").write_text('{"kind": "update"}')
    return folder


def test_listing_while_the_owner_finishes_finds_nothing_to_settle(tmp_path, vanishing_folder):
    archive = tmp_path / "archive"
    vanishing_folder["folder"] = finished_elsewhere(archive)
    assert list(intents.abandoned(archive, "vol_surface")) == []
    assert not list(archive.rglob("*.lock")), "a lock file was left behind for an intent that is gone"


def test_checking_busy_intents_while_the_owner_finishes_reports_none(tmp_path, vanishing_folder):
    archive = tmp_path / "archive"
    vanishing_folder["folder"] = finished_elsewhere(archive)
    assert intents.in_progress(archive, "vol_surface") == []
    assert not list(archive.rglob("*.lock")), "a lock file was left behind for an intent that is gone"


def test_a_new_intent_survives_its_folder_being_removed_before_the_lock(tmp_path, vanishing_folder):
    archive = tmp_path / "archive"
    (archive / "vol_surface").mkdir(parents=True)
    vanishing_folder["folder"] = intents.intents_dir(archive, "vol_surface").parent.parent

    intent = intents.begin(archive, "vol_surface", "update", run_id="r1")
    assert intent.path.exists() and intents.in_progress(archive, "vol_surface") == [intent.intent_id]
    intent.done()
    assert intents.pending_names(archive, "vol_surface") == []


def test_a_new_intent_survives_its_folder_being_removed_between_mkdir_and_its_check(tmp_path, monkeypatch):
    # Found by 30 concurrent appliers: our mkdir met the folder of a change that then finished and removed
    # it, and Path.mkdir's own check took the vanished folder for "a file, not a folder".
    archive = tmp_path / "archive"
    folder = intents.intents_dir(archive, "vol_surface")
    folder.mkdir(parents=True)
    real_mkdir = os.mkdir

    def raced_mkdir(path, *args, **kwargs):
        if Path(path) == folder and folder.exists():
            shutil.rmtree(folder)  # the other change finishes just after our mkdir saw its folder
            raise FileExistsError(17, "File exists", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", raced_mkdir)
    intent = intents.begin(archive, "vol_surface", "update", run_id="r1")
    assert intent.path.exists()
    intent.done()


def test_an_intents_folder_that_is_a_file_is_still_named_as_one(tmp_path):
    archive = tmp_path / "archive"
    intents.intents_dir(archive, "vol_surface").parent.mkdir(parents=True)
    intents.intents_dir(archive, "vol_surface").write_text("not a folder")
    with pytest.raises(Exception, match="it is a file, not a folder"):
        intents.begin(archive, "vol_surface", "update", run_id="r1")


def test_an_intent_whose_writer_is_gone_is_handed_over_locked(tmp_path):
    archive = tmp_path / "archive"
    (archive / "vol_surface").mkdir(parents=True)
    left = intents.begin(archive, "vol_surface", "update", run_id="r1")
    left.release()  # its process died: the intent stays, its lock is free

    (found,) = intents.abandoned(archive, "vol_surface")
    assert found.data["run_id"] == "r1" and found.lock is not None and found.lock.is_locked
    assert list(intents.abandoned(archive, "vol_surface")) == []  # we hold it: not abandoned twice
    found.done()
    assert intents.pending_names(archive, "vol_surface") == []
