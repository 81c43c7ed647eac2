"""get_smoothed_multipliers: the window, EWMA by elapsed time, the median, scopes, duplicates."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibration_policy import (
    CalibrationPolicyError,
    CalibrationRun,
    CalibrationUpdatePolicy,
    get_smoothed_multipliers,
    load_recent_calibration_history,
    record_calibration_result,
    should_apply_update,
)

NOW = datetime(2025, 12, 24, 15, 30, tzinfo=timezone.utc)
EWMA = CalibrationUpdatePolicy(smoothing="ewma", smoothing_options={"half_life_days": 7})
MEDIAN = CalibrationUpdatePolicy(smoothing="rolling_median")


def run_at(days_ago: float, values: dict[str, float] | float, underlying="SPY", n=412, vega=12400.0, run_id="") -> CalibrationRun:
    if not isinstance(values, dict):
        values = {"global": values}
    moment = NOW - timedelta(days=days_ago)
    return CalibrationRun(
        run_id=run_id or f"{moment:%Y%m%dT%H%M%S.%fZ}_{underlying}_live",
        timestamp=moment, underlying=underlying, source="live",
        recommended_iv_multiplier=values, sample_size=n, vega_sum=vega,
    )  # fmt: skip


def weighted_mean(points: list[tuple[float, float]], half_life: float) -> float:
    """Hand computation: weight 0.5 ** (age_days / half_life)."""
    weights = [0.5 ** (age / half_life) for age, _ in points]
    return sum(w * v for w, (_, v) in zip(weights, points)) / sum(weights)


# -- EWMA -------------------------------------------------------------------------------------


def test_ewma_matches_hand_computed_time_weights():
    history = [run_at(13, 1.20), run_at(6, 1.00), run_at(2.5, 1.10)]
    current = run_at(0, 1.04)
    got = get_smoothed_multipliers(history, current, EWMA)
    expected = weighted_mean([(13, 1.20), (6, 1.00), (2.5, 1.10), (0, 1.04)], half_life=7)
    assert got["global"] == pytest.approx(expected, rel=1e-12)


def test_ewma_uses_elapsed_time_not_row_count():
    current = run_at(0, 1.00)
    close = get_smoothed_multipliers([run_at(1, 1.20)], current, EWMA)["global"]
    far = get_smoothed_multipliers([run_at(13, 1.20)], current, EWMA)["global"]
    assert close != far
    # A value from 13 days ago weighs less than one from 1 day ago.
    assert far - 1.00 < close - 1.00
    assert close == pytest.approx(weighted_mean([(1, 1.20), (0, 1.00)], 7))
    assert far == pytest.approx(weighted_mean([(13, 1.20), (0, 1.00)], 7))


def test_same_values_different_gaps_give_different_results():
    values = [1.20, 1.10, 1.00]
    tight = [run_at(age, v) for age, v in zip([3, 2, 1], values)]
    spread = [run_at(age, v) for age, v in zip([12, 8, 1], values)]
    current = run_at(0, 1.05)
    a = get_smoothed_multipliers(tight, current, EWMA)["global"]
    b = get_smoothed_multipliers(spread, current, EWMA)["global"]
    assert a != pytest.approx(b, abs=1e-6)
    assert b == pytest.approx(weighted_mean([(12, 1.20), (8, 1.10), (1, 1.00), (0, 1.05)], 7))


def test_half_life_option_changes_the_weighting():
    history = [run_at(10, 1.30)]
    current = run_at(0, 1.00)
    short = get_smoothed_multipliers(history, current, CalibrationUpdatePolicy(smoothing_options={"half_life_days": 1}))
    long = get_smoothed_multipliers(history, current, CalibrationUpdatePolicy(smoothing_options={"half_life_days": 30}))
    assert short["global"] == pytest.approx(weighted_mean([(10, 1.30), (0, 1.0)], 1))
    assert long["global"] == pytest.approx(weighted_mean([(10, 1.30), (0, 1.0)], 30))
    assert short["global"] < long["global"]


def test_a_single_run_smooths_to_itself():
    for policy in (EWMA, MEDIAN):
        assert get_smoothed_multipliers([], run_at(0, {"global": 1.07, "weekly": 0.98}), policy) == {
            "global": pytest.approx(1.07), "weekly": pytest.approx(0.98),
        }  # fmt: skip


# -- rolling median ----------------------------------------------------------------------------


def test_rolling_median_ignores_one_outlier():
    history = [run_at(4, 1.05), run_at(3, 1.04), run_at(2, 3.50), run_at(1, 1.06)]
    current = run_at(0, 1.05)
    assert get_smoothed_multipliers(history, current, MEDIAN)["global"] == pytest.approx(1.05)
    # The EWMA, by contrast, is dragged by the outlier.
    assert get_smoothed_multipliers(history, current, EWMA)["global"] > 1.3


def test_rolling_median_of_an_even_count():
    history = [run_at(3, 1.00), run_at(2, 1.10), run_at(1, 1.20)]
    assert get_smoothed_multipliers(history, run_at(0, 1.30), MEDIAN)["global"] == pytest.approx(1.15)


# -- the window --------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [EWMA, MEDIAN], ids=["ewma", "median"])
def test_window_excludes_old_runs_and_runs_after_current(policy):
    current = run_at(0, 1.00)
    inside = [run_at(13.9, 1.02), run_at(5, 0.98)]
    old = [run_at(14.1, 5.0), run_at(40, 9.0)]
    future = [run_at(-0.5, 7.0), run_at(-3, 8.0)]
    with_noise = get_smoothed_multipliers(old + inside + future, current, policy)
    only_inside = get_smoothed_multipliers(inside, current, policy)
    assert with_noise == only_inside
    assert 0.98 <= with_noise["global"] <= 1.02


def test_window_length_comes_from_the_policy():
    current = run_at(0, 1.00)
    history = [run_at(20, 2.00)]
    assert get_smoothed_multipliers(history, current, CalibrationUpdatePolicy(smoothing="rolling_median"))["global"] == 1.00
    wide = CalibrationUpdatePolicy(smoothing="rolling_median", smoothing_window_days=30)
    assert get_smoothed_multipliers(history, current, wide)["global"] == pytest.approx(1.50)


def test_window_boundary_is_inclusive():
    current = run_at(0, 1.00)
    assert get_smoothed_multipliers([run_at(14, 2.00)], current, MEDIAN)["global"] == pytest.approx(1.50)


@pytest.mark.parametrize("policy", [EWMA, MEDIAN], ids=["ewma", "median"])
def test_history_containing_current_run_counts_it_once(policy):
    current = run_at(0, 1.30)
    others = [run_at(3, 1.00), run_at(1, 1.10)]
    without = get_smoothed_multipliers(others, current, policy)
    with_it = get_smoothed_multipliers(others + [current], current, policy)
    with_a_copy = get_smoothed_multipliers(others + [current.model_copy(), current.model_copy()], current, policy)
    assert with_it == without == with_a_copy


def test_recorded_then_loaded_flow_counts_current_once(tmp_path, make_result):
    """The DESIGN example: record first, then load (which now holds the run), then smooth."""
    history_dir = tmp_path / "runs"
    for i, g in enumerate([1.00, 1.02, 1.04]):
        record_calibration_result(make_result(global_m=g), "SPY", "live", history_dir=history_dir, timestamp=NOW - timedelta(days=3 - i))
    run = record_calibration_result(make_result(global_m=1.20), "SPY", "live", history_dir=history_dir, timestamp=NOW)
    history = load_recent_calibration_history("SPY", limit=50, history_dir=history_dir)
    assert history[-1].run_id == run.run_id
    smoothed = get_smoothed_multipliers(history, run, MEDIAN)
    assert smoothed["global"] == pytest.approx(1.03)  # median of 1.00, 1.02, 1.04, 1.20 — not of five values
    assert get_smoothed_multipliers(history[:-1], run, MEDIAN) == smoothed
    assert set(smoothed) == {"global", "weekly", "monthly"}
    decision = should_apply_update({"global": 1.00, "weekly": 1.07, "monthly": 1.03}, smoothed, MEDIAN,
                                   {"sample_size": run.sample_size, "vega_sum": run.vega_sum})  # fmt: skip
    assert decision.apply
    assert "global 1.00 → 1.03 (change 0.03, threshold 0.03)" in decision.reason


def test_two_runs_with_the_same_timestamp_are_both_counted():
    current = run_at(0, 1.00, run_id="20251224T153000.000000Z_SPY_live_2")
    twin = run_at(0, 1.30, run_id="20251224T153000.000000Z_SPY_live")
    assert get_smoothed_multipliers([twin], current, MEDIAN)["global"] == pytest.approx(1.15)
    assert get_smoothed_multipliers([twin], current, EWMA)["global"] == pytest.approx(1.15)  # same age, same weight


# -- scopes ------------------------------------------------------------------------------------


def test_scope_missing_in_some_runs_is_smoothed_over_the_runs_that_have_it():
    history = [
        run_at(5, {"global": 1.00, "weekly": 1.20}),
        run_at(3, {"global": 1.02}),
        run_at(1, {"global": 1.04, "weekly": 1.10, "monthly": 0.90}),
    ]
    current = run_at(0, {"global": 1.06, "weekly": 1.00, "monthly": 0.96})
    got = get_smoothed_multipliers(history, current, MEDIAN)
    assert got == {"global": pytest.approx(1.03), "weekly": pytest.approx(1.10), "monthly": pytest.approx(0.93)}
    ewma = get_smoothed_multipliers(history, current, EWMA)
    assert ewma["weekly"] == pytest.approx(weighted_mean([(5, 1.20), (1, 1.10), (0, 1.00)], 7))
    assert ewma["monthly"] == pytest.approx(weighted_mean([(1, 0.90), (0, 0.96)], 7))


def test_only_the_current_runs_scopes_are_returned():
    history = [run_at(1, {"global": 1.0, "quarterly": 1.5})]
    assert set(get_smoothed_multipliers(history, run_at(0, {"global": 1.1}), MEDIAN)) == {"global"}


def test_other_underlyings_are_ignored():
    current = run_at(0, 1.00)
    mine = [run_at(2, 1.04)]
    theirs = [run_at(1, 9.0, underlying="QQQ"), run_at(3, 0.1, underlying="IWM")]
    assert get_smoothed_multipliers(mine + theirs, current, EWMA) == get_smoothed_multipliers(mine, current, EWMA)


def test_thin_runs_are_left_out_of_later_smoothing_unless_the_policy_says_so():
    current = run_at(0, 1.00)
    thin = run_at(1, 2.00, n=40)
    low_vega = run_at(2, 2.00, vega=100.0)
    assert get_smoothed_multipliers([thin, low_vega], current, MEDIAN)["global"] == pytest.approx(1.00)
    keep = CalibrationUpdatePolicy(smoothing="rolling_median", smoothing_skips_thin_runs=False)
    assert get_smoothed_multipliers([thin, low_vega], current, keep)["global"] == pytest.approx(2.00)


def test_policy_must_be_a_policy():
    with pytest.raises(CalibrationPolicyError):
        get_smoothed_multipliers([], run_at(0, 1.0), {"smoothing": "ewma"})  # type: ignore[arg-type]


# -- property: the smoothed value stays within what the window saw ------------------------

POINT = st.tuples(st.floats(0, 20, allow_nan=False), st.floats(0.05, 10.0, allow_nan=False))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    points=st.lists(POINT, max_size=12),
    current_value=st.floats(0.05, 10.0, allow_nan=False),
    smoothing=st.sampled_from(["ewma", "rolling_median"]),
    window=st.floats(1, 30, allow_nan=False),
    half_life=st.floats(0.1, 60, allow_nan=False),
)
def test_smoothed_value_within_window_min_max(points, current_value, smoothing, window, half_life):
    options = {"half_life_days": half_life} if smoothing == "ewma" else {}
    policy = CalibrationUpdatePolicy(smoothing=smoothing, smoothing_window_days=window, smoothing_options=options)
    history = [run_at(age, value, run_id=f"r{i}") for i, (age, value) in enumerate(points)]
    current = run_at(0, current_value, run_id="current")
    start = NOW - timedelta(days=window)
    in_window = [r.recommended_iv_multiplier["global"] for r in history if r.timestamp >= start] + [current_value]
    got = get_smoothed_multipliers(history, current, policy)["global"]
    tolerance = 1e-9 * max(in_window)
    assert min(in_window) - tolerance <= got <= max(in_window) + tolerance


def test_runs_sharing_a_timestamp_are_in_the_order_they_were_recorded():
    """Issue 11, D9: run ids that share a stamp end in _2 … _10; as text "_10" < "_9"."""
    from calibration_policy.smoothing import window_runs

    base = f"{NOW:%Y%m%dT%H%M%S.%fZ}_SPY_live"
    ids = [base] + [f"{base}_{n}" for n in range(2, 13)]
    runs = [run_at(0, 1.0 + i / 100, run_id=run_id) for i, run_id in enumerate(ids)]
    current = run_at(0, 2.0, run_id=f"{base}_13")
    picked = window_runs(list(reversed(runs)), current, EWMA)
    assert [r.run_id for r in picked] == ids + [current.run_id]
