"""Nothing applied twice, nothing stuck (issue 11): kill points, settling, doctor, stale changes.

* **Kill-point sweep**: every change — record, update (apply / settle / propose), forced update,
  force-apply, approve, modify, reject, roll back, the weights' suggest, approve and auto mode — runs in a forked child that dies
  (``os._exit``) just before its 1st, 2nd, 3rd … durable step (every fsync, rename and link of
  ``durable.py``), until a child gets through. After each kill: settle (``doctor --repair``),
  then ``doctor`` finds nothing, no suggestion went live twice, no rejected/expired suggestion is
  live, every run an update made has exactly one decision, no intent is left; and the next
  change still works (approving again never applies twice; rejecting what went live is refused).
* **D1, D2, D3, D10**: one deterministic test each (they failed before the fix).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from proofkit import LONG, ORIGINAL_JSON_CONFIG, T0, build_result

from calibration_policy import (
    CalibrationUpdatePolicy,
    Context,
    UpdateOptions,
    durable,
    intents,
    record_calibration_result,
)
from calibration_policy.archive import Archive
from calibration_policy.default_plugins.scoring_weights.domain import FACTORS, weights_target
from calibration_policy.default_plugins.scoring_weights.flow import run_auto, suggest_weights
from calibration_policy.default_plugins.scoring_weights.settings import AutoSettings
from calibration_policy.doctor import examine
from calibration_policy.errors import ReviewError, StaleChangeError
from calibration_policy.pipeline import (
    approve_suggestion,
    force_apply,
    live_version,
    modify_suggestion,
    reject_suggestion,
    roll_back,
    run_update,
    settle_interrupted,
)
from calibration_policy.review import ReviewStore
from calibration_policy.stores import open_store
from calibration_policy.target import JsonFileTarget

POLICY = CalibrationUpdatePolicy(min_delta_global=0.01, min_delta_band=0.01, min_sample_size=10, min_vega_sum=10.0)
APPROVAL = POLICY.model_copy(update={"require_approval": True})
EQUAL = {f: 0.25 for f in FACTORS}
SWEEP: Counter = Counter()


@dataclass
class World:
    root: Path
    pending: str | None = None
    weights: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def history(self) -> Path:
        return self.root / "history"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def suggestions(self) -> Path:
        return self.root / "suggestions"

    @property
    def target(self):
        if self.weights:
            return weights_target(path=self.root / "weights.json")
        return JsonFileTarget(self.root / "live.json")

    def dirs(self) -> dict[str, Path]:
        return {"history_dir": self.history, "archive_dir": self.archive}

    def copy(self, root: Path) -> World:
        shutil.copytree(self.root, root)
        return World(root, self.pending, self.weights, dict(self.extra))


def trades(n: int, seed: int, start: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scores = {f: rng.uniform(0.0, 1.0, n).round(4) for f in FACTORS}
    effects = {"wallet": 300.0, "cluster": 100.0, "token": 0.0, "context": 30.0}
    pnl = rng.normal(0.0, 60.0, n) + sum(effects[f] * (scores[f] - 0.5) for f in FACTORS)
    frame = pd.DataFrame({f"{f}_score": scores[f] for f in FACTORS})
    frame["pnl"] = pnl.round(2)
    frame["win"] = frame["pnl"] > 0
    frame["closed_at"] = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n, freq="h")
    return frame


def seeded(root: Path) -> World:
    """Two applied updates, then one waiting for approval: every run decided, one suggestion pending."""
    root.mkdir(parents=True)
    (root / "live.json").write_text(json.dumps(ORIGINAL_JSON_CONFIG, indent=2, sort_keys=True) + "\n")
    world = World(root)
    for i, g in enumerate((1.03, 1.06)):
        run_update(
            build_result(global_m=g),
            underlying="SPY",
            source="live",
            target=world.target,
            options=UpdateOptions(timestamp=T0 + timedelta(days=i)),
            context=Context.build(policy=POLICY, suggestions_dir=world.suggestions, **world.dirs()),
        )
    outcome = run_update(
        build_result(global_m=1.2),
        underlying="SPY",
        source="live",
        target=world.target,
        options=UpdateOptions(timestamp=T0 + timedelta(days=2)),
        context=Context.build(policy=APPROVAL, suggestions_dir=world.suggestions, **world.dirs()),
    )
    world.pending = outcome.run.pending_suggestion
    assert world.pending
    return world


def seeded_weights(root: Path, pending: bool = False) -> World:
    """Equal weights; with ``pending``, a suggestion from 400 trades waits for a person."""
    root.mkdir(parents=True)
    (root / "weights.json").write_text(json.dumps(EQUAL))
    world = World(root, weights=True)
    if pending:
        outcome = _suggest_weights(world)
        assert outcome.action == "suggested", outcome.message
        world.pending = outcome.suggestion.suggestion_id
    return world


def _suggest_weights(w: World) -> Any:
    return suggest_weights(
        trades(400, 5, "2025-11-01"),
        w.target,
        timestamp=T0,
        context=Context.build(suggestions_dir=w.suggestions, **w.dirs()),
    )


def _update(g: float, policy=POLICY, **how):
    return lambda w: run_update(
        build_result(global_m=g),
        underlying="SPY",
        source="live",
        target=w.target,
        options=UpdateOptions(timestamp=T0 + timedelta(days=3), **how),
        context=Context.build(policy=policy, suggestions_dir=w.suggestions, **w.dirs()),
    )


OPERATIONS: dict[str, Callable[[World], Any]] = {
    "record": lambda w: record_calibration_result(
        build_result(global_m=1.3), "SPY", "live", history_dir=w.history, timestamp=T0 + timedelta(days=3)
    ),
    "update (applies)": _update(1.3),
    "update (not applied)": _update(1.06),
    "update (proposes)": _update(1.4, APPROVAL),
    "update (forced)": _update(1.06, force=True, force_values="recommended"),
    "force": lambda w: force_apply(
        "SPY", target=w.target, use="recommended", context=Context.build(policy=POLICY, **w.dirs())
    ),
    "approve": lambda w: approve_suggestion(
        w.pending, target=w.target, context=Context.build(suggestions_dir=w.suggestions, actor="ana", **w.dirs())
    ),
    "modify": lambda w: modify_suggestion(
        w.pending,
        {"global": 1.15, "weekly": 1.1, "monthly": 1.1},
        target=w.target,
        context=Context.build(suggestions_dir=w.suggestions, actor="ana", **w.dirs()),
    ),
    "reject": lambda w: reject_suggestion(
        w.pending, target=w.target, context=Context.build(suggestions_dir=w.suggestions, actor="ana", **w.dirs())
    ),
    "roll back": lambda w: roll_back(w.target, "original", context=Context.build(**w.dirs())),
    "weights suggest": _suggest_weights,
    "weights approve": lambda w: approve_suggestion(
        w.pending, target=w.target, context=Context.build(suggestions_dir=w.suggestions, actor="ana", **w.dirs())
    ),
    # auto mode measured with 100 shuffles over one look (not 1,000 over 13): it still applies, through the same 24
    # durable steps, at half the cost of each of the 49 evaluations the sweep makes
    "auto mode": lambda w: run_auto(
        trades(500, 3, "2026-01-01"),
        w.target,
        AutoSettings(enabled=True, out_of_sample={"permutations": 100, "resamples": 200}, max_looks=1),
        timestamp=T0 + timedelta(days=3),
        context=Context.build(suggestions_dir=w.suggestions, **w.dirs()),
    ),
}


def run_killed(fork, world: World, operation: Callable[[World], Any], kill_at: int) -> int:
    """Run ``operation`` in a forked child (the ``fork`` fixture) that dies before its ``kill_at``-th durable
    step; its exit code."""
    return fork.call(lambda: operation(world), kill_at).returncode


def invariants(world: World, *, allow_undecided: set[str] = frozenset()) -> None:
    """What must hold after settling: doctor clean, nothing live twice, nothing live that was refused, every run decided once."""
    target = world.target
    examine([target], suggestions_dir=world.suggestions, repair=True, **world.dirs())
    findings = examine([target], suggestions_dir=world.suggestions, **world.dirs())
    assert findings == [], [f.what for f in findings]
    assert intents.pending_names(world.archive, target.name) == []
    committed = Archive(world.archive, target.name).entries()
    assert all(
        e.status == "committed"
        for e in Archive(world.archive, target.name).entries(include_all=True)
        if e.status != "abandoned"
    )
    twice = [sid for sid, n in Counter(e.suggestion_id for e in committed if e.suggestion_id).items() if n > 1]
    assert not twice, f"archived twice: {twice}"
    live_ids = {e.suggestion_id for e in committed}
    suggestions = ReviewStore(world.suggestions).all()
    refused_but_live = [
        s.suggestion_id for s in suggestions if s.status in ("rejected", "expired") and s.suggestion_id in live_ids
    ]
    assert not refused_but_live, f"rejected or expired but live: {refused_but_live}"
    by_id = {s.suggestion_id: s for s in suggestions}
    store = open_store(world.history)
    for underlying in store.underlyings():
        for run in store.latest(underlying, limit=10_000):
            if run.run_id in allow_undecided:
                continue
            assert run.decided_at is not None and run.applied is not None, f"run {run.run_id} has no decision"
            if run.pending_suggestion:
                assert by_id[run.pending_suggestion].status in ("pending", "rejected", "expired"), run.run_id
            applied_by = [e for e in committed if e.run_id == run.run_id]
            if run.applied:
                assert applied_by, f"run {run.run_id} says applied, but nothing of it went live"
    if committed:
        assert committed[-1].new_snapshot == target.load()


def _base(name: str, tmp: Path) -> World:
    if name == "weights approve":
        return seeded_weights(tmp / "base", pending=True)
    return seeded_weights(tmp / "base") if name in ("auto mode", "weights suggest") else seeded(tmp / "base")


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_a_kill_at_every_durable_step_settles_cleanly(name: str, tmp_path: Path, fork) -> None:
    base = _base(name, tmp_path)
    runs_before = {
        r.run_id for u in open_store(base.history).underlyings() for r in open_store(base.history).latest(u, 10_000)
    }
    kills = 0
    for step in range(1, 200):
        world = base.copy(tmp_path / f"k{step}")
        code = run_killed(fork, world, OPERATIONS[name], step)
        if code == 0:
            break
        assert code == durable.KILL_EXIT_CODE, (
            f"{name}: the change failed (exit {code}) instead of being killed at {step}"
        )
        kills += 1
        store = open_store(world.history)
        new_runs = {r.run_id for u in store.underlyings() for r in store.latest(u, 10_000)} - runs_before
        allow = new_runs if name == "record" else set()
        settle_interrupted(world.target, suggestions_dir=world.suggestions, **world.dirs())
        invariants(world, allow_undecided=allow)
        # Life goes on: the same change again, then its opposite, never doubles anything.
        if name in ("approve", "modify", "weights approve"):
            item = ReviewStore(world.suggestions).get(world.pending)
            if item.status == "pending":
                OPERATIONS[name](world)
            else:
                with pytest.raises(ReviewError, match="already"):
                    reject_suggestion(
                        world.pending,
                        target=world.target,
                        context=Context.build(suggestions_dir=world.suggestions, actor="bob", **world.dirs()),
                    )
            invariants(world)
        elif name == "reject":
            item = ReviewStore(world.suggestions).get(world.pending)
            if item.status == "pending":
                OPERATIONS[name](world)
            invariants(world)
        elif name != "record":
            OPERATIONS[name](world)
            invariants(world)
        shutil.rmtree(world.root)
    else:
        pytest.fail(f"{name}: still killed after 200 steps")
    assert kills >= 1, f"{name}: no durable step to kill at"
    SWEEP[name] = kills
    print(
        f"\n[kill points] {name}: killed at each of {kills} durable steps; settled, doctor clean each time",
        file=sys.stderr,
    )


# -- the defects of issue 11 ------------------------------------------------------------------------


def first_step_after_the_config_write(fork, base: World, operation: str, scratch: Path) -> int:
    """The first kill point at which ``operation`` has already written the live config (the step after
    the write: the archive's "committed" mark), found by killing copies of ``base`` at step 1, 2, …"""
    before = base.target.load()
    for step in range(1, 50):
        probe = base.copy(scratch / str(step))
        assert run_killed(fork, probe, OPERATIONS[operation], step) == durable.KILL_EXIT_CODE
        if probe.target.load() != before:
            return step
    raise AssertionError(f"{operation} never wrote the live config in 49 steps")


def test_d1_an_approval_killed_after_the_config_write_is_never_applied_twice_nor_rejected(tmp_path: Path, fork) -> None:
    base = seeded(tmp_path / "base")
    step = first_step_after_the_config_write(fork, base, "approve", tmp_path / "probe")
    for then in ("approve", "reject"):
        world = base.copy(tmp_path / then)
        before = world.target.load()
        assert run_killed(fork, world, OPERATIONS["approve"], step) == durable.KILL_EXIT_CODE
        assert world.target.load() != before  # the values are live, the suggestion still says pending
        if then == "approve":
            done = approve_suggestion(
                world.pending,
                target=world.target,
                context=Context.build(suggestions_dir=world.suggestions, actor="ana", **world.dirs()),
            )
            assert done.status == "approved"
        else:
            with pytest.raises(ReviewError, match="already approved"):
                reject_suggestion(
                    world.pending,
                    target=world.target,
                    context=Context.build(suggestions_dir=world.suggestions, actor="bob", **world.dirs()),
                )
        entries = [e for e in Archive(world.archive, world.target.name).entries() if e.suggestion_id == world.pending]
        assert len(entries) == 1
        assert ReviewStore(world.suggestions).get(world.pending).status == "approved"
        invariants(world)


def test_d2_an_approval_between_propose_and_the_runs_save_leaves_no_run_pending(tmp_path: Path, monkeypatch) -> None:
    world = seeded(tmp_path / "w")
    real = ReviewStore.propose_superseding  # what proposing calls (it also returns the suggestions it superseded)

    def propose_then_someone_approves(self, item):
        made, superseded = real(self, item)
        approve_suggestion(
            made.suggestion_id,
            target=world.target,
            context=Context.build(suggestions_dir=self, actor="ana", **world.dirs()),
        )
        return made, superseded

    monkeypatch.setattr(ReviewStore, "propose_superseding", propose_then_someone_approves)
    outcome = OPERATIONS["update (proposes)"](world)
    run = open_store(world.history).get(outcome.run.run_id)
    assert run.pending_suggestion is None and run.applied is True, run
    invariants(world)


def test_d3_an_update_killed_after_the_config_write_gets_its_decision(tmp_path: Path, fork) -> None:
    base = seeded(tmp_path / "base")
    before = base.target.load()
    step = first_step_after_the_config_write(fork, base, "update (applies)", tmp_path / "probe")
    world = base.copy(tmp_path / "killed")
    assert run_killed(fork, world, OPERATIONS["update (applies)"], step) == durable.KILL_EXIT_CODE
    (run,) = [r for r in open_store(world.history).latest("SPY", 10) if r.decided_at is None]
    # The next change of the target settles it first.
    OPERATIONS["update (not applied)"](world)
    settled = open_store(world.history).get(run.run_id)
    assert settled.applied is True and settled.decided_at is not None
    assert settled.applied_values == world.target.values(before) | settled.applied_values
    invariants(world)


def test_d10_a_force_confirmed_on_an_old_page_never_overwrites_a_newer_change(tmp_path: Path) -> None:
    world = seeded(tmp_path / "w")
    seen = live_version(world.target)  # the page is rendered …
    OPERATIONS["update (applies)"](world)  # … someone else changes the live values …
    after = world.target.load()
    with pytest.raises(StaleChangeError, match="changed since you looked") as caught:  # … then the old page confirms
        force_apply(
            "SPY",
            target=world.target,
            use="recommended",
            expected_version=seen,
            context=Context.build(policy=POLICY, **world.dirs()),
        )
    assert "Nothing was changed" in str(caught.value) and "applied automatically by the policy" in str(caught.value)
    assert world.target.load() == after
    outcome = force_apply(
        "SPY",
        target=world.target,
        use="recommended",
        expected_version=live_version(world.target),
        context=Context.build(policy=POLICY, **world.dirs()),
    )
    assert outcome.applied
    invariants(world)


@pytest.mark.parametrize("change", ["approve", "modify", "reject", "roll back", "update (applies)"])
def test_every_change_refuses_a_stale_version(change: str, tmp_path: Path) -> None:
    world = seeded(tmp_path / "w")
    stale = live_version(world.target)
    roll_back(world.target, "original", context=Context.build(**world.dirs()))
    before = {p: p.read_bytes() for p in world.root.rglob("*.json") if ".intents" not in p.parts}
    call = {
        "approve": lambda: approve_suggestion(
            world.pending,
            target=world.target,
            expected_version=stale,
            context=Context.build(suggestions_dir=world.suggestions, actor="ana", **world.dirs()),
        ),
        "modify": lambda: modify_suggestion(
            world.pending,
            {"global": 1.1},
            target=world.target,
            expected_version=stale,
            context=Context.build(suggestions_dir=world.suggestions, actor="ana", **world.dirs()),
        ),
        "reject": lambda: reject_suggestion(
            world.pending,
            target=world.target,
            expected_version=stale,
            context=Context.build(suggestions_dir=world.suggestions, actor="ana", **world.dirs()),
        ),
        "roll back": lambda: roll_back(
            world.target, "original", expected_version=stale, context=Context.build(**world.dirs())
        ),
        "update (applies)": lambda: (
            OPERATIONS["update (applies)"](world)
            if False
            else run_update(
                build_result(global_m=1.3),
                underlying="SPY",
                source="live",
                target=world.target,
                options=UpdateOptions(timestamp=T0 + timedelta(days=3), expected_version=stale),
                context=Context.build(policy=POLICY, suggestions_dir=world.suggestions, **world.dirs()),
            )
        ),
    }[change]
    with pytest.raises(StaleChangeError, match="rolled back"):
        call()
    if change != "update (applies)":  # an update still records its run (as not applied); nothing else changes
        assert {p: p.read_bytes() for p in world.root.rglob("*.json") if ".intents" not in p.parts} == before
    invariants(world)


def test_settling_costs_one_listing_when_nothing_is_pending(tmp_path: Path, monkeypatch) -> None:
    world = seeded(tmp_path / "w")
    calls = []
    real = os.listdir
    monkeypatch.setattr(intents.os, "listdir", lambda p: calls.append(p) or real(p))
    assert settle_interrupted(world.target, suggestions_dir=world.suggestions, **world.dirs()) == []
    assert len(calls) == 1


def test_report_sweep() -> None:
    if SWEEP:
        print(
            f"\n[kill points] total {sum(SWEEP.values())} kills over {len(SWEEP)} changes: {dict(SWEEP)}",
            file=sys.stderr,
        )


# -- races between separate processes -----------------------------------------------------------------


def test_interleaved_approvals_and_updates_decide_every_run_once(tmp_path: Path) -> None:
    """Proposers make updates that need approval while reviewers approve or reject the newest
    pending one, all in separate processes: every run ends decided once and correctly."""
    import time as _time

    from proofkit import start_driver

    root = tmp_path / "race"
    root.mkdir()
    config = root / "live.json"
    config.write_text(json.dumps(ORIGINAL_JSON_CONFIG))
    per_proposer = 100 if LONG else 20
    stop = root / "stop"
    reviewers = [
        start_driver(
            "race-worker", {"root": str(root), "config": str(config), "worker": k, "role": "approve", "stop": str(stop)}
        )
        for k in (11, 12)
    ]
    proposers = [
        start_driver(
            "race-worker",
            {"root": str(root), "config": str(config), "worker": k, "role": "propose", "count": per_proposer},
        )
        for k in (1, 2)
    ]
    reports = []
    for proc in proposers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
        reports.append(json.loads(out.decode().splitlines()[-1]))
    _time.sleep(0.5)
    stop.touch()
    for proc in reviewers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
        reports.append(json.loads(out.decode().splitlines()[-1]))
    world = World(root)
    world_target = JsonFileTarget(config)
    # every run decided; the suggestion of each says what happened to it, and the run agrees
    store = open_store(world.history)
    runs = store.latest("SPY", limit=10_000)
    assert len(runs) == 2 * per_proposer
    suggestions = {s.suggestion_id: s for s in ReviewStore(world.suggestions).all()}
    committed = Archive(world.archive, world_target.name).entries()
    by_suggestion = Counter(e.suggestion_id for e in committed)
    approved = 0
    for run in runs:
        assert run.decided_at is not None, run.run_id
        mine = [s for s in suggestions.values() if s.run_id == run.run_id]
        assert len(mine) <= 1, run.run_id
        if not mine:  # the policy said no: nothing proposed, nothing live
            assert (
                run.applied is False and not run.pending_suggestion and run.run_id not in {e.run_id for e in committed}
            )
            continue
        (item,) = mine
        if item.status in ("approved", "modified"):
            approved += 1
            assert by_suggestion[item.suggestion_id] == 1
            assert run.applied is True and run.pending_suggestion is None, run
        else:
            assert by_suggestion[item.suggestion_id] == 0, f"{item.status} suggestion {item.suggestion_id} went live"
            assert run.applied is False
            if item.status == "pending":
                assert run.pending_suggestion == item.suggestion_id
    assert approved == sum(r.get("approved", 0) for r in reports)
    world.__dict__["weights"] = False
    findings = examine([world_target], suggestions_dir=world.suggestions, **world.dirs())
    assert findings == [], [f.what for f in findings]
    print(
        f"\n[races] {len(runs)} runs, {approved} approved, {sum(r.get('rejected', 0) for r in reports)} rejected, "
        f"{sum(r.get('lost', 0) for r in reports)} lost races refused; 0 runs left undecided or wrong",
        file=sys.stderr,
    )


# -- the random SIGKILL campaign ---------------------------------------------------------------------

CAMPAIGN_KILLS = int(os.environ.get("CALIBRATION_POLICY_KILLS") or (1000 if LONG else 25))


def test_random_sigkills_leave_nothing_double_or_stuck(tmp_path: Path) -> None:
    """Three writers make random changes of one world; one of them is SIGKILLed at a random moment
    and replaced, ``CAMPAIGN_KILLS`` times (``CALIBRATION_POLICY_LONG_TESTS=1``: 1,000; or set
    ``CALIBRATION_POLICY_KILLS``). Then, after settling: doctor clean, nothing live twice, nothing
    rejected or expired live, every run decided once."""
    import random
    import signal
    import subprocess
    import time as _time

    from proofkit import read_jsonl, start_driver

    root = tmp_path / "campaign"
    root.mkdir()
    config = root / "live.json"
    config.write_text(json.dumps(ORIGINAL_JSON_CONFIG, indent=2, sort_keys=True) + "\n")
    log = root / "log.jsonl"
    rng = random.Random(11)

    stop = root / "stop"
    forkers = [
        start_driver(
            "recovery-forker",
            {"root": str(root), "config": str(config), "log": str(log), "seed": k, "stop": str(stop)},
            stdout=subprocess.DEVNULL,
        )
        for k in range(3)
    ]
    killed: set[str] = set()

    def live_writers(wanted: int) -> list[int]:
        deadline = _time.monotonic() + 120
        while True:
            lines = read_jsonl(log)
            errors = [line["error"] for line in lines if "error" in line]
            assert not errors, errors[0]
            alive = [
                (line["ready"], line["token"]) for line in lines if "ready" in line and line["token"] not in killed
            ]
            if len(alive) >= wanted:
                return alive
            for proc in forkers:
                if not stop.exists():
                    assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert _time.monotonic() < deadline, "writers never got ready"
            _time.sleep(0.005)

    started = _time.monotonic()
    for _ in range(CAMPAIGN_KILLS):
        alive = live_writers(3)
        _time.sleep(rng.uniform(0.005, 0.25))
        pid, token = rng.choice(alive)
        os.kill(pid, signal.SIGKILL)  # a pid can come back for a later writer: identity is the token
        killed.add(token)
    stop.touch()
    for _ in range(2):  # a forker may fork once more before it sees the stop file
        for pid, token in live_writers(0):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            killed.add(token)
        _time.sleep(0.3)
    for proc in forkers:
        proc.wait(timeout=120)
    assert not [line for line in read_jsonl(log) if "error" in line]
    seconds = _time.monotonic() - started
    world = World(root)
    target = JsonFileTarget(config)
    before = {
        "intents": len(intents.pending_names(world.archive, target.name)),
        "undecided": sum(1 for r in open_store(world.history).latest("SPY", 100_000) if r.decided_at is None)
        if world.history.exists()
        else 0,
    }
    settle_interrupted(target, suggestions_dir=world.suggestions, **world.dirs())
    invariants(world)
    committed = Archive(world.archive, target.name).entries()
    runs = open_store(world.history).latest("SPY", 100_000) if world.history.exists() else []
    suggestions = ReviewStore(world.suggestions).all()
    print(
        f"\n[campaign] {CAMPAIGN_KILLS} SIGKILLs in {seconds:.0f} s; left half done at the end: {before['intents']} "
        f"intents, {before['undecided']} undecided runs — all settled; {len(runs)} runs, {len(committed)} changes, "
        f"{len(suggestions)} suggestions; 0 double applies, 0 refused-but-live, 0 stuck, doctor clean",
        file=sys.stderr,
    )
