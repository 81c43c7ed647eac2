"""should_apply_update: the gates, the thresholds, the reason a trader reads."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from calibration_policy import (
    CalibrationPolicyError,
    CalibrationUpdatePolicy,
    Context,
    Decision,
    PolicyError,
    RuleVerdict,
    ScopeChange,
    should_apply_update,
)

OK = {"sample_size": 412, "vega_sum": 12400.0}
DEFAULT = CalibrationUpdatePolicy()


# -- the change threshold ------------------------------------------------------------------------


def test_large_change_applies_with_the_design_reason():
    decision = should_apply_update({"global": 1.03}, {"global": 1.08}, DEFAULT, OK)
    apply, reason = decision
    assert apply is True
    assert reason == (
        "Applied: Global 1.03 → 1.08 (change 0.05, threshold 0.03); "
        "412 options (minimum 150); total vega 12,400 (minimum 5,000)"
    )
    assert decision.values == {"global": 1.08}


def test_the_reason_names_every_scope_written_when_all_are_written_together():
    """With apply_scopes = "all" a reason once named the one scope that moved enough while three were written."""
    live, smoothed = (
        {"global": 1.03, "weekly": 1.00, "monthly": 1.10},
        {"global": 1.08, "weekly": 1.01, "monthly": 1.10},
    )
    decision = should_apply_update(live, smoothed, DEFAULT, OK, scope_labels={"weekly": "Weekly (3–10d)"})
    assert decision.values == smoothed
    assert decision.reason.startswith(
        "Applied: Global 1.03 → 1.08 (change 0.05, threshold 0.03); "
        "also written with them, each below its threshold: Weekly (3–10d) 1.00 → 1.01; 412 options"
    )
    only_changed = should_apply_update(live, smoothed, DEFAULT.model_copy(update={"apply_scopes": "changed"}), OK)
    assert only_changed.values == {"global": 1.08} and "also written" not in only_changed.reason


def test_small_change_is_not_applied_and_says_by_how_much():
    decision = should_apply_update({"global": 1.03, "weekly": 1.00}, {"global": 1.05, "weekly": 1.01}, DEFAULT, OK)
    assert not decision.apply
    assert decision.reason == "Not applied: change too small (Global 0.02 < 0.03; Weekly 0.01 < 0.03)"
    assert decision.values == {}
    (min_delta,) = [v for v in decision.verdicts if v.code == "min_delta"]
    assert min_delta.needs == "Global needs to move 0.01 more"


@pytest.mark.parametrize(
    "old, new",
    [(1.10, 1.13), (1.13, 1.10), (0.7, 0.73), (2.0, 2.03), (0.1 + 0.2, 0.33), (1.0, 1.03)],
)
def test_change_equal_to_threshold_applies_despite_float_rounding(old, new):
    apply, reason = should_apply_update({"global": old}, {"global": new}, DEFAULT, OK)
    assert apply, reason
    assert "(change 0.03, threshold 0.03)" in reason


def test_change_just_below_threshold_is_not_applied_and_never_prints_a_tie():
    apply, reason = should_apply_update({"global": 1.10}, {"global": 1.1299}, DEFAULT, OK)
    assert not apply
    assert "Global 0.0299 < 0.03" in reason


def test_band_only_change_applies_and_writes_all_scopes():
    current = {"global": 1.03, "weekly": 1.00, "monthly": 1.02}
    smoothed = {"global": 1.035, "weekly": 1.05, "monthly": 1.021}
    decision = should_apply_update(current, smoothed, DEFAULT, OK)
    assert decision.apply
    assert "Weekly 1.00 → 1.05 (change 0.05, threshold 0.03)" in decision.reason
    assert "Global 1.03 → 1.035 (change" not in decision.reason  # scopes below threshold are not claimed as changes
    assert "also written with them, each below its threshold: Global 1.03 → 1.035, Monthly 1.02 → 1.021" in (
        decision.reason
    )  # but every value written is named
    assert decision.values == smoothed  # apply_scopes="all" by default


def test_per_band_threshold_override():
    policy = CalibrationUpdatePolicy(band_min_delta={"weekly": 0.10})
    current = {"global": 1.00, "weekly": 1.00, "monthly": 1.00}
    only_weekly = {"global": 1.00, "weekly": 1.05, "monthly": 1.00}
    decision = should_apply_update(current, only_weekly, policy, OK)
    assert not decision.apply
    assert "Weekly 0.05 < 0.10" in decision.reason
    by_scope = {c.scope: c for c in decision.scopes}
    assert by_scope["weekly"].threshold == 0.10
    assert by_scope["monthly"].threshold == 0.03
    # The same move on the band without an override applies.
    only_monthly = {"global": 1.00, "weekly": 1.00, "monthly": 1.05}
    decision = should_apply_update(current, only_monthly, policy, OK)
    assert decision.apply
    assert "Monthly 1.00 → 1.05 (change 0.05, threshold 0.03)" in decision.reason


def test_global_threshold_is_separate_from_band_threshold():
    policy = CalibrationUpdatePolicy(min_delta_global=0.10, min_delta_band=0.01)
    assert not should_apply_update({"global": 1.0}, {"global": 1.05}, policy, OK).apply
    assert should_apply_update({"weekly": 1.0}, {"weekly": 1.02}, policy, OK).apply


def test_new_scope_without_a_current_value_is_set():
    decision = should_apply_update({"global": 1.05}, {"global": 1.05, "weekly": 1.07}, DEFAULT, OK)
    assert decision.apply
    assert "Weekly set to 1.07 (no value before)" in decision.reason
    assert decision.values == {"global": 1.05, "weekly": 1.07}


# -- the gates ------------------------------------------------------------------------------------


def test_enough_sample_passes_and_too_few_blocks_with_numbers():
    big_move = ({"global": 1.00}, {"global": 1.10})
    assert should_apply_update(*big_move, DEFAULT, {"sample_size": 150, "vega_sum": 12400.0}).apply
    decision = should_apply_update(*big_move, DEFAULT, {"sample_size": 72, "vega_sum": 12400.0})
    assert not decision.apply
    assert decision.reason == "Not applied: too few options in the sample (72, minimum 150)"
    (gate,) = [v for v in decision.verdicts if v.code == "min_sample_size"]
    assert gate.needs == "needs 78 more options"
    assert gate.numbers == {"sample_size": 72, "minimum": 150}


def test_enough_vega_passes_and_too_little_blocks_with_numbers():
    big_move = ({"global": 1.00}, {"global": 1.10})
    assert should_apply_update(*big_move, DEFAULT, {"sample_size": 412, "vega_sum": 5000.0}).apply
    decision = should_apply_update(*big_move, DEFAULT, {"sample_size": 412, "vega_sum": 1200.0})
    assert not decision.apply
    assert decision.reason == "Not applied: total vega too low (1,200, minimum 5,000)"
    (gate,) = [v for v in decision.verdicts if v.code == "min_vega_sum"]
    assert gate.needs == "needs 3,800 more vega"


def test_both_gates_failing_lists_both_with_numbers():
    decision = should_apply_update({"global": 1.00}, {"global": 1.10}, DEFAULT, {"sample_size": 72, "vega_sum": 1200.0})
    assert not decision.apply
    assert "too few options in the sample (72, minimum 150)" in decision.reason
    assert "total vega too low (1,200, minimum 5,000)" in decision.reason
    assert decision.reason.startswith("Not applied: ")


def test_gates_and_small_change_all_listed():
    decision = should_apply_update({"global": 1.00}, {"global": 1.01}, DEFAULT, {"sample_size": 10, "vega_sum": 10.0})
    for text in ("too few options", "total vega too low", "change too small (Global 0.01 < 0.03)"):
        assert text in decision.reason


def test_unknown_evidence_blocks_and_says_so():
    decision = should_apply_update({"global": 1.00}, {"global": 1.10}, DEFAULT, None)
    assert not decision.apply
    assert "the number of options in the sample is unknown" in decision.reason
    assert "the total vega of the sample is unknown" in decision.reason


def test_gates_read_from_policy_not_code():
    policy = CalibrationUpdatePolicy(min_sample_size=500, min_vega_sum=20000)
    decision = should_apply_update({"global": 1.00}, {"global": 1.10}, policy, OK)
    assert not decision.apply
    assert "(412, minimum 500)" in decision.reason
    assert "(12,400, minimum 20,000)" in decision.reason


# -- max_step, bounds, apply_scopes -------------------------------------------------------------


def test_max_step_clips_says_so_and_values_are_clipped():
    policy = CalibrationUpdatePolicy(max_step=0.04)
    decision = should_apply_update({"global": 1.00, "weekly": 1.20}, {"global": 1.10, "weekly": 1.05}, policy, OK)
    assert decision.apply
    assert "Global limited to 1.04 (smoothed 1.10, step limit 0.04)" in decision.reason
    assert "Weekly limited to 1.16 (smoothed 1.05, step limit 0.04)" in decision.reason
    assert decision.values == pytest.approx({"global": 1.04, "weekly": 1.16})
    assert "Global 1.00 → 1.04 (change 0.04, threshold 0.03)" in decision.reason


def test_max_step_leaves_small_moves_alone():
    policy = CalibrationUpdatePolicy(max_step=0.10)
    decision = should_apply_update({"global": 1.00}, {"global": 1.05}, policy, OK)
    assert decision.apply and decision.values == {"global": 1.05}
    assert "limited" not in decision.reason


def test_max_step_below_threshold_is_rejected():
    # Such a policy could never apply anything: every clipped step would be "too small".
    with pytest.raises(PolicyError) as info:
        CalibrationUpdatePolicy(max_step=0.02, min_delta_global=0.03)
    assert "max_step" in str(info.value) and "0.03" in str(info.value)
    with pytest.raises(PolicyError, match="max_step"):
        CalibrationUpdatePolicy(max_step=0.04, band_min_delta={"weekly": 0.05})
    # The step limit may equal the threshold: one full step applies.
    policy = CalibrationUpdatePolicy(max_step=0.03)
    decision = should_apply_update({"global": 1.00}, {"global": 1.50}, policy, OK)
    assert decision.apply and decision.values == pytest.approx({"global": 1.03})


def test_bounds_block_a_value_outside_and_say_why():
    policy = CalibrationUpdatePolicy(bounds={"min": 0.5, "max": 1.5})
    decision = should_apply_update({"global": 1.0}, {"global": 1.6}, policy, OK)
    assert not decision.apply
    assert decision.reason == "Not applied: Global 1.60 is outside the allowed range 0.50–1.50"
    assert decision.values == {}
    assert should_apply_update({"global": 1.0}, {"global": 1.5}, policy, OK).apply  # inclusive


def test_apply_scopes_changed_writes_only_changed_scopes():
    current = {"global": 1.03, "weekly": 1.00, "monthly": 1.02}
    smoothed = {"global": 1.04, "weekly": 1.06, "monthly": 1.021}
    changed = should_apply_update(current, smoothed, CalibrationUpdatePolicy(apply_scopes="changed"), OK)
    assert changed.apply
    assert changed.values == {"weekly": 1.06}
    everything = should_apply_update(current, smoothed, CalibrationUpdatePolicy(apply_scopes="all"), OK)
    assert everything.values == smoothed


# -- the Decision object -------------------------------------------------------------------------


def test_decision_unpacks_and_carries_scopes_and_verdicts():
    decision = should_apply_update({"global": 1.03, "weekly": 1.0}, {"global": 1.08, "weekly": 1.01}, DEFAULT, OK)
    assert isinstance(decision, Decision)
    apply, reason = decision
    assert (apply, reason) == (decision.apply, decision.reason) == (decision[0], decision[1])
    assert len(decision) == 2 and bool(decision) is True
    by_scope = {c.scope: c for c in decision.scopes}
    assert isinstance(by_scope["global"], ScopeChange)
    g = by_scope["global"]
    assert (g.old, g.new, g.threshold, g.changed) == (1.03, 1.08, 0.03, True)
    assert g.delta == pytest.approx(0.05)
    w = by_scope["weekly"]
    assert w.changed is False and w.delta == pytest.approx(0.01)
    assert [v.code for v in decision.verdicts] == list(DEFAULT.rules)
    assert all(isinstance(v, RuleVerdict) and v.text for v in decision.verdicts)
    as_dict = decision.to_dict()
    assert as_dict["apply"] is True and as_dict["values"] == {"global": 1.08, "weekly": 1.01}
    assert {s["scope"] for s in as_dict["scopes"]} == {"global", "weekly"}


def test_scope_labels_are_used_in_the_reason():
    decision = should_apply_update(
        {"weekly": 1.0}, {"weekly": 1.05}, DEFAULT, OK, scope_labels={"weekly": "Weekly (3–10d)"}
    )
    assert "Weekly (3–10d) 1.00 → 1.05" in decision.reason


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "current, smoothed, evidence, words",
    [
        ({"global": 1.0}, {"global": math.nan}, OK, "smoothed['global']"),
        ({"global": math.inf}, {"global": 1.0}, OK, "current_applied['global']"),
        ({"global": 1.0}, {}, OK, "smoothed is empty"),
        ({"global": 1.0}, [1.0], OK, "smoothed must be a dict"),
        ({"global": 1.0}, {"global": "1.1"}, OK, "smoothed['global']"),
        ({"global": 1.0}, {"global": 1.1}, {"sample_size": -1, "vega_sum": 1.0}, "sample_size"),
        ({"global": 1.0}, {"global": 1.1}, {"sample_size": 400, "vega_sum": math.nan}, "vega_sum"),
        ({"global": 1.0}, {"global": 1.1}, [400, 1.0], "evidence must be a dict"),
    ],
)
def test_bad_decision_input_names_the_problem(current, smoothed, evidence, words):
    with pytest.raises(CalibrationPolicyError) as info:
        should_apply_update(current, smoothed, DEFAULT, evidence)
    assert isinstance(info.value, ValueError)
    assert words in str(info.value)


def test_policy_must_be_a_policy():
    with pytest.raises(ValueError, match="CalibrationUpdatePolicy"):
        should_apply_update({"global": 1.0}, {"global": 1.1}, {"min_delta_global": 0.03}, OK)  # type: ignore[arg-type]


# -- property: stricter thresholds never turn "no" into "yes" -----------------------------------


def policy_or_none(**settings) -> CalibrationUpdatePolicy | None:
    try:
        return CalibrationUpdatePolicy(**settings)
    except PolicyError as error:
        assert "max_step" in str(error)  # the only combination of valid numbers that is refused
        return None


scope_values = st.floats(min_value=0.2, max_value=3.0, allow_nan=False)
thresholds = st.floats(min_value=0.0, max_value=0.5, allow_nan=False)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    current=st.dictionaries(st.sampled_from(["global", "weekly", "monthly"]), scope_values, min_size=1),
    moves=st.dictionaries(st.sampled_from(["global", "weekly", "monthly"]), st.floats(-0.3, 0.3), min_size=1),
    sample=st.integers(0, 1000),
    vega=st.floats(0, 50000),
    base=st.tuples(thresholds, thresholds, st.integers(0, 600), st.floats(0, 20000)),
    raise_by=st.tuples(thresholds, thresholds, st.integers(0, 600), st.floats(0, 20000)),
    max_step=st.none() | st.floats(0.01, 0.5),
)
def test_raising_a_threshold_never_turns_not_applied_into_applied(
    current, moves, sample, vega, base, raise_by, max_step
):
    smoothed = {scope: max(0.05, current.get(scope, 1.0) + move) for scope, move in moves.items()}
    evidence = {"sample_size": sample, "vega_sum": vega}

    def policy(f: int) -> CalibrationUpdatePolicy | None:
        return policy_or_none(
            min_delta_global=base[0] + f * raise_by[0],
            min_delta_band=base[1] + f * raise_by[1],
            min_sample_size=base[2] + f * raise_by[2],
            min_vega_sum=base[3] + f * raise_by[3],
            max_step=max_step,
        )

    lenient_policy, strict_policy = policy(0), policy(1)
    assume(lenient_policy is not None)
    lenient = should_apply_update(current, smoothed, lenient_policy, evidence)
    if strict_policy is None:
        return  # a stricter policy that is rejected outright applies nothing either
    strict = should_apply_update(current, smoothed, strict_policy, evidence)
    if not lenient.apply:
        assert not strict.apply, (lenient.reason, strict.reason)


@pytest.mark.parametrize("old, new", [(-1.7e308, 1.7e308), (1.7976931348623157e308, -1.7976931348623157e308)])
def test_a_change_beyond_the_largest_float_is_still_strict_json(old, new, tmp_path):
    """Issue 11, D5: new − old overflowed to infinity, so the decided run could not be saved (strict
    JSON) and the update failed after recording the run."""
    import json

    from calibration_policy.pipeline import run_update
    from calibration_policy.target import JsonFileTarget

    policy = CalibrationUpdatePolicy(rules=("min_delta",))
    decision = should_apply_update({"global": old}, {"global": new}, policy)
    assert (
        decision.apply
        and math.isfinite(decision.scopes[0].delta)
        and abs(decision.scopes[0].delta) == 1.7976931348623157e308
    )
    json.dumps(decision.to_dict(), allow_nan=False)
    assert "(change 1.798e+308, threshold 0.03)" in decision.reason
    config = tmp_path / "live.json"
    config.write_text(json.dumps({"global": old}))
    result = {"global_metrics": {"n": 412, "vega_sum": 12400.0, "recommended_iv_multiplier": abs(new)}, "bands": {}}
    outcome = run_update(
        result,
        underlying="SPY",
        source="live",
        target=JsonFileTarget(config),
        context=Context.build(
            policy=CalibrationUpdatePolicy(rules=("min_delta", "bounds")),
            history_dir=tmp_path / "h",
            archive_dir=tmp_path / "a",
        ),
    )
    assert (
        not outcome.applied and "outside" in outcome.decision.reason
    )  # the default bounds refuse it, and the run is saved
    assert outcome.run.decision is not None


def test_the_reason_shows_values_as_precisely_as_their_change_and_the_threshold_as_set():
    """A reader saw "0.25 → 0.23 (change 0.024)" and "threshold 0.01" for a threshold of 0.015."""
    from calibration_policy import CalibrationUpdatePolicy, should_apply_update

    policy = CalibrationUpdatePolicy(min_delta_global=0.015, min_sample_size=0, min_vega_sum=0)
    decision = should_apply_update({"global": 1.0}, {"global": 1.0171}, policy, {"sample_size": 500, "vega_sum": 1e5})
    assert decision.reason.startswith("Applied: Global 1.00 → 1.017 (change 0.017, threshold 0.015)")
