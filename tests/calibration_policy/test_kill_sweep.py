"""Kill sweeps (issue 22): a change killed before each of its durable steps, then settled by the next change
of *another* kind, leaves one story — the live config, the archive, the suggestions and the runs agree,
nothing applied twice, no intent left. File store; the PostgreSQL sweep is ``stores/test_kill_points.py``.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions
from calibration_policy.archive import Archive
from calibration_policy.durable import KILL_EXIT_CODE
from calibration_policy.errors import ReviewError
from calibration_policy.history import open_history
from calibration_policy.intents import intents_dir
from calibration_policy.pipeline import reject_suggestion, roll_back, run_update
from calibration_policy.review import ReviewStore
from calibration_policy.target import JsonFileTarget

T0 = datetime(2025, 12, 1, 21, 0, tzinfo=UTC)
POLICY = CalibrationUpdatePolicy(require_approval=True, smoothing_window_days=1)

CHILD = textwrap.dedent("""
    import json, sys
    from calibration_policy import Context
    from calibration_policy import CalibrationUpdatePolicy
    from calibration_policy.pipeline import approve_suggestion, modify_suggestion, reject_suggestion, roll_back
    from calibration_policy.review import ReviewStore
    from calibration_policy.target import JsonFileTarget
    kind, root, sid = sys.argv[1], sys.argv[2], sys.argv[3]
    target = JsonFileTarget(root + "/live.json", name="spy")
    dirs = {"history_dir": root + "/runs", "archive_dir": root + "/archive"}
    store = ReviewStore(root + "/suggestions")
    policy = CalibrationUpdatePolicy(require_approval=True, smoothing_window_days=1)
    if kind == "approve":
        approve_suggestion(sid, target=target, context=Context.build(suggestions_dir=store, actor='bo', policy=policy, **dirs))
    elif kind == "modify":
        modify_suggestion(sid, {'global': 1.15}, target=target, context=Context.build(suggestions_dir=store, actor='bo', policy=policy, **dirs))
    elif kind == "reject":
        reject_suggestion(sid, target=target, context=Context.build(suggestions_dir=store, actor='bo', policy=policy, **dirs))
    else:
        roll_back(target, 'original', context=Context.build(actor='bo', policy=policy, **dirs))
""")


def result(global_m: float) -> dict:
    return {"global_metrics": {"n": 412, "vega_sum": 12400.0, "recommended_iv_multiplier": global_m}, "bands": {}}


def world(root: Path) -> str:
    """A live config, one applied change (so a rollback has something to undo) and one pending suggestion."""
    root.mkdir()
    (root / "live.json").write_text(json.dumps({"global": 1.0}))
    target = JsonFileTarget(root / "live.json", name="spy")
    dirs = {"history_dir": root / "runs", "archive_dir": root / "archive", "suggestions_dir": root / "suggestions"}
    auto = CalibrationUpdatePolicy(smoothing_window_days=1)
    run_update(
        result(1.05),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=T0),
        context=Context.build(policy=auto, **dirs),
    )
    waiting = run_update(
        result(1.2),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=T0.replace(day=3)),
        context=Context.build(policy=POLICY, **dirs),
    )
    assert waiting.run.pending_suggestion
    return waiting.run.pending_suggestion


def one_story(root: Path) -> None:
    """What every settled state must say, whatever was killed where."""
    target = JsonFileTarget(root / "live.json", name="spy")
    entries = Archive(root / "archive", "spy").entries()
    live = json.loads((root / "live.json").read_text())
    assert live == entries[-1].new_values, "the live config is what the archive says went live last"
    assert not list(intents_dir(root / "archive", target.name).glob("*.json")), "an intent was left behind"
    suggestions = {s.suggestion_id: s for s in ReviewStore(root / "suggestions").all()}
    by_suggestion = [e.suggestion_id for e in entries if e.suggestion_id]
    assert len(by_suggestion) == len(set(by_suggestion)), "a suggestion went live twice"
    for sid in by_suggestion:
        assert suggestions[sid].status in ("approved", "modified"), f"{sid} is live but {suggestions[sid].status}"
    for item in suggestions.values():
        if item.status in ("approved", "modified"):
            assert item.suggestion_id in by_suggestion, f"{item.suggestion_id} says {item.status}, never went live"
    for run in open_history(root / "runs").latest("SPY", 50):
        if run.pending_suggestion:
            assert suggestions[run.pending_suggestion].status == "pending", f"run {run.run_id} waits for nothing"
        assert run.decided_at is not None, f"run {run.run_id} was never decided"


def next_change(kind: str, root: Path, sid: str) -> None:
    """The next change, of another kind than the killed one: it settles first."""
    target = JsonFileTarget(root / "live.json", name="spy")
    dirs = {"history_dir": root / "runs", "archive_dir": root / "archive"}
    if kind == "roll_back":
        try:
            reject_suggestion(
                sid, target=target, context=Context.build(suggestions_dir=root / "suggestions", actor="ana", **dirs)
            )
        except ReviewError:
            pass  # the killed change had settled it already: the refusal is the truth
    else:
        roll_back(target, "original", context=Context.build(actor="ana", **dirs))


@pytest.mark.parametrize("kind", ["approve", "modify", "reject", "roll_back"])
def test_a_change_killed_at_every_durable_step_is_settled_by_the_next_change(tmp_path: Path, kind: str, fork):
    sid = world(tmp_path / "world")  # built once; each kill point starts from a copy of it
    kills = 0
    for step in range(1, 40):
        root = shutil.copytree(tmp_path / "world", tmp_path / f"{kind}-{step}")
        child = fork.script(CHILD, [kind, str(root), sid], kill_at=step)
        next_change(kind, root, sid)
        one_story(root)
        if child.returncode == 0:
            break  # the change ran to its end before step ``step``: every step was killed once
        assert child.returncode == KILL_EXIT_CODE, child.stderr[-2000:]
        kills += 1
    assert kills >= 3, f"only {kills} kill points: the sweep did not reach into the change"
