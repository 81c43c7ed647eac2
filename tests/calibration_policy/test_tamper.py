"""An edit of the policy file made outside calibration-policy is recorded, shown by doctor and on every panel page,
and (with refuse_unrecorded_edits) not acted on until someone allowed to change the policy accepts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibration_policy import CalibrationUpdatePolicy, Context
from calibration_policy.cli import main
from calibration_policy.policy_versions import PolicyVersions
from calibration_policy.tamper import WHO, UnrecordedEditError, load_in_force, unrecorded_edit


@pytest.fixture
def root(tmp_path: Path, monkeypatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("CALIBRATION_DATA", str(data))
    PolicyVersions(data).record(CalibrationUpdatePolicy(min_delta_global=0.03), actor="ana", reason="first")
    return data


def hand_edit(root: Path, text: str) -> None:
    (root / "calibration_policy.toml").write_text(text)


def test_a_file_written_through_calibration_policy_is_no_edit(root: Path):
    assert unrecorded_edit(load_in_force(data_dir=root), root) is None
    assert not (root / "policy_versions" / "out_of_band").exists()


def test_a_hand_edit_is_recorded_once_with_who_when_and_the_diff(root: Path):
    hand_edit(root, "min_delta_global = 0.0\n")
    load_in_force(data_dir=root)
    load_in_force(data_dir=root)  # noticed again: recorded once
    records = list((root / "policy_versions" / "out_of_band").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["who"] == WHO and record["diff"] == ["min_delta_global: 0.03 → 0.0"]
    assert record["noticed_at"]


def test_doctor_reports_the_edit_and_accept_records_it(root: Path, capsys):
    hand_edit(root, "min_delta_global = 0.0\n")
    assert main(["doctor", "--json"]) == 1
    found = [f for f in json.loads(capsys.readouterr().out)["findings"] if f["check"] == "policy"]
    assert len(found) == 1 and "edited outside calibration-policy" in found[0]["what"]
    assert "min_delta_global: 0.03 → 0.0" in found[0]["what"]
    assert main(["policy", "accept", "--actor", "ana"]) == 0
    assert "Accepted: the policy file is now version" in capsys.readouterr().out
    assert PolicyVersions(root).current().policy["min_delta_global"] == 0.0
    assert main(["doctor", "--json"]) == 0
    assert main(["policy", "accept", "--actor", "ana"]) == 2  # nothing left to accept
    assert "no outside edit to accept" in capsys.readouterr().err


def test_refuse_unrecorded_edits_stops_the_edited_policy_until_accepted(root: Path, capsys):
    PolicyVersions(root).record(
        CalibrationUpdatePolicy(
            refuse_unrecorded_edits=True, permissions={"roles": {"admin": ["*"]}, "users": {"ana": ["admin"]}}
        ),
        actor="ana",
        reason="guard the file",
    )
    # the edit gives everyone every role and tries to switch the refusal off: neither counts until accepted
    hand_edit(root, "refuse_unrecorded_edits = false\n")
    with pytest.raises(UnrecordedEditError, match="must review it before anything is decided with it"):
        load_in_force(data_dir=root)
    assert main(["explain"]) == 2
    assert "edited outside calibration-policy" in capsys.readouterr().err
    assert main(["policy", "accept", "--actor", "mallory"]) == 2  # not allowed to change the policy
    assert "mallory" in capsys.readouterr().err
    assert main(["policy", "accept", "--actor", "ana"]) == 0
    assert load_in_force(data_dir=root).refuse_unrecorded_edits is False


def test_an_update_from_python_refuses_the_edited_policy_too(root: Path, tmp_path: Path, make_result):
    """The check is in the policy every governed change loads, not in each command: a host's own cron job calling
    run_update() without a policy meets the same refusal, and nothing is recorded or applied."""
    from calibration_policy import JsonFileTarget, run_update

    PolicyVersions(root).record(
        CalibrationUpdatePolicy(refuse_unrecorded_edits=True), actor="ana", reason="guard the file"
    )
    hand_edit(root, "min_delta_global = 0.0\n")
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0}))
    before = live.read_bytes()
    with pytest.raises(UnrecordedEditError, match="must review it"):
        run_update(
            make_result(global_m=1.2),
            underlying="SPY",
            source="live",
            target=JsonFileTarget(live, name="spy"),
            context=Context.build(history_dir=root / "calibration_runs"),
        )
    assert live.read_bytes() == before and not (root / "calibration_runs").exists()


def test_the_panel_warns_on_every_page(root: Path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from calibration_policy.target import JsonFileTarget
    from calibration_policy_ui import create_router

    config = root / "config.json"
    config.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    app = FastAPI()
    app.include_router(
        create_router(history_dir=root / "calibration_runs", target_for=lambda u: JsonFileTarget(config), secret="s"),
        prefix="/calibration",
    )
    client = TestClient(app)
    assert "data-cp-policy-edit" not in client.get("/calibration/").text
    hand_edit(root, "min_delta_global = 0.0\n")
    for page in ("/calibration/", "/calibration/lab", "/calibration/weights/", "/calibration/nowhere-x"):
        response = client.get(page)
        if response.headers.get("content-type", "").startswith("text/html"):
            assert "data-cp-policy-edit" in response.text and "outside calibration-policy" in response.text, page
