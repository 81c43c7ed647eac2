"""No run waits forever: a run whose suggestion was superseded, expired or rejected is decided and says why, and
``doctor`` finds (and ``--repair`` decides) any run still pointing at a suggestion that is no longer pending.
Each test runs on the file store and on PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions, open_store, run_update
from calibration_policy.doctor import examine
from calibration_policy.pipeline import reject_suggestion
from calibration_policy.stores import open_reviews
from calibration_policy.target import JsonFileTarget

WAITING = CalibrationUpdatePolicy(
    min_sample_size=1, min_vega_sum=0, min_delta_global=0.01, min_delta_band=0.01, require_approval=True
)


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "live.json"
    path.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    return JsonFileTarget(path, name="spy_live")


def _wait(make_result, target, when, global_m):
    return run_update(
        make_result(global_m=global_m),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=when),
        context=Context.build(policy=WAITING),
    ).run


def test_a_superseded_suggestions_run_says_which_run_superseded_it(store_url, make_result, target, t0):
    first = _wait(make_result, target, t0, 1.2)
    assert first.pending_suggestion and first.applied_reason.startswith("Waiting for approval: ")
    second = _wait(make_result, target, t0 + timedelta(hours=26), 1.3)
    old = open_reviews().get(first.pending_suggestion)
    assert old.status == "expired"
    run = open_store().get(first.run_id)
    assert run.pending_suggestion is None and run.applied is False
    assert run.applied_reason == (
        f"Not applied: superseded by the run of {t0 + timedelta(hours=26):%Y-%m-%d %H:%M} UTC "
        f"(suggestion {second.pending_suggestion}) before anyone reviewed it"
    )
    assert open_store().get(second.run_id).pending_suggestion == second.pending_suggestion  # the newer still waits
    assert [f for f in examine([target]) if f.check == "runs"] == []


def test_doctor_finds_and_repairs_runs_pointing_at_expired_or_rejected_suggestions(store_url, make_result, target, t0):
    """The state main left behind (36 of 66 runs of a PostgreSQL campaign): a run still marked as waiting for a
    suggestion that expired or was rejected. Doctor names each and --repair decides it; a second pass finds none."""
    first = _wait(make_result, target, t0, 1.2)
    second = _wait(make_result, target, t0 + timedelta(days=1), 1.3)
    reject_suggestion(second.pending_suggestion, notes="too big a step", context=Context.build(actor="bo"))
    store = open_store()
    for run in (first, second):  # as a run was left before runs were decided when their suggestion settled
        store.save(store.get(run.run_id).model_copy(update={"pending_suggestion": run.pending_suggestion}))
    found = [f.what for f in examine([target]) if f.check == "runs"]
    assert found == [
        f"Run {first.run_id} still waits for suggestion {first.pending_suggestion}, which was expired.",
        f"Run {second.run_id} still waits for suggestion {second.pending_suggestion}, which was rejected.",
    ]
    assert [f for f in examine([target], repair=True) if f.check == "runs"] == []
    repaired_first, repaired_second = store.get(first.run_id), store.get(second.run_id)
    assert repaired_first.pending_suggestion is None and repaired_first.applied is False
    assert repaired_first.applied_reason.startswith("Not applied: superseded by the run of ")
    assert repaired_second.applied_reason == (
        f"Not applied: suggestion {second.pending_suggestion} was rejected by bo: too big a step"
    )
    assert json.loads(target.path.read_text())["global"] == 1.0  # nothing went live on the way
