"""Stateful property test: random sequences of record / update / force / approve / reject / rollback.

Hypothesis drives a model of what the system should hold next to the real thing (a history folder,
an archive, a suggestions folder and a JSON live config) and, after every step, checks:

* the live config equals the last applied change's new values (the model's expectation);
* the archive's committed changes form one contiguous chain from the original config, times
  strictly rise, nothing is left prepared, and the periods meet end to start (since/until);
* the history is complete and sorted: every recorded run loads, oldest first, in record order
  (runs sharing a timestamp keep their order);
* every suggestion has the status the model expects, and a rejection never changed the config.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from proofkit import LONG, ORIGINAL_JSON_CONFIG, T0, build_result

from calibration_policy import (
    CalibrationUpdatePolicy,
    Context,
    HistoryError,
    ReviewError,
    UpdateOptions,
    load_recent_calibration_history,
    record_calibration_result,
)
from calibration_policy import history as history_module
from calibration_policy.archive import Archive
from calibration_policy.pipeline import approve_suggestion, force_apply, reject_suggestion, run_update
from calibration_policy.pipeline import roll_back as rollback
from calibration_policy.review import ReviewStore
from calibration_policy.target import JsonFileTarget

POLICY = CalibrationUpdatePolicy(min_delta_global=0.02, min_delta_band=0.02, min_sample_size=100, min_vega_sum=1000.0)
APPROVAL = POLICY.model_copy(update={"require_approval": True})
multipliers = st.floats(min_value=0.6, max_value=1.6, allow_nan=False).map(lambda x: round(x, 4))
STEPS = {"count": 0}


class CalibrationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="proof-stateful-"))
        self.history, self.archive_dir, self.suggestions = (
            self.tmp / "history",
            self.tmp / "archive",
            self.tmp / "suggestions",
        )
        self.config = self.tmp / "live.json"
        self.config.write_text(json.dumps(ORIGINAL_JSON_CONFIG) + "\n")
        self.target = JsonFileTarget(self.config)
        self.expected = dict(ORIGINAL_JSON_CONFIG)
        self.recorded: list[str] = []
        self.statuses: dict[str, str] = {}
        self.clock = T0

    def teardown(self) -> None:
        for key in [k for k in history_module._stores if k[0].startswith(str(self.tmp))]:
            history_module._stores.pop(key)._index.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _stamp(self, same: bool):
        if not same or not self.recorded:
            self.clock += timedelta(hours=7)
        return self.clock

    def _applied(self, change) -> None:
        assert change.status == "committed"
        self.expected = change.new_snapshot

    # -- rules -------------------------------------------------------------------------------

    @rule(g=multipliers, same_time=st.booleans())
    def record(self, g: float, same_time: bool) -> None:
        run = record_calibration_result(
            build_result(global_m=g), "SPY", "live", history_dir=self.history, timestamp=self._stamp(same_time)
        )
        self.recorded.append(run.run_id)

    @rule(g=multipliers, force=st.booleans(), approval=st.booleans(), thin=st.booleans(), same_time=st.booleans())
    def update(self, g: float, force: bool, approval: bool, thin: bool, same_time: bool) -> None:
        before = self.config.read_bytes()
        outcome = run_update(
            build_result(global_m=g, n=40 if thin else 412),
            underlying="SPY",
            source="live",
            target=self.target,
            options=UpdateOptions(force=force, timestamp=self._stamp(same_time)),
            context=Context.build(
                policy=APPROVAL if approval else POLICY,
                history_dir=self.history,
                archive_dir=self.archive_dir,
                suggestions_dir=self.suggestions,
            ),
        )
        self.recorded.append(outcome.run.run_id)
        if force:
            assert outcome.applied and outcome.run.forced
        if thin and not force:
            assert not outcome.applied and outcome.run.pending_suggestion is None
        if outcome.change is not None:
            self._applied(outcome.change)
        else:
            assert self.config.read_bytes() == before, "an update that did not apply changed the config"
        if outcome.run.pending_suggestion:
            assert approval and not force
            for sid, status in self.statuses.items():
                if status == "pending":
                    self.statuses[sid] = "expired"
            self.statuses[outcome.run.pending_suggestion] = "pending"

    @rule(use=st.sampled_from(["smoothed", "recommended"]))
    def force(self, use: str) -> None:
        if not self.recorded:
            with pytest.raises(HistoryError):
                force_apply(
                    "SPY",
                    target=self.target,
                    context=Context.build(policy=POLICY, history_dir=self.history, archive_dir=self.archive_dir),
                )
            return
        outcome = force_apply(
            "SPY",
            target=self.target,
            use=use,
            context=Context.build(policy=POLICY, history_dir=self.history, archive_dir=self.archive_dir),
        )
        self._applied(outcome.change)

    @precondition(lambda self: self.statuses)
    @rule(data=st.data())
    def approve(self, data) -> None:
        sid = data.draw(st.sampled_from(sorted(self.statuses)))
        store = ReviewStore(self.suggestions)
        if self.statuses[sid] != "pending":
            before = self.config.read_bytes()
            with pytest.raises(ReviewError, match="already"):
                approve_suggestion(
                    sid,
                    target=self.target,
                    context=Context.build(
                        suggestions_dir=store, actor="ana", archive_dir=self.archive_dir, history_dir=self.history
                    ),
                )
            assert self.config.read_bytes() == before
            return
        item = approve_suggestion(
            sid,
            target=self.target,
            context=Context.build(
                suggestions_dir=store, actor="ana", archive_dir=self.archive_dir, history_dir=self.history
            ),
        )
        assert item.status == "approved"
        self.expected = {**self.expected, **item.values}
        self.statuses[sid] = "approved"
        assert load_recent_calibration_history("SPY", 100_000, self.history)  # the run behind it is marked
        run = next(r for r in load_recent_calibration_history("SPY", 100_000, self.history) if r.run_id == item.run_id)
        assert run.applied is True and run.pending_suggestion is None

    @precondition(lambda self: self.statuses)
    @rule(data=st.data())
    def reject(self, data) -> None:
        sid = data.draw(st.sampled_from(sorted(self.statuses)))
        before = self.config.read_bytes()
        changes = len(Archive(self.archive_dir, self.target.name).entries(include_all=True))
        store = ReviewStore(self.suggestions)
        if self.statuses[sid] != "pending":
            with pytest.raises(ReviewError, match="already"):
                reject_suggestion(sid, context=Context.build(suggestions_dir=store, actor="bo"))
        else:
            assert reject_suggestion(sid, context=Context.build(suggestions_dir=store, actor="bo")).status == "rejected"
            self.statuses[sid] = "rejected"
        assert self.config.read_bytes() == before, "a rejection changed the live config"
        assert len(Archive(self.archive_dir, self.target.name).entries(include_all=True)) == changes

    @rule(data=st.data())
    def roll_back(self, data) -> None:
        periods = Archive(self.archive_dir, self.target.name).periods()
        if not periods:
            with pytest.raises(ReviewError):
                rollback(self.target, "original", context=Context.build(archive_dir=self.archive_dir))
            return
        period = data.draw(st.sampled_from(periods))
        entry = rollback(
            self.target,
            period.change.change_id if period.change else "original",
            context=Context.build(archive_dir=self.archive_dir),
        )
        assert entry.new_snapshot == period.snapshot
        self._applied(entry)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def config_is_the_last_applied_change(self) -> None:
        STEPS["count"] += 1
        assert json.loads(self.config.read_bytes()) == self.expected

    @invariant()
    def archive_is_one_contiguous_chain(self) -> None:
        archive = Archive(self.archive_dir, self.target.name)
        everything = archive.entries(include_all=True)
        assert all(e.status == "committed" for e in everything)
        previous = ORIGINAL_JSON_CONFIG
        for entry in everything:
            assert entry.previous_snapshot == previous
            previous = entry.new_snapshot
        assert previous == self.expected
        times = [e.at for e in everything]
        assert times == sorted(times) and len(set(times)) == len(times)
        periods = archive.periods()
        for before, after in itertools.pairwise(periods):
            assert before.until == after.since and (before.since is None or before.since < after.since)
        if periods:
            assert periods[-1].until is None and periods[-1].snapshot == self.expected

    @invariant()
    def history_is_complete_and_sorted(self) -> None:
        if not self.recorded:
            return
        runs = load_recent_calibration_history("SPY", limit=100_000, history_dir=self.history)
        assert [r.run_id for r in runs] == self.recorded
        assert [r.timestamp for r in runs] == sorted(r.timestamp for r in runs)

    @invariant()
    def suggestions_have_the_expected_status(self) -> None:
        if not self.statuses:
            return
        found = {s.suggestion_id: s.status for s in ReviewStore(self.suggestions).all()}
        assert found == self.statuses


TestCalibrationMachine = CalibrationMachine.TestCase
TestCalibrationMachine.settings = settings(
    max_examples=120 if LONG else 30,
    stateful_step_count=40 if LONG else 20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
