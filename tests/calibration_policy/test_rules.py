"""The built-in apply rules, one at a time and in the order the policy gives."""

from __future__ import annotations

import pytest

from calibration_policy import (
    CalibrationUpdatePolicy,
    RuleContext,
    RuleVerdict,
    UnknownPluginError,
    should_apply_update,
)
from calibration_policy.default_plugins import rules
from calibration_policy.plugins import get_rule

OK = {"sample_size": 412, "vega_sum": 12400.0}


def context(current=None, proposed=None, evidence=None, **policy) -> RuleContext:
    return RuleContext(
        current=dict(current if current is not None else {"global": 1.00}),
        proposed=dict(proposed if proposed is not None else {"global": 1.05}),
        policy=CalibrationUpdatePolicy(**policy),
        evidence=dict(OK if evidence is None else evidence),
    )


def test_every_default_rule_is_registered_by_name():
    for name in ("min_sample_size", "min_vega_sum", "min_delta", "max_step", "bounds"):
        assert get_rule(name).fn is getattr(rules, name)


def test_unknown_rule_lists_the_known_ones():
    with pytest.raises(UnknownPluginError) as info:
        get_rule("min_deltas")
    assert "Unknown rule 'min_deltas'" in str(info.value)
    for name in ("bounds", "max_step", "min_delta", "min_sample_size", "min_vega_sum"):
        assert name in info.value.known


# -- min_sample_size --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, passed, text, needs",
    [
        (412, True, "412 options (minimum 150)", None),
        (150, True, "150 options (minimum 150)", None),
        (149, False, "too few options in the sample (149, minimum 150)", "needs 1 more options"),
        (72, False, "too few options in the sample (72, minimum 150)", "needs 78 more options"),
        (0, False, "too few options in the sample (0, minimum 150)", "needs 150 more options"),
    ],
)
def test_min_sample_size(n, passed, text, needs):
    verdict = rules.min_sample_size(context(evidence={"sample_size": n, "vega_sum": 1e6}))
    assert isinstance(verdict, RuleVerdict)
    assert (verdict.code, verdict.passed, verdict.text, verdict.needs) == ("min_sample_size", passed, text, needs)
    assert verdict.numbers == {"sample_size": n, "minimum": 150}


def test_min_sample_size_thousands_and_unknown():
    verdict = rules.min_sample_size(context(evidence={"sample_size": 1200}, min_sample_size=2500))
    assert verdict.text == "too few options in the sample (1,200, minimum 2,500)"
    assert verdict.needs == "needs 1,300 more options"
    unknown = rules.min_sample_size(context(evidence={}))
    assert not unknown.passed and "unknown" in unknown.text


# -- min_vega_sum ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vega, passed, text, needs",
    [
        (12400.0, True, "total vega 12,400 (minimum 5,000)", None),
        (5000.0, True, "total vega 5,000 (minimum 5,000)", None),
        (1200.0, False, "total vega too low (1,200, minimum 5,000)", "needs 3,800 more vega"),
        (4999.9, False, "total vega too low (5,000, minimum 5,000)", "needs 1 more vega"),
    ],
)
def test_min_vega_sum(vega, passed, text, needs):
    verdict = rules.min_vega_sum(context(evidence={"sample_size": 412, "vega_sum": vega}))
    assert (verdict.passed, verdict.text, verdict.needs) == (passed, text, needs)


# -- min_delta -------------------------------------------------------------------------------


def test_min_delta_passes_naming_the_moved_scopes_but_stays_out_of_the_reason():
    verdict = rules.min_delta(context({"global": 1.0, "weekly": 1.0}, {"global": 1.05, "weekly": 1.01}))
    assert verdict.passed and verdict.text == "change large enough for Global; not for Weekly 0.01 < 0.03"
    assert verdict.counts_in_reason is False
    assert verdict.numbers["weekly"]["threshold"] == 0.03
    assert verdict.numbers["global"]["delta"] == pytest.approx(0.05)


