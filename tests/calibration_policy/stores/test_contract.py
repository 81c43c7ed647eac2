"""The store contract: every store keeps runs, suggestions, the archive and intents the same way.

Each test runs on the file store and on a real PostgreSQL server (the ``store_url`` fixture)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from calibration_policy import (
    CalibrationUpdatePolicy,
    Context,
    HistoryError,
    ReviewError,
    StaleChangeError,
    UpdateOptions,
    active_store,
    force_apply,
    open_store,
    run_update,
)
from calibration_policy.pipeline import approve_suggestion, live_version, reject_suggestion, roll_back
from calibration_policy.stores import open_archive, open_reviews
from calibration_policy.target import JsonFileTarget

POLICY = CalibrationUpdatePolicy(min_sample_size=1, min_vega_sum=0, min_delta_global=0.01, min_delta_band=0.01)


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "live.json"
    path.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    return JsonFileTarget(path, name="spy_live")


def test_runs_keep_ids_order_and_keyset_pages(store_url, record_series, t0):
    recorded = record_series(None, 30)
    runs = open_store()
    assert [r.run_id for r in runs.latest("SPY", 5)] == [r.run_id for r in recorded[-5:]]
    page = runs.latest("SPY", 5, before=f"{recorded[-5].timestamp.isoformat()},{recorded[-5].run_id}")
    assert [r.run_id for r in page] == [r.run_id for r in recorded[-10:-5]]
    assert [r.run_id for r in runs.oldest("SPY", 3)] == [r.run_id for r in recorded[:3]]
    assert [r.run_id for r in runs.between("SPY", t0 + timedelta(days=2), t0 + timedelta(days=4))] == [
        r.run_id for r in recorded[2:5]
    ]
    assert runs.count("SPY") == 30 and runs.underlyings() == ["SPY"]
    assert runs.position("SPY", recorded[-1].run_id) == 1
    assert runs.get(recorded[3].run_id) == recorded[3]


def test_same_moment_runs_get_numbered_ids(store_url, record_series, t0):
    first = record_series(None, 1)[0]
    second = record_series(None, 1)[0]
    assert second.run_id == first.run_id + "_2"
    assert [r.run_id for r in open_store().latest("SPY", 5)] == [first.run_id, second.run_id]


def test_unknown_run_and_bad_id_are_plain_errors(store_url):
    with pytest.raises(HistoryError, match="no readable run"):
        open_store().get("20250101T000000.000000Z_SPY_live")
    with pytest.raises(ValueError, match="run id"):
        open_store().get("../../etc/passwd")


def test_update_applies_archives_and_records_the_run(store_url, target, make_result, t0):
    outcome = run_update(
        make_result(global_m=1.1, bands={"weekly": 1.1, "monthly": 1.1}),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=t0),
        context=Context.build(policy=POLICY),
    )
    assert outcome.applied
    stored = open_store().get(outcome.run.run_id)
    assert stored.applied and stored.applied_values == {"global": 1.1, "weekly": 1.1, "monthly": 1.1}
    change = open_archive(None, target.name).last_change()
    assert change.run_id == outcome.run.run_id and change.previous_values["global"] == 1.0
    assert json.loads(target.path.read_text())["global"] == 1.1  # this machine's copy of the live config


def test_stale_version_changes_nothing(store_url, target, make_result, t0):
    seen = live_version(target)
    run_update(
        make_result(global_m=1.1),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=t0),
        context=Context.build(policy=POLICY),
    )
    before = open_archive(None, target.name).entries()
    with pytest.raises(StaleChangeError, match="changed since you looked"):
        force_apply("SPY", target=target, expected_version=seen, context=Context.build(policy=POLICY))
    assert open_archive(None, target.name).entries() == before


def test_approval_flow_and_rollback(store_url, target, make_result, t0):
    policy = POLICY.model_copy(update={"require_approval": True})
    outcome = run_update(
        make_result(global_m=1.2),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=t0),
        context=Context.build(policy=policy),
    )
    assert not outcome.applied and outcome.route == "propose"
    pending = open_reviews().all(target=target.name, status="pending")
    assert len(pending) == 1 and open_store().get(outcome.run.run_id).pending_suggestion == pending[0].suggestion_id
    done = approve_suggestion(pending[0].suggestion_id, target=target, context=Context.build(actor="ana"))
    assert done.status == "approved" and open_store().get(outcome.run.run_id).applied
    with pytest.raises(ReviewError, match="already approved"):
        reject_suggestion(pending[0].suggestion_id, context=Context.build(actor="bo"))
    back = roll_back(target, "original", context=Context.build(actor="ana"))
    assert (
        back.new_values["global"] == 1.0
        and active_store().govern(target).values(active_store().govern(target).load())["global"] == 1.0
    )


def test_rejected_suggestion_says_so_on_its_run(store_url, target, make_result, t0):
    policy = POLICY.model_copy(update={"require_approval": True})
    outcome = run_update(
        make_result(global_m=1.2),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=t0),
        context=Context.build(policy=policy),
    )
    item = open_reviews().all(status="pending")[0]
    reject_suggestion(item.suggestion_id, target=target, context=Context.build(actor="bo"))
    run = open_store().get(outcome.run.run_id)
    assert not run.applied and "rejected" in run.applied_reason
    assert open_archive(None, target.name).entries() == []


def test_a_newer_suggestion_expires_the_older(store_url, target, make_result, t0):
    policy = POLICY.model_copy(update={"require_approval": True})
    for day, value in ((0, 1.2), (1, 1.3)):
        run_update(
            make_result(global_m=value),
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=t0 + timedelta(days=day)),
            context=Context.build(policy=policy),
        )
    statuses = [s.status for s in open_reviews().all(target=target.name)]
    assert statuses == ["expired", "pending"]


def test_intents_are_cleared_after_each_change(store_url, target, make_result, t0):
    run_update(
        make_result(global_m=1.1),
        underlying="SPY",
        source="live",
        target=target,
        options=UpdateOptions(timestamp=t0),
        context=Context.build(policy=POLICY),
    )
    assert active_store().intents.pending_names(None, target.name) == []


def test_the_scoring_weights_flow_on_each_store(store_url, tmp_path):
    """The second domain goes through the same store: suggest, approve, roll back."""
    from calibration_policy.default_plugins.scoring_weights.domain import weights_target
    from calibration_policy.default_plugins.scoring_weights.flow import suggest_weights

    from ..test_weights_support import EQUAL, make_trades, read_weights, write_weights

    weights_file = write_weights(tmp_path / "scoring_weights.json")
    target = weights_target(path=weights_file)
    outcome = suggest_weights(make_trades(400), target)
    assert outcome.action == "suggested" and read_weights(weights_file) == EQUAL
    item = open_reviews().get(outcome.suggestion.suggestion_id)
    approve_suggestion(item.suggestion_id, target=target, context=Context.build(actor="ana"))
    assert read_weights(weights_file) == item.values  # this machine's copy follows the live config
    assert open_store().get(outcome.run.run_id).applied
    roll_back(target, "original", context=Context.build(actor="ana"))
    assert read_weights(weights_file) == EQUAL
    assert [e.kind for e in open_archive(None, target.name).entries()] == ["approve", "rollback"]
