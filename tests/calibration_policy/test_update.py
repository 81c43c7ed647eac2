"""The update flow: record → smooth → decide → apply + archive, or leave the config untouched."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions, load_recent_calibration_history
from calibration_policy.archive import Archive
from calibration_policy.errors import HistoryError, TargetError
from calibration_policy.hookspecs import hookimpl
from calibration_policy.pipeline import force_apply, run_update
from calibration_policy.plugins import get_plugin_manager
from calibration_policy.target import JsonFileTarget

T0 = datetime(2025, 12, 10, 15, 30, tzinfo=UTC)


@pytest.fixture
def live(tmp_path: Path) -> JsonFileTarget:
    path = tmp_path / "live.json"
    path.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}, indent=2))
    return JsonFileTarget(path)


@pytest.fixture
def flow(tmp_path: Path, live: JsonFileTarget):
    dirs = {"history_dir": tmp_path / "runs", "archive_dir": tmp_path / "archive", "suggestions_dir": tmp_path / "sugg"}

    def update(result, day: int = 0, target=None, **kw):
        how = {key: kw.pop(key) for key in ("force", "force_values", "dry_run", "expected_version") if key in kw}
        return run_update(
            result,
            underlying="SPY",
            source="harvested",
            target=target or live,
            options=UpdateOptions(timestamp=T0 + timedelta(days=day), **how),
            context=Context.build(**dirs, **kw),
        )

    update.dirs = dirs
    return update


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_not_applying_leaves_config_byte_for_byte_identical(flow, live, make_result):
    before = digest(live.path)
    outcome = flow(make_result(global_m=1.01, bands={"weekly": 1.01, "monthly": 1.0}))
    assert not outcome.applied
    assert outcome.decision.reason.startswith("Not applied: change too small")
    assert digest(live.path) == before
    assert Archive(flow.dirs["archive_dir"], live.name).entries() == []


def test_thin_day_is_recorded_but_never_applied(flow, live, make_result):
    before = digest(live.path)
    outcome = flow(make_result(global_m=1.30, n=72, vega_sum=900.0))
    assert not outcome.applied
    assert "too few options in the sample (72, minimum 150)" in outcome.decision.reason
    assert "total vega too low (900, minimum 5,000)" in outcome.decision.reason
    assert digest(live.path) == before
    stored = load_recent_calibration_history("SPY", history_dir=flow.dirs["history_dir"])
    assert [r.applied for r in stored] == [False]
    assert stored[0].applied_reason == outcome.decision.reason


def test_applying_writes_smoothed_values_archives_and_marks_the_run(flow, live, make_result):
    outcome = flow(make_result(global_m=1.08, bands={"weekly": 1.10, "monthly": 1.02}))
    assert outcome.applied
    written = json.loads(live.path.read_text())
    assert written == pytest.approx({"global": 1.08, "weekly": 1.10, "monthly": 1.02})
    [entry] = Archive(flow.dirs["archive_dir"], live.name).entries()
    assert entry.previous_values == {"global": 1.0, "weekly": 1.0, "monthly": 1.0}
    assert entry.new_values == pytest.approx(written)
    assert entry.run_id == outcome.run.run_id and entry.kind == "update" and entry.status == "committed"
    assert entry.reason.startswith("Applied: Global 1.00 → 1.08 (change 0.08, threshold 0.03)")
    run = load_recent_calibration_history("SPY", history_dir=flow.dirs["history_dir"])[-1]
    assert run.applied is True and run.smoothed_iv_multiplier == pytest.approx(written)
    assert run.applied_values == pytest.approx(written)


def test_smoothing_spans_earlier_runs_and_skips_thin_ones(flow, live, make_result):
    flow(make_result(global_m=1.0, bands={"weekly": 1.0, "monthly": 1.0}), day=0)
    flow(make_result(global_m=1.6, bands={"weekly": 1.6, "monthly": 1.6}, n=50), day=1)  # thin: noise
    outcome = flow(make_result(global_m=1.1, bands={"weekly": 1.0, "monthly": 1.0}), day=2)
    smoothed = outcome.run.smoothed["global"]
    assert 1.0 < smoothed < 1.1  # the thin 1.6 left no trace
    loose = CalibrationUpdatePolicy(smoothing_skips_thin_runs=False)
    dry = flow(make_result(global_m=1.1, bands={"weekly": 1.0, "monthly": 1.0}), day=2, policy=loose, dry_run=True)
    assert dry.run.smoothed["global"] > smoothed


def test_dry_run_writes_nothing_but_says_what_would_happen(flow, live, make_result, tmp_path):
    before = digest(live.path)
    outcome = flow(make_result(global_m=1.2), dry_run=True)
    assert outcome.dry_run and not outcome.applied and outcome.decision.apply
    assert outcome.summary().startswith("Dry run, nothing written.")
    assert digest(live.path) == before
    assert not flow.dirs["history_dir"].exists() and not flow.dirs["archive_dir"].exists()


def test_force_applies_despite_rules_and_says_so(flow, live, make_result):
    outcome = flow(
        make_result(global_m=1.01, bands={"weekly": 1.0, "monthly": 1.0}), force=True, force_values="recommended"
    )
    assert outcome.applied and outcome.decision.forced
    assert outcome.decision.reason.startswith("Applied: forced by user (the policy alone said: change too small")
    assert json.loads(live.path.read_text())["global"] == pytest.approx(1.01)
    [entry] = Archive(flow.dirs["archive_dir"], live.name).entries()
    assert entry.kind == "force" and entry.actor == "user"


def test_force_apply_latest_run_later(flow, live, make_result):
    first = flow(make_result(global_m=1.02, bands={"weekly": 1.0, "monthly": 1.0}))
    assert not first.applied
    outcome = force_apply(
        "spy", target=live, context=Context.build(**{k: flow.dirs[k] for k in ("history_dir", "archive_dir")})
    )
    assert outcome.applied and outcome.run.run_id == first.run.run_id
    assert json.loads(live.path.read_text())["global"] == pytest.approx(first.run.smoothed["global"])
    stored = load_recent_calibration_history("SPY", history_dir=flow.dirs["history_dir"])[-1]
    assert stored.applied and stored.forced and "forced by user" in stored.applied_reason


def test_force_apply_without_any_run_is_a_clear_error(live, tmp_path):
    with pytest.raises(HistoryError, match="no calibration run for SPY"):
        force_apply(
            "SPY", target=live, context=Context.build(history_dir=tmp_path / "none", archive_dir=tmp_path / "a")
        )


def test_require_approval_makes_a_pending_suggestion_instead(flow, live, make_result):
    before = digest(live.path)
    outcome = flow(make_result(global_m=1.2), policy=CalibrationUpdatePolicy(require_approval=True))
    assert not outcome.applied and digest(live.path) == before
    assert outcome.decision.reason.startswith("Waiting for approval: Global 1.00 → 1.20")
    assert outcome.run.status == "pending" and outcome.run.pending_suggestion


def test_missing_or_corrupt_config_is_a_clear_error_and_changes_nothing(flow, live, make_result):
    live.path.write_text("{not json")
    with pytest.raises(TargetError, match="not valid JSON"):
        flow(make_result(global_m=1.2))
    assert live.path.read_text() == "{not json"
    live.path.unlink()
    with pytest.raises(TargetError, match="does not exist"):
        flow(make_result(global_m=1.2), day=1)
    assert not live.path.exists()


def test_decision_made_hook_is_called_for_every_decision(flow, make_result):
    seen = []

    class Listener:
        @hookimpl
        def decision_made(self, run, decision, policy):
            seen.append((run.run_id, decision.apply))

    plugin = Listener()
    get_plugin_manager().register(plugin)
    try:
        flow(make_result(global_m=1.2), day=0)
        flow(make_result(global_m=1.2), day=1)
    finally:
        get_plugin_manager().unregister(plugin)
    assert [applied for _, applied in seen] == [True, False]


def test_max_step_clips_the_written_values(flow, live, make_result):
    policy = CalibrationUpdatePolicy(max_step=0.05)
    outcome = flow(make_result(global_m=1.30, bands={"weekly": 1.0, "monthly": 1.0}), policy=policy)
    assert outcome.applied
    assert json.loads(live.path.read_text())["global"] == pytest.approx(1.05)
    assert "Global limited to 1.05 (smoothed 1.30, step limit 0.05)" in outcome.decision.reason


@pytest.mark.parametrize(
    "mode, kwargs, result_kw, route",
    [
        ("applies", {}, {"global_m": 1.2}, "apply"),
        ("too small", {}, {"global_m": 1.01, "bands": {"weekly": 1.0, "monthly": 1.0}}, "settle"),
        ("forced", {"force": True}, {"global_m": 1.01, "bands": {"weekly": 1.0, "monthly": 1.0}}, "apply"),
        (
            "forced, recommended values",
            {"force": True, "force_values": "recommended"},
            {"global_m": 1.01, "bands": {"weekly": 1.0, "monthly": 1.0}},
            "apply",
        ),
        ("needs approval", {"policy": CalibrationUpdatePolicy(require_approval=True)}, {"global_m": 1.2}, "propose"),
        (
            "forced past approval",
            {"policy": CalibrationUpdatePolicy(require_approval=True), "force": True},
            {"global_m": 1.2},
            "apply",
        ),
        ("thin", {}, {"global_m": 1.3, "n": 72}, "settle"),
    ],
)
def test_a_dry_run_says_what_the_real_call_then_does(flow, live, make_result, mode, kwargs, result_kw, route):
    result = make_result(**result_kw)
    dry = flow(result, dry_run=True, **kwargs)
    real = flow(result, **kwargs)
    assert (dry.route, real.route) == (route, route), mode
    assert dry.decision.reason == real.decision.reason
    assert dry.decision.values == (real.change.new_values if real.change else dry.decision.values)
    assert dry.summary().startswith(
        "Dry run, nothing written. It would "
        + {"apply": "go live", "propose": "wait for a person's approval", "settle": "change nothing"}[route]
    )
