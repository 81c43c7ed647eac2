"""The kill-point sweep on the PostgreSQL store: an update killed at each of its durable steps (every statement
that commits on its own, and just before a change's commit), then settled by the next call, leaves one story:
the archive, the live row and the runs agree, nothing applied twice, nothing stuck, no intent left."""

from __future__ import annotations

import json
import os
import select
import sys
import time
from typing import Any

import pytest

from calibration_policy import Context, UpdateOptions, active_store
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


def test_an_update_killed_at_every_step_is_settled(postgres_url, tmp_path, monkeypatch, fork):
    monkeypatch.setenv("CALIBRATION_STORE", postgres_url)
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0}))
    target = JsonFileTarget(live, name="spy_live")
    kills = 0
    for step in range(1, 80):
        child = fork.script(CHILD, [str(CONFTEST), "none", str(step), "1", str(live)], kill_at=step)
        if child.returncode == 0:
            break  # the update ran to its end before step ``step``: every step was killed once
        assert child.returncode == KILL_EXIT_CODE, child.stderr[-2000:]
        kills += 1
        _wait_until_the_server_lets_go(target)
        settle_interrupted(target)  # what the next change (or doctor --repair) does first
        _consistent(target)
    assert kills >= 5, f"only {kills} kill points: the sweep did not reach into the change"
    _consistent(target)


REVIEWER = """
import sys
from calibration_policy import Context
from calibration_policy import CalibrationUpdatePolicy
from calibration_policy.pipeline import approve_suggestion, modify_suggestion, reject_suggestion
from calibration_policy.target import JsonFileTarget
action, suggestion, live = sys.argv[1:4]
target = JsonFileTarget(live, name="spy_live")
policy = CalibrationUpdatePolicy(require_approval=True, min_sample_size=1, min_vega_sum=0)
if action == "approve":
    approve_suggestion(suggestion, target=target, context=Context.build(actor='ana', policy=policy))
elif action == "modify":
    modify_suggestion(suggestion, {'global': 1.5, 'weekly': 1.0, 'monthly': 1.0}, target=target, context=Context.build(actor='ana', policy=policy))
else:
    reject_suggestion(suggestion, target=target, context=Context.build(actor='ana', policy=policy))
"""
# what the suggestion's status is once the review ran to its end, and whether its values go live
FINISHED = {"approve": ("approved", True), "modify": ("modified", True), "reject": ("rejected", False)}


@pytest.mark.parametrize("action", sorted(FINISHED))
def test_a_review_killed_at_every_step_goes_live_once_or_not_at_all(
    action, postgres_url, tmp_path, monkeypatch, make_result, t0, fork
):
    from datetime import timedelta

    from calibration_policy import CalibrationUpdatePolicy, open_store, run_update
    from calibration_policy.stores import open_archive, open_reviews

    monkeypatch.setenv("CALIBRATION_STORE", postgres_url)
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    target = JsonFileTarget(live, name="spy_live")
    policy = CalibrationUpdatePolicy(require_approval=True, min_sample_size=1, min_vega_sum=0)
    finished, goes_live = FINISHED[action]
    kills = 0
    for step in range(1, 80):
        outcome = run_update(
            make_result(global_m=1.0 + 0.05 * (step % 5 + 1)),
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=t0 + timedelta(days=step)),
            context=Context.build(policy=policy),
        )
        suggestion = open_store().get(outcome.run.run_id).pending_suggestion
        if suggestion is None:
            continue  # the same values again: nothing to review
        child = fork.script(REVIEWER, [action, suggestion, str(live)], kill_at=step)
        _wait_until_the_server_lets_go(target)
        settle_interrupted(target)
        item = open_reviews().get(suggestion)
        assert item.status in ("pending", finished), (step, item.status)
        went_live = [e for e in open_archive(None, target.name).entries() if e.suggestion_id == suggestion]
        done = item.status == finished
        assert len(went_live) == (1 if done and goes_live else 0), (step, item.status, len(went_live))
        assert open_store().get(outcome.run.run_id).applied == (done and goes_live)
        governed = active_store().govern(target)
        changes = open_archive(None, target.name).entries()
        assert governed.values(governed.load()) == (changes[-1].new_values if changes else json.loads(live.read_text()))
        assert active_store().intents.pending_names(None, target.name) == []
        if child.returncode == 0:
            assert done
            break
        assert child.returncode == KILL_EXIT_CODE, child.stderr[-2000:]
        kills += 1
    assert kills >= 2, f"only {kills} kill points: the sweep did not reach into the {action}"


