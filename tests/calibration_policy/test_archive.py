"""The archive: what each change replaced, the live periods, as-of lookups, crash repair."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calibration_policy import apply as apply_module
from calibration_policy.apply import apply_values
from calibration_policy.archive import Archive
from calibration_policy.target import JsonFileTarget


@pytest.fixture
def live(tmp_path: Path) -> JsonFileTarget:
    path = tmp_path / "weights.json"
    path.write_text(json.dumps({"global": 1.0}))
    return JsonFileTarget(path)


def change(live, archive_dir, value, reason="test"):
    return apply_values(live, {"global": value}, archive_dir=archive_dir, kind="update", reason=reason)


def test_periods_chain_and_as_of(live, tmp_path):
    archive_dir = tmp_path / "archive"
    first = change(live, archive_dir, 1.1)
    second = change(live, archive_dir, 1.2)
    periods = Archive(archive_dir, live.name).periods()
    assert [p.values["global"] for p in periods] == [1.0, 1.1, 1.2]
    assert periods[0].since is None and periods[0].until == first.at
    assert periods[1].since == first.at and periods[1].until == second.at
    assert periods[2].until is None
    assert second.previous_active_from == first.at
    archive = Archive(archive_dir, live.name)
    assert archive.as_of(first.at - timedelta(seconds=1)).values == {"global": 1.0}
    assert archive.as_of(first.at + (second.at - first.at) / 2).values == {"global": 1.1}
    assert archive.as_of(datetime.now(UTC) + timedelta(days=1)).values == {"global": 1.2}


def test_clock_going_backwards_keeps_the_archive_in_order(live, tmp_path, monkeypatch):
    archive_dir = tmp_path / "archive"
    first = change(live, archive_dir, 1.1)
    monkeypatch.setattr(apply_module, "now_utc", lambda: first.at - timedelta(hours=1))
    second = change(live, archive_dir, 1.2)
    assert second.at > first.at
    assert [e.new_values["global"] for e in Archive(archive_dir, live.name).entries()] == [1.1, 1.2]


def test_crash_after_config_write_is_committed_on_next_change(live, tmp_path, monkeypatch):
    archive_dir = tmp_path / "archive"
    original_mark = Archive.mark

    def crash_on_commit(self, entry, status):
        raise KeyboardInterrupt("simulated crash between config write and commit")

    monkeypatch.setattr(Archive, "mark", crash_on_commit)
    with pytest.raises(KeyboardInterrupt):
        change(live, archive_dir, 1.1)
    monkeypatch.setattr(Archive, "mark", original_mark)
    assert json.loads(live.path.read_text()) == {"global": 1.1}
    assert Archive(archive_dir, live.name).entries() == []  # only "prepared" so far
    change(live, archive_dir, 1.2)
    entries = Archive(archive_dir, live.name).entries()
    assert [e.new_values["global"] for e in entries] == [1.1, 1.2]


def test_crash_before_config_write_is_abandoned(live, tmp_path, monkeypatch):
    archive_dir = tmp_path / "archive"

    def crash(snapshot):
        raise KeyboardInterrupt("simulated crash before the config was written")

    monkeypatch.setattr(live, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        change(live, archive_dir, 1.1)
    monkeypatch.undo()
    assert json.loads(live.path.read_text()) == {"global": 1.0}
    change(live, archive_dir, 1.2)
    everything = Archive(archive_dir, live.name).entries(include_all=True)
    assert [e.status for e in everything] == ["abandoned", "committed"]
    assert everything[1].previous_values == {"global": 1.0}


def test_naive_as_of_is_rejected(live, tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        Archive(tmp_path, live.name).as_of(datetime(2025, 1, 1))


def test_entries_sharing_a_stamp_are_in_the_order_they_were_made(live, tmp_path):
    """Issue 11, D9: with a frozen clock the names go …Z, …Z_2, … …Z_10; as text "_10" < "_9",
    so the tenth change was read as older than the ninth and the wrong set looked live."""
    from calibration_policy.archive import ArchiveEntry

    archive = Archive(tmp_path / "archive", live.name)
    at = datetime(2025, 12, 1, 9, 30, tzinfo=UTC)
    made = []
    for i in range(12):
        entry = archive.prepare(
            ArchiveEntry(
                target=live.name,
                kind="force",
                at=at,
                reason=f"change {i}",
                previous_values={"global": float(i)},
                previous_snapshot={"global": float(i)},
                new_values={"global": float(i + 1)},
                new_snapshot={"global": float(i + 1)},
            )
        )
        made.append(archive.mark(entry, "committed").change_id)
    assert made[1].endswith("_2") and made[-1].endswith("_12")
    assert [e.change_id for e in archive.entries()] == made
    assert archive.last_change().change_id == made[-1]
    assert archive.periods()[-1].values == {"global": 12.0}


@pytest.mark.parametrize(
    "at",
    ["2025-12-01T09:30:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00"],
    ids=["naive", "year-1-east", "year-9999-west"],
)
def test_an_entry_with_an_unusable_time_is_skipped_not_fatal(live, tmp_path, at, caplog):
    """A naive time broke every comparison (TypeError), one out of range in UTC overflowed (issue 11, D5)."""
    archive_dir = tmp_path / "archive"
    first = change(live, archive_dir, 1.1)
    data = json.loads((archive_dir / live.name / f"{first.change_id}.json").read_text())
    data["at"] = at
    (archive_dir / live.name / "20300101T000000.000000Z.json").write_text(json.dumps(data))
    archive = Archive(archive_dir, live.name)
    assert [e.change_id for e in archive.entries()] == [first.change_id]
    assert archive.as_of(datetime(2100, 1, 1, tzinfo=UTC)).values == {"global": 1.1}
    assert "20300101T000000.000000Z.json" in caplog.text
