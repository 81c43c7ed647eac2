"""Crash settling and concurrent updaters, on both stores: a process killed mid-change leaves no
half-written state and no stuck change, and concurrent updaters neither lose nor double a decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import warm

from calibration_policy import CalibrationUpdatePolicy, active_store, open_store
from calibration_policy.stores import open_archive
from calibration_policy.target import JsonFileTarget

POLICY = CalibrationUpdatePolicy(
    min_sample_size=1, min_vega_sum=0, min_delta_global=0.001, min_delta_band=0.001, smoothing_window_days=1
)
CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

CHILD = textwrap.dedent("""
    import importlib.util, json, os, sys
    from datetime import datetime, timedelta, timezone
    spec = importlib.util.spec_from_file_location("fixtures", sys.argv[1]); fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    from calibration_policy import Context, UpdateOptions
    from calibration_policy import CalibrationUpdatePolicy, run_update, steps
    from calibration_policy.changes import update as update_change
    from calibration_policy.target import JsonFileTarget
    kill, start, count, live = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    def dying(original):
        def call(*args, **kwargs):
            result = original(*args, **kwargs)
            os._exit(9)
        return call
    if kill == "after_record":
        update_change.smoothed_for = dying(update_change.smoothed_for)
    elif kill == "after_live_change":
        steps.apply_values = dying(steps.apply_values)
    policy = CalibrationUpdatePolicy(min_sample_size=1, min_vega_sum=0, min_delta_global=0.001, min_delta_band=0.001,
                                     smoothing_window_days=1)
    target = JsonFileTarget(live, name="spy_live")
    t0 = datetime(2025, 12, 10, 21, tzinfo=timezone.utc)
    for i in range(start, start + count):
        outcome = run_update(fixtures.build_result(global_m=round(1.0 + 0.01 * (i + 1), 4), bands={}), underlying='SPY', source='live', target=target, options=UpdateOptions(timestamp=t0 + timedelta(days=i)), context=Context.build(policy=policy))
        print(outcome.run.run_id, outcome.applied, flush=True)
""")


def _child(tmp_path: Path, kill: str, start: int, count: int, live: Path) -> Any:
    """``python child.py …`` as a process of its own (a ``Popen``, or its twin in the warm interpreter)."""
    script = tmp_path / "child.py"
    if not script.exists():  # written once: a child reading it while it is rewritten would run half a script
        script.write_text(CHILD)
    return warm.popen(
        [sys.executable, str(script), str(CONFTEST), kill, str(start), str(count), str(live)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _consistent(target) -> None:
    """The archive, the live config and the runs tell one story."""
    governed = active_store().govern(target)
    changes = open_archive(None, target.name).entries()
    live = governed.values(governed.load())
    assert live == (changes[-1].new_values if changes else {"global": 1.0})
    for earlier, later in zip(changes, changes[1:]):
        assert later.previous_values == earlier.new_values  # no lost update: each change starts from the last
    runs = open_store().latest("SPY", 1000)
    assert all(r.decided_at is not None for r in runs), "a run was left undecided"
    applied = {r.run_id for r in runs if r.applied}
    assert applied == {c.run_id for c in changes}, "runs and archive disagree on what went live"
    assert len(changes) == len({c.run_id for c in changes}), "a run went live twice"
    assert active_store().intents.pending_names(None, target.name) == []


@pytest.mark.parametrize("kill", ["after_record", "after_live_change"])
def test_a_killed_update_is_settled_by_the_next_change(store_url, tmp_path, kill):
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0}))
    child = _child(tmp_path, kill, 0, 1, live)
    assert child.wait(60) == 9, child.stderr.read()
    target = JsonFileTarget(live, name="spy_live")
    assert active_store().intents.pending_names(None, target.name), "the killed change left no intent to settle"
    done = _child(tmp_path, "none", 1, 1, live)
    assert done.wait(60) == 0, done.stderr.read()
    _consistent(target)
    killed = open_store().oldest("SPY", 1)[0]
    if store_url != "files" or kill == "after_record":  # the database rolled the whole change back
        assert not killed.applied and "interrupted" in killed.applied_reason or "Not applied" in killed.applied_reason
    else:  # the file store had made it live: completed, recorded as applied
        assert killed.applied


def test_concurrent_updaters_lose_and_double_nothing(store_url, tmp_path):
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0}))
    processes = int(os.environ.get("CALIBRATION_POLICY_RACE_PROCESSES", "6"))
    children = [_child(tmp_path, "none", 3 * i, 3, live) for i in range(processes)]
    for child in children:
        assert child.wait(120) == 0, child.stderr.read()
        assert len(child.stdout.read().splitlines()) == 3  # each child made its three updates
    target = JsonFileTarget(live, name="spy_live")
    assert open_store().count("SPY") == 3 * processes
    _consistent(target)
