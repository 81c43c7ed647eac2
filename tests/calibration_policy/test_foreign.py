"""calibration_policy.foreign: reading one record safely, warning once, listing what is foreign."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from calibration_policy import DataFolderError, foreign_files
from calibration_policy.foreign import (
    MAX_RECORD_BYTES,
    ForeignFileError,
    check_folder,
    read_record,
    warn_once,
)

RUN_NAME = "20251210T123456.123456Z_SPY_live.json"


def test_a_small_json_object_is_read(tmp_path: Path):
    path = tmp_path / RUN_NAME
    path.write_text(json.dumps({"a": 1}))
    assert read_record(path) == {"a": 1}


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty"), (b'{"timestamp": "2025-12-', "not valid JSON"), (b"[1, 2]", "JSON list"), (b'"x"', "JSON str"),
     (b"\xff\xfe{}", "UTF-8"), (b'{"a":' * 100_000, "nested too deeply"), (b"null", "JSON NoneType")],
    ids=["empty", "truncated", "array", "string", "not-utf8", "deeply-nested", "null"],
)  # fmt: skip
def test_content_that_is_not_a_record_says_why(tmp_path: Path, content: bytes, reason: str):
    path = tmp_path / RUN_NAME
    path.write_bytes(content)
    with pytest.raises(ForeignFileError, match=reason):
        read_record(path)


def test_a_fifo_is_never_opened(tmp_path: Path, within):
    path = tmp_path / RUN_NAME
    os.mkfifo(path)
    with pytest.raises(ForeignFileError, match="FIFO"):
        within(10, lambda: read_record(path))


def test_a_directory_is_not_a_record(tmp_path: Path):
    (tmp_path / RUN_NAME).mkdir()
    with pytest.raises(ForeignFileError, match="a directory"):
        read_record(tmp_path / RUN_NAME)


def test_a_symlink_is_never_followed_even_to_a_valid_record(tmp_path: Path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"secret": 1}))
    folder = tmp_path / "history"
    folder.mkdir()
    (folder / RUN_NAME).symlink_to(outside)
    with pytest.raises(ForeignFileError, match="symbolic link"):
        read_record(folder / RUN_NAME)


def test_a_huge_file_is_refused_without_reading_it(tmp_path: Path, within):
    path = tmp_path / RUN_NAME
    with open(path, "wb") as handle:  # sparse: 4 GB on paper, nothing on disk
        handle.truncate(4 * 1024**3)
    with pytest.raises(ForeignFileError, match="more than a record can be"):
        within(10, lambda: read_record(path))
    path.write_bytes(b"{}" + b" " * (MAX_RECORD_BYTES - 2))
    assert read_record(path) == {}


def test_a_missing_file_is_file_not_found(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        read_record(tmp_path / RUN_NAME)


def test_each_problem_is_warned_about_once(tmp_path: Path, caplog):
    log = logging.getLogger("calibration_policy.test")
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        for _ in range(5):
            warn_once(log, "Skipping %s: %s.", tmp_path / "a.json", "truncated")
            warn_once(log, "Skipping %s: %s.", tmp_path / "b.json", "truncated")
        warn_once(log, "Skipping %s: %s.", tmp_path / "a.json", "a FIFO")  # a new problem with the same file
    assert [r.getMessage() for r in caplog.records] == [
        f"Skipping {tmp_path / 'a.json'}: truncated.",
        f"Skipping {tmp_path / 'b.json'}: truncated.",
        f"Skipping {tmp_path / 'a.json'}: a FIFO.",
    ]


def test_a_name_that_is_not_utf8_is_logged_readably(tmp_path: Path, caplog):
    name = os.fsdecode(b"20251210T123456.123456Z_SP\xffY_live.json")
    with caplog.at_level(logging.WARNING, logger="calibration_policy"):
        warn_once(logging.getLogger("calibration_policy.test"), "Skipping %s: %s.", tmp_path / name, "bad name")
    assert "SP\\xffY" in caplog.records[0].getMessage()
    caplog.records[0].getMessage().encode("utf-8")  # a lone surrogate here would break every log handler


# -- damaged folders --------------------------------------------------------------------------------------


def test_check_folder(tmp_path: Path):
    assert check_folder(tmp_path, "history folder") is True
    assert check_folder(tmp_path / "missing", "history folder") is False
    (tmp_path / "file").write_text("x")
    with pytest.raises(
        DataFolderError, match=r"history folder .*file: it is a file, not a folder\. Move that file aside"
    ):
        check_folder(tmp_path / "file", "history folder")
    with pytest.raises(DataFolderError, match=r"archive folder .*file/live: .*file is a file where a folder should be"):
        check_folder(tmp_path / "file" / "live", "archive folder")


def test_a_folder_linked_to_nowhere_is_named_not_empty(tmp_path: Path, make_result):
    """A data folder that is a link to an unmounted disk must not read as "no runs yet"."""
    from calibration_policy import HistoryError, HistoryStore, record_calibration_result

    (tmp_path / "h").symlink_to(tmp_path / "unmounted" / "runs")
    with pytest.raises(DataFolderError, match=r"symbolic link to .*unmounted/runs, which does not exist"):
        HistoryStore(tmp_path / "h").latest("SPY")
    with pytest.raises(HistoryError, match="which does not exist"):
        record_calibration_result(make_result(), "SPY", "live", history_dir=tmp_path / "h")


# -- listing what is foreign ----------------------------------------------------------------------------


def test_a_clean_or_missing_folder_has_nothing_foreign(tmp_path: Path, make_result):
    from calibration_policy import record_calibration_result

    assert foreign_files(tmp_path / "missing") == []
    record_calibration_result(make_result(), "SPY", "live", history_dir=tmp_path / "h")
    (tmp_path / "h" / ".tmp-orphan").write_text("{")  # ours: hidden scratch files are not foreign
    assert foreign_files(tmp_path / "h") == []
    assert foreign_files(tmp_path / "h", check_content=False) == []


def test_foreign_entries_of_a_history_folder_are_listed_with_the_reason(tmp_path: Path, make_result, within):
    from calibration_policy import record_calibration_result

    folder = tmp_path / "h"
    record_calibration_result(make_result(), "SPY", "live", history_dir=folder)
    (tmp_path / "outside.json").write_text("{}")
    planted = {
        "20300101T000000.000000Z_SPY_live.json": "FIFO",
        "20300101T000001.000000Z_SPY_live.json": "symbolic link",
        "20300101T000002.000000Z_SPY_live.json": "a directory",
        "20300101T000003.000000Z_SPY_live.json": "more than a record can be",
        "20300101T000004.000000Z_SPY_live.json": "not valid JSON",
        "20300101T000005.000000Z_SPY (1)_live.json": "not a record name",
        "20300101T000006.000000Z_SP\udcffY_live.json": "not valid UTF-8",
        "20300101T000007.000000Z_SPY_live_2.json": "recommended_iv_multiplier",
        "README.md": "not a record name",
    }
    names = list(planted)
    os.mkfifo(folder / names[0])
    (folder / names[1]).symlink_to(tmp_path / "outside.json")
    (folder / names[2]).mkdir()
    with open(folder / names[3], "wb") as handle:
        handle.truncate(MAX_RECORD_BYTES + 1)
    (folder / names[4]).write_text('{"timestamp": "2030-')
    (folder / names[5]).write_text("{}")
    with open(os.path.join(os.fsencode(folder), os.fsencode(names[6])), "wb") as handle:
        handle.write(b"{}")
    (folder / names[7]).write_text(
        json.dumps(
            {
                "timestamp": "2030-01-01T00:00:07Z",
                "underlying": "SPY",
                "source": "live",
                "recommended_iv_multiplier": {},
                "sample_size": 1,
            }
        )
    )
    (folder / names[8]).write_text("notes")
    found = within(30, lambda: foreign_files(folder))
    assert [f.path.name for f in found] == sorted(planted)
    for item in found:
        assert planted[item.path.name] in item.reason, item.text()
        item.text().encode("utf-8")
    # Without reading content, only what the name and the entry's type show is listed.
    shallow = {f.path.name for f in foreign_files(folder, check_content=False)}
    assert shallow == {names[i] for i in (0, 1, 2, 5, 6, 8)}


def test_foreign_entries_of_archive_and_suggestions_folders(tmp_path: Path):
    archive = tmp_path / "archive"
    (archive / "live").mkdir(parents=True)
    (archive / "live" / "20251210T123456.123456Z.json").write_text("[1, 2]")
    (archive / "live" / "20251210T123456.123456Z (1).json").write_text("{}")
    (archive / "stray.txt").write_text("x")
    found = {f.path.relative_to(archive).as_posix(): f.reason for f in foreign_files(archive, "archive")}
    assert set(found) == {"live/20251210T123456.123456Z.json", "live/20251210T123456.123456Z (1).json", "stray.txt"}
    assert "JSON list" in found["live/20251210T123456.123456Z.json"]
    suggestions = tmp_path / "suggestions"
    (suggestions / ".locks").mkdir(parents=True)
    (suggestions / "20251210T123456.123456Z_live.json").write_text("{")
    assert [f.path.name for f in foreign_files(suggestions, "suggestions")] == ["20251210T123456.123456Z_live.json"]


def test_a_damaged_folder_is_an_error_not_an_empty_list(tmp_path: Path):
    (tmp_path / "h").write_text("not a folder")
    with pytest.raises(DataFolderError, match="Move that file aside"):
        foreign_files(tmp_path / "h")


def test_the_report_covers_all_three_folders(tmp_path: Path):
    from calibration_policy.folders import data_folder_report

    (tmp_path / "h").mkdir()
    (tmp_path / "h" / RUN_NAME).write_text("{")
    (tmp_path / "a").write_text("a file where the archive should be")
    report = data_folder_report(tmp_path / "h", tmp_path / "a", tmp_path / "s")
    assert [f.path.name for f in report[tmp_path / "h"]] == [RUN_NAME]  # type: ignore[union-attr]
    assert isinstance(report[tmp_path / "a"], DataFolderError)
    assert report[tmp_path / "s"] == []
