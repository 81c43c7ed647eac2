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
