"""``calibration-policy doctor``: finds an interrupted change in plain words (exit 1), ``--repair``
settles it (exit 0), a second repair changes nothing; a stale ``--expect-version`` exits 2."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from calibration_policy import durable
from calibration_policy.cli import main

from .test_cli import PLUGINS, SURFACE, cli, update


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "vol_surface.json"
    shutil.copyfile(SURFACE, config)
    return {"config": str(config), "history": str(tmp_path / "runs"), "archive": str(tmp_path / "archive")}


def doctor(capsys, env, *extra: str):
    return cli(
        capsys,
        "doctor",
        "--plugins-dir",
        str(PLUGINS),
        "--config",
        env["config"],
        "--history-dir",
        env["history"],
        "--archive-dir",
        env["archive"],
        *extra,
    )


def state(root: Path) -> dict[str, bytes]:
    return {
        str(p): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".index" not in p.parts and not p.name.endswith(".lock")
    }


def test_doctor_finds_an_interrupted_update_and_repair_settles_it_once(capsys, env, tmp_path):
    assert update(capsys, env, "2025-09-11")[0] == 0
    assert doctor(capsys, env)[0] == 0
    pid = os.fork()
    if pid == 0:  # an update killed just after it wrote the live config
        code = 1
        try:
            durable.set_kill_point(14)
            main(
                [
                    "update",
                    "--underlying",
                    "SPY",
                    "--date",
                    "2025-09-15",
                    "--force",
                    "--plugins-dir",
                    str(PLUGINS),
                    "--config",
                    env["config"],
                    "--history-dir",
                    env["history"],
                    "--archive-dir",
                    env["archive"],
                ]
            )
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == durable.KILL_EXIT_CODE
    capsys.readouterr()
    code, out, err = doctor(capsys, env)
    assert code == 1, out + err
    words = " ".join(out.replace("│", " ").split())
    assert "finding" in words and "interrupted" in out and "Settles" in out, out
    code, out, _ = doctor(capsys, env, "--json")
    report = json.loads(out)
    assert code == 1 and report["findings"] and report["findings"][0]["check"] == "intents"
    code, out, err = doctor(capsys, env, "--repair")
    assert code == 0, out + err
    assert "nothing found" in out
    after = state(tmp_path)
    code, out, _ = doctor(capsys, env, "--repair")
    assert code == 0 and state(tmp_path) == after  # idempotent
    code, out, _ = cli(capsys, "history", "SPY", "--history-dir", env["history"], "--json")
    assert all(run["decided_at"] for run in json.loads(out))


def test_a_stale_expected_version_exits_2_and_says_what_changed(capsys, env):
    assert update(capsys, env, "2025-09-11")[0] == 0
    code, out, _ = doctor(capsys, env, "--json")
    version = json.loads(out)["versions"]
    (seen,) = version.values()
    first = Path(env["config"]).read_bytes()
    assert update(capsys, env, "2025-10-20", "--force", "--force-values", "recommended")[0] == 0
    before = Path(env["config"]).read_bytes()
    assert before != first
    code, out, err = cli(
        capsys,
        "force",
        "--underlying",
        "SPY",
        "--plugins-dir",
        str(PLUGINS),
        "--config",
        env["config"],
        "--history-dir",
        env["history"],
        "--archive-dir",
        env["archive"],
        "--expect-version",
        seen,
    )
    assert code == 2
    assert "changed since you looked" in err and "Nothing was changed" in err and "forced by user" in err, err
    assert Path(env["config"]).read_bytes() == before


def test_doctor_names_a_stray_file_in_the_archive_and_why_it_is_skipped(capsys, env):
    assert update(capsys, env, "2025-09-11")[0] == 0
    stray = Path(env["archive"]) / "notes.txt"
    stray.write_text("kept here by hand\n")
    code, out, err = doctor(capsys, env, "--json")
    foreign = [f for f in json.loads(out)["findings"] if f["check"] == "foreign"]
    assert [f["what"] for f in foreign] == [f"{stray} is not a folder; each archived target is a folder of changes."], (
        out + err
    )
    assert stray.read_text() == "kept here by hand\n"  # reported, never moved or deleted


def test_doctor_warns_when_others_can_write_the_data_root_or_the_policy(capsys, env, tmp_path):
    update(capsys, env, "2025-12-01")
    policy = tmp_path / "calibration_policy.toml"
    policy.write_text("min_delta_global = 0.03\n")
    code, out, _ = doctor(capsys, env, "--json")
    assert not [f for f in json.loads(out)["findings"] if f["check"] == "permissions"]
    os.chmod(policy, 0o664)  # the group may edit who may do what
    os.chmod(tmp_path, 0o777)  # everyone may add or replace records
    try:
        code, out, _ = doctor(capsys, env, "--json")
    finally:
        os.chmod(tmp_path, 0o700)
    found = [f["what"] for f in json.loads(out)["findings"] if f["check"] == "permissions"]
    assert found == [
        f"{tmp_path} is writable by every user of this computer (mode 0777), so they could change the policy, "
        "the users or the records without calibration-policy knowing.",
        f"{policy} is writable by its group (mode 0664), so they could change the policy, the users or the records "
        "without calibration-policy knowing.",
    ]
    assert code != 0