ROLLER = """
import sys
from calibration_policy import Context
from calibration_policy.pipeline import roll_back
from calibration_policy.target import JsonFileTarget
roll_back(JsonFileTarget(sys.argv[2], name='spy_live'), sys.argv[1], context=Context.build(actor='ana'))
"""


def test_a_roll_back_killed_at_every_step_happens_once_or_not_at_all(
    postgres_url, tmp_path, monkeypatch, make_result, t0, fork
):
    from datetime import timedelta

    from calibration_policy import CalibrationUpdatePolicy, run_update
    from calibration_policy.stores import open_archive

    monkeypatch.setenv("CALIBRATION_STORE", postgres_url)
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0}))
    target = JsonFileTarget(live, name="spy_live")
    policy = CalibrationUpdatePolicy(min_sample_size=1, min_vega_sum=0)
    kills = 0
    for step in range(1, 80):
        # something to roll back: a fresh update, then back to the set before it
        run_update(
            make_result(global_m=1.2 + 0.1 * (step % 2)),
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=t0 + timedelta(days=step)),
            context=Context.build(policy=policy),
        )
        before = open_archive(None, target.name).entries()
        undo = before[-2].change_id if len(before) > 1 else "original"
        child = fork.script(ROLLER, [undo, str(live)], kill_at=step)
        _wait_until_the_server_lets_go(target)
        settle_interrupted(target)
        after = open_archive(None, target.name).entries()
        assert len(after) - len(before) in (0, 1), (step, len(before), len(after))
        if len(after) > len(before):
            assert after[-1].kind == "rollback"
        for earlier, later in zip(after, after[1:]):
            assert later.previous_values == earlier.new_values  # one chain: nothing lost, nothing twice
        governed = active_store().govern(target)
        assert governed.values(governed.load()) == after[-1].new_values
        assert active_store().intents.pending_names(None, target.name) == []
        if child.returncode == 0:
            assert len(after) == len(before) + 1
            break
        assert child.returncode == KILL_EXIT_CODE, child.stderr[-2000:]
        kills += 1
    assert kills >= 2, f"only {kills} kill points: the sweep did not reach into the roll back"


WORKER = """
import importlib.util, random, sys
from datetime import datetime, timedelta, timezone
spec = importlib.util.spec_from_file_location("fixtures", sys.argv[1]); fixtures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fixtures)
from calibration_policy import Context, UpdateOptions
from calibration_policy import CalibrationUpdatePolicy, run_update
from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.pipeline import approve_suggestion, reject_suggestion
from calibration_policy.stores import open_reviews
from calibration_policy.target import JsonFileTarget
role, seed, live = sys.argv[2], int(sys.argv[3]), sys.argv[4]
rng = random.Random(seed)
policy = CalibrationUpdatePolicy(require_approval=True, min_sample_size=1, min_vega_sum=0, min_delta_global=0.001,
                                 min_delta_band=0.001, smoothing_window_days=1)
target = JsonFileTarget(live, name="spy_live")
t0 = datetime(2025, 12, 10, 21, tzinfo=timezone.utc)
for i in range(10**6):
    if i == 1:
        print("working", flush=True)  # one round done: a kill from now on lands inside the work
    try:
        if role == "propose":
            run_update(fixtures.build_result(global_m=round(1 + rng.uniform(0.01, 0.3), 4), bands={}), underlying='SPY', source='live', target=target, options=UpdateOptions(timestamp=t0 + timedelta(minutes=seed * 10 ** 6 + i)), context=Context.build(policy=policy))
        else:
            pending = open_reviews().all(target=target.name, status="pending")
            if pending and rng.random() < 0.75:
                approve_suggestion(pending[-1].suggestion_id, target=target, context=Context.build(actor='ana', policy=policy))
            elif pending:
                reject_suggestion(pending[-1].suggestion_id, target=target, context=Context.build(actor='bo', policy=policy))
    except CalibrationPolicyError:
        pass  # a lost race (no longer pending, a newer version): the next round tries again
"""
CAMPAIGN_KILLS = int(os.environ.get("CALIBRATION_POLICY_KILLS", "0")) or (
    200 if os.environ.get("CALIBRATION_POLICY_LONG_TESTS") == "1" else 12
)