def test_min_delta_fails_with_every_scope_and_the_closest_gap():
    verdict = rules.min_delta(context({"global": 1.0, "weekly": 1.0}, {"global": 1.02, "weekly": 0.975}))
    assert not verdict.passed
    assert verdict.text == "change too small (Global 0.02 < 0.03; Weekly 0.025 < 0.03)"
    assert verdict.needs == "Weekly needs to move 0.005 more"


def test_min_delta_treats_a_scope_with_no_current_value_as_changed():
    verdict = rules.min_delta(context({}, {"global": 1.05}))
    assert verdict.passed


# -- max_step -------------------------------------------------------------------------------


def test_max_step_without_limit_passes_silently():
    verdict = rules.max_step(context())
    assert verdict.passed and verdict.adjusted is None and verdict.counts_in_reason is False
    assert verdict.idle and verdict.to_dict()["idle"] is True  # nothing was checked: the panel says "Not set"


def test_a_rule_that_checked_something_is_not_idle():
    verdict = rules.max_step(context(max_step=0.5))
    assert not verdict.idle and "idle" not in verdict.to_dict()


def test_max_step_clips_both_directions():
    verdict = rules.max_step(
        context(
            {"global": 1.0, "weekly": 1.2, "monthly": 1.0},
            {"global": 1.2, "weekly": 1.0, "monthly": 1.01},
            max_step=0.05,
        )
    )
    assert verdict.passed
    assert verdict.adjusted == pytest.approx({"global": 1.05, "weekly": 1.15, "monthly": 1.01})
    assert "Global limited to 1.05 (smoothed 1.20, step limit 0.05)" in verdict.text
    assert "Weekly limited to 1.15 (smoothed 1.00, step limit 0.05)" in verdict.text
    assert "monthly" not in verdict.text


def test_max_step_leaves_new_scopes_alone():
    verdict = rules.max_step(context({}, {"global": 2.0}, max_step=0.05))
    assert verdict.adjusted is None


# -- bounds ---------------------------------------------------------------------------------


def test_bounds_inclusive_and_blocking():
    inside = rules.bounds(context(proposed={"global": 0.5, "weekly": 1.5}, bounds={"min": 0.5, "max": 1.5}))
    assert inside.passed and inside.counts_in_reason is False
    outside = rules.bounds(context(proposed={"global": 0.49, "weekly": 1.51}, bounds={"min": 0.5, "max": 1.5}))
    assert not outside.passed
    assert "Global 0.49 is outside the allowed range 0.50–1.50" in outside.text
    assert "Weekly 1.51 is outside the allowed range 0.50–1.50" in outside.text
    assert outside.needs


# -- order ----------------------------------------------------------------------------------


def test_rules_run_in_the_configured_order_and_clipping_feeds_later_rules():
    current, smoothed = {"global": 1.00}, {"global": 1.10}
    clip_first = CalibrationUpdatePolicy(rules=("max_step", "min_delta"), max_step=0.05, min_delta_global=0.05)
    decision = should_apply_update(current, smoothed, clip_first, OK)
    assert [v.code for v in decision.verdicts] == ["max_step", "min_delta"]
    assert decision.apply and decision.values == pytest.approx({"global": 1.05})
    delta_first = CalibrationUpdatePolicy(rules=("min_delta", "max_step"), max_step=0.05, min_delta_global=0.05)
    decision = should_apply_update(current, smoothed, delta_first, OK)
    assert [v.code for v in decision.verdicts] == ["min_delta", "max_step"]
    assert decision.values == pytest.approx({"global": 1.05})


def test_a_policy_without_the_gates_does_not_check_them():
    policy = CalibrationUpdatePolicy(rules=("min_delta",))
    decision = should_apply_update({"global": 1.0}, {"global": 1.1}, policy, {"sample_size": 1, "vega_sum": 1.0})
    assert decision.apply
    assert [v.code for v in decision.verdicts] == ["min_delta"]


def test_bounds_before_max_step_judges_the_smoothed_value():
    # Default order: bounds sees the raw smoothed value, before max_step clips it.
    policy = CalibrationUpdatePolicy(max_step=0.05, bounds={"min": 0.5, "max": 1.5})
    decision = should_apply_update({"global": 1.45}, {"global": 1.60}, policy, OK)
    assert not decision.apply and "outside the allowed range" in decision.reason
