"""The kill-point sweep on the PostgreSQL store: an update killed at each of its durable steps (every statement
that commits on its own, and just before a change's commit), then settled by the next call, leaves one story:
the archive, the live row and the runs agree, nothing applied twice, nothing stuck, no intent left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from calibration_policy import active_store
from calibration_policy.durable import KILL_EXIT_CODE
from calibration_policy.pipeline import settle_interrupted
from calibration_policy.target import JsonFileTarget

from .test_crash_and_races import CHILD, CONFTEST, _consistent


def _wait_until_the_server_lets_go(target, seconds: float = 10.0) -> None:
    """The server frees a dead client's locks when it notices the closed connection (milliseconds):
    until then the killed change still counts as in progress, and the next change leaves it alone."""
    deadline = time.monotonic() + seconds
    while active_store().intents.in_progress(None, target.name):
        assert time.monotonic() < deadline, "a dead process's intent lock was never freed"
        time.sleep(0.02)


def test_an_update_killed_at_every_step_is_settled(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CALIBRATION_STORE", postgres_url)
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0}))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    target = JsonFileTarget(live, name="spy_live")
    kills = 0
    for step in range(1, 80):
        env = {**os.environ, "CALIBRATION_POLICY_KILL_AT": str(step)}
        child = subprocess.run([sys.executable, str(script), str(CONFTEST), "none", str(step), "1", str(live)],
                               env=env, capture_output=True, text=True, timeout=120)
        if child.returncode == 0:
            break  # the update ran to its end before step ``step``: every step was killed once
        assert child.returncode == KILL_EXIT_CODE, child.stderr[-2000:]
        kills += 1
        _wait_until_the_server_lets_go(target)
        settle_interrupted(target)  # what the next change (or doctor --repair) does first
        _consistent(target)
    assert kills >= 5, f"only {kills} kill points: the sweep did not reach into the change"
    _consistent(target)


APPROVER = """
import sys
from calibration_policy import CalibrationUpdatePolicy
from calibration_policy.pipeline import approve_suggestion
from calibration_policy.target import JsonFileTarget
approve_suggestion(None, sys.argv[1], target=JsonFileTarget(sys.argv[2], name="spy_live"), reviewer="ana",
                   policy=CalibrationUpdatePolicy(require_approval=True, min_sample_size=1, min_vega_sum=0))
"""


def test_an_approval_killed_at_every_step_goes_live_once_or_not_at_all(postgres_url, tmp_path, monkeypatch, make_result, t0):
    from datetime import timedelta

    from calibration_policy import CalibrationUpdatePolicy, open_store, run_update
    from calibration_policy.stores import open_archive, open_reviews

    monkeypatch.setenv("CALIBRATION_STORE", postgres_url)
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    target = JsonFileTarget(live, name="spy_live")
    policy = CalibrationUpdatePolicy(require_approval=True, min_sample_size=1, min_vega_sum=0)
    kills = 0
    for step in range(1, 80):
        outcome = run_update(make_result(global_m=1.0 + 0.05 * (step % 5 + 1)), underlying="SPY", source="live",
                             target=target, policy=policy, timestamp=t0 + timedelta(days=step))
        suggestion = open_store().get(outcome.run.run_id).pending_suggestion
        if suggestion is None:
            continue  # the same values again: nothing to approve
        child = subprocess.run([sys.executable, "-c", APPROVER, suggestion, str(live)],
                               env={**os.environ, "CALIBRATION_POLICY_KILL_AT": str(step)},
                               capture_output=True, text=True, timeout=120)
        _wait_until_the_server_lets_go(target)
        settle_interrupted(target)
        item = open_reviews().get(suggestion)
        went_live = [e for e in open_archive(None, target.name).entries() if e.suggestion_id == suggestion]
        assert len(went_live) == (1 if item.status == "approved" else 0), (step, item.status, len(went_live))
        assert open_store().get(outcome.run.run_id).applied == (item.status == "approved")
        if child.returncode == 0:
            assert item.status == "approved"
            break
        assert child.returncode == KILL_EXIT_CODE, child.stderr[-2000:]
        kills += 1
    assert kills >= 3, f"only {kills} kill points: the sweep did not reach into the approval"