def test_random_sigkills_on_proposers_and_reviewers_leave_one_story(postgres_url, tmp_path, monkeypatch, fork):
    """Two proposers and two reviewers (approve or reject the newest pending suggestion) work on one live config
    through the database; random ones are SIGKILLed mid-work and replaced. Settled afterwards: every approved
    suggestion went live exactly once, nothing rejected or expired is live, runs and archive agree, no intent left."""
    import random
    import signal

    from calibration_policy import open_store
    from calibration_policy.stores import open_archive, open_reviews

    monkeypatch.setenv("CALIBRATION_STORE", postgres_url)
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0}))
    target = JsonFileTarget(live, name="spy_live")
    rng, seeds = random.Random(5), iter(range(1, 10**6))

    def start(role: str) -> tuple[str, Any]:  # forked, so a replacement starts in milliseconds
        return role, fork.spawn(WORKER, [str(CONFTEST), role, str(next(seeds)), str(live)])

    def working(role: str, proc: Any) -> None:
        """Wait (however loaded the machine) until the worker has done one round of work."""
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready and proc.stdout.readline() == "working\n", (
            f"a {role} worker never started: {proc.stderr_text()[-3000:]}"
        )

    workers = [start(role) for role in ("propose", "propose", "review", "review")]
    seen_working: set[int] = set()
    try:
        for _ in range(CAMPAIGN_KILLS):
            index = rng.randrange(len(workers))
            role, victim = workers[index]
            if victim.pid not in seen_working:
                working(role, victim)
                seen_working.add(victim.pid)
            time.sleep(rng.uniform(0.05, 0.6))  # past its first round: the kill lands inside the work
            for other_role, proc in workers:
                assert proc.poll() is None, f"a {other_role} worker died on its own: {proc.stderr_text()[-3000:]}"
            victim.send_signal(signal.SIGKILL)
            victim.wait(30)
            workers[index] = start(role)
    finally:
        for _, proc in workers:
            proc.kill()
            proc.wait(30)
    _wait_until_the_server_lets_go(target, seconds=30)
    settle_interrupted(target)

    changes = open_archive(None, target.name).entries()
    governed = active_store().govern(target)
    assert governed.values(governed.load()) == (changes[-1].new_values if changes else {"global": 1.0})
    for earlier, later in zip(changes, changes[1:]):
        assert later.previous_values == earlier.new_values  # one chain: no lost update
    live_suggestions = [c.suggestion_id for c in changes if c.suggestion_id]
    assert len(live_suggestions) == len(set(live_suggestions)), "a suggestion went live twice"
    suggestions = open_reviews().all(target=target.name)
    status = {s.suggestion_id: s.status for s in suggestions}
    assert {status[s] for s in live_suggestions} <= {"approved"}, "a rejected or expired suggestion is live"
    assert {s for s, st in status.items() if st == "approved"} == set(live_suggestions), "approved but never live"
    runs = open_store().latest("SPY", 100_000)
    assert {r.run_id for r in runs if r.applied} == {c.run_id for c in changes}, "runs and archive disagree"
    assert all(r.decided_at is not None for r in runs), "a run was left undecided"
    assert active_store().intents.pending_names(None, target.name) == []
    assert len(runs) > CAMPAIGN_KILLS and changes, (
        f"too little work to mean anything: {len(runs)} runs, {len(changes)} changes"
    )
    print(
        f"\n[postgresql campaign] {CAMPAIGN_KILLS} SIGKILLs: {len(runs)} runs, {len(suggestions)} suggestions, "
        f"{len(changes)} changes; 0 double applies, 0 refused-but-live, 0 stuck",
        file=sys.stderr,
    )
