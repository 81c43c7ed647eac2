"""get_smoothed_multipliers: the window, EWMA by elapsed time, the median, scopes, duplicates."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd  # the oracle only: the library's smoothing never imports it
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
from calibration_policy.plugins import get_smoother

NOW = datetime(2025, 12, 24, 15, 30, tzinfo=UTC)
EWMA = CalibrationUpdatePolicy(smoothing="ewma", smoothing_options={"half_life_days": 7})
MEDIAN = CalibrationUpdatePolicy(smoothing="rolling_median")


def run_at(
    days_ago: float, values: dict[str, float] | float, underlying="SPY", n=412, vega=12400.0, run_id=""
) -> CalibrationRun:
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
    assert (
        get_smoothed_multipliers(history, current, CalibrationUpdatePolicy(smoothing="rolling_median"))["global"]
        == 1.00
    )
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
        record_calibration_result(
            make_result(global_m=g), "SPY", "live", history_dir=history_dir, timestamp=NOW - timedelta(days=3 - i)
        )
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
    assert "Global 1.00 → 1.03 (change 0.03, threshold 0.03)" in decision.reason


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


# -- property: the numpy strategies give pandas' answer ----------------------------------------
#
# pandas is the oracle here, and only here. Tolerance: 1e-12 of the values' scale (max |value|).
# The strategies do pandas' arithmetic in pandas' order, so on this machine they agree to the
# last bit; the margin is for builds where pandas' compiled loop fuses multiply-adds (FMA, the
# default on ARM) or uses another pow, about one unit in the last place per step: 200 steps ×
# 2.2e-16 ≈ 4e-14, well inside 1e-12. The yardstick is the scale, not the result, because with
# values of both signs the mean can cancel to almost 0, where one such unit is a huge *relative*
# error; plus a few units of the scale itself for subnormal values, where 1e-12 of them is 0.
# A real mistake (a wrong decay, an off-by-one point, tied times weighted unequally, a half-life
# off by a nanosecond at small half-lives) is off by far more than that.

NS_PER_DAY = 86_400 * 10**9
EARLIEST_NS = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp()) * 10**9
LATEST_NS = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp()) * 10**9
REALISTIC = st.floats(0.05, 10.0)  # multipliers as hosts produce them
EXTREME = st.floats(-1e300, 1e300)  # any sign, 0, subnormal to huge; 200 × 1e300 stays finite in pandas' sums
# Half-lives spread evenly over 86 ns … 100 years on a log scale (pandas cannot take one under 1 ns).
HALF_LIFE = st.sampled_from([1.0, 7.0, 30.0]) | st.floats(-12, math.log10(36_500)).map(lambda e: min(10**e, 36_500))


def agrees(ours: float, oracle: float, values: np.ndarray) -> bool:
    scale = max(abs(v) for v in values)
    return abs(ours - oracle) <= 1e-12 * scale + 4 * math.ulp(scale)


@st.composite
def histories(draw, max_span_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """1–200 points, oldest first, at irregular times within ``max_span_ns``, often several at one time."""
    n = draw(st.integers(1, 200))
    start = draw(st.integers(EARLIEST_NS, LATEST_NS))
    span = draw(st.integers(0, max_span_ns))  # from all at one instant to the longest span
    shared = draw(st.lists(st.integers(0, span), min_size=1, max_size=4))  # instants several runs share
    offsets = draw(st.lists(st.one_of(st.sampled_from(shared), st.integers(0, span)), min_size=n, max_size=n))
    values = draw(st.lists(draw(st.sampled_from([REALISTIC, EXTREME])), min_size=n, max_size=n))
    times = np.array(sorted(start + offset for offset in offsets), dtype=np.int64).view("datetime64[ns]")
    return times, np.array(values, dtype=np.float64)


def pandas_ewma(times: np.ndarray, values: np.ndarray, half_life_days: float) -> float:
    series = pd.Series(values, index=pd.DatetimeIndex(times))  # nanoseconds, as the strategies get them
    return float(series.ewm(halflife=pd.Timedelta(days=half_life_days), times=series.index).mean().iloc[-1])


def pandas_rolling_median(times: np.ndarray, values: np.ndarray) -> float:
    return float(pd.Series(values, index=pd.DatetimeIndex(times)).rolling("14D").median().iloc[-1])


ORACLE = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@ORACLE
@given(half_life=HALF_LIFE, half_lives=st.floats(0, 60), data=st.data())
def test_ewma_equals_pandas_ewm_with_times(half_life, half_lives, data):
    # Spans of up to 60 half-lives (at most 400 days), whatever the half-life: there every weight
    # counts, so even a half-life off by one nanosecond would show.
    times, values = data.draw(histories(max_span_ns=min(400 * NS_PER_DAY, int(half_life * NS_PER_DAY * half_lives))))
    ewma = get_smoother("ewma")
    got = ewma.fn(times.copy(), values.copy(), ewma.options(half_life_days=half_life))
    assert agrees(got, pandas_ewma(times, values, half_life), values)


@ORACLE
@given(history=histories(max_span_ns=14 * NS_PER_DAY - 1))
def test_rolling_median_equals_pandas_rolling_14d_median(history):
    # Spans stay under 14 days: pandas' "14D" window is open on the left (a point exactly 14 days
    # old is out), ours is closed; both see every point only when all are younger than that.
    times, values = history
    got = get_smoother("rolling_median").fn(times.copy(), values.copy(), None)
    assert agrees(got, pandas_rolling_median(times, values), values)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    ages_us=st.lists(
        st.integers(0, 14 * 86_400 * 10**6 - 1) | st.sampled_from([0, 10**6, 86_400 * 10**6]), max_size=60
    ),
    data=st.data(),
    half_life=HALF_LIFE,
)
def test_smoothing_runs_equals_pandas_on_their_times(ages_us, data, half_life):
    """Through get_smoothed_multipliers: run times become nanoseconds exactly, the current run last."""
    values = data.draw(
        st.lists(data.draw(st.sampled_from([REALISTIC, EXTREME])), min_size=len(ages_us) + 1, max_size=len(ages_us) + 1)
    )
    history = [run_at(age / 86_400e6, value, run_id=f"r{i:03d}") for i, (age, value) in enumerate(zip(ages_us, values))]
    current = run_at(0, values[-1], run_id="current")
    runs = sorted(history, key=lambda r: (r.timestamp, r.run_id)) + [current]  # the order the strategy sees
    times = np.array([r.timestamp.replace(tzinfo=None) for r in runs], dtype="datetime64[ns]")
    window = np.array([r.recommended_iv_multiplier["global"] for r in runs])
    ewma = CalibrationUpdatePolicy(smoothing_options={"half_life_days": half_life})
    assert agrees(
        get_smoothed_multipliers(history, current, ewma)["global"], pandas_ewma(times, window, half_life), window
    )
    assert agrees(
        get_smoothed_multipliers(history, current, MEDIAN)["global"], pandas_rolling_median(times, window), window
    )


def test_a_run_beyond_the_nanosecond_clock_is_refused_naming_it():
    """numpy's datetime64[ns] ends on 2262-04-11: a run after 2261 is refused when it is made, not when smoothed."""
    with pytest.raises(ValueError, match="2300-01-01.*outside the years 1970 to 2261"):
        CalibrationRun(
            run_id="far",
            timestamp=datetime(2300, 1, 1, tzinfo=UTC),
            underlying="SPY",
            source="live",
            recommended_iv_multiplier={"global": 1.0},
            sample_size=412,
            vega_sum=12400.0,
        )


# -- the decision path does not import pandas ------------------------------------------------

DECISION_PATH = """
import json, sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from calibration_policy import Context, UpdateOptions
from calibration_policy import (CalibrationUpdatePolicy, get_smoothed_multipliers, load_recent_calibration_history,
                                record_calibration_result, should_apply_update)
from calibration_policy.target import JsonFileTarget
from calibration_policy.pipeline import run_update

folder, result = Path(sys.argv[1]), json.loads(sys.argv[2])
runs, now = folder / "runs", datetime(2025, 12, 24, 21, tzinfo=timezone.utc)
for days_ago in (9, 6, 2):
    record_calibration_result(result, "SPY", "live", history_dir=runs, timestamp=now - timedelta(days=days_ago))
run = record_calibration_result(result, "SPY", "live", history_dir=runs, timestamp=now)
history = load_recent_calibration_history("SPY", limit=50, history_dir=runs)
evidence = {"sample_size": run.sample_size, "vega_sum": run.vega_sum}
smoothed = {}
for smoothing in ("ewma", "rolling_median"):
    policy = CalibrationUpdatePolicy(smoothing=smoothing)
    smoothed[smoothing] = get_smoothed_multipliers(history, run, policy)
    should_apply_update({"global": 1.0, "weekly": 1.0, "monthly": 1.0}, smoothed[smoothing], policy, evidence)
config = folder / "live.json"
config.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
outcome = run_update(result, underlying='SPY', source='live', target=JsonFileTarget(config), options=UpdateOptions(timestamp=now + timedelta(hours=1)), context=Context.build(history_dir=runs, archive_dir=folder / 'archive'))
print(json.dumps({"smoothed": smoothed, "applied": outcome.applied, "live": json.loads(config.read_text()),
                  "loaded": sorted(name for name in ("pandas", "pyarrow") if name in sys.modules)}))
"""


def test_the_decision_path_imports_neither_pandas_nor_pyarrow(tmp_path, make_result):
    """A fresh process records, loads, smooths (both strategies), decides and runs an update."""
    result = make_result(global_m=1.08, bands={"weekly": 1.10, "monthly": 1.06})
    done = subprocess.run(
        [sys.executable, "-c", DECISION_PATH, str(tmp_path), json.dumps(result)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []  # neither pandas nor pyarrow
    # ...and the path really ran: four runs of 1.08 smooth to 1.08, and the update applied.
    assert report["smoothed"]["ewma"]["global"] == pytest.approx(1.08)
    assert report["smoothed"]["rolling_median"] == {
        "global": pytest.approx(1.08),
        "weekly": pytest.approx(1.10),
        "monthly": pytest.approx(1.06),
    }
    assert report["applied"] and report["live"]["global"] == pytest.approx(1.08)


def test_runs_sharing_a_timestamp_are_in_the_order_they_were_recorded():
    """Issue 11, D9: run ids that share a stamp end in _2 … _10; as text "_10" < "_9"."""
    from calibration_policy.smoothing import window_runs

    base = f"{NOW:%Y%m%dT%H%M%S.%fZ}_SPY_live"
    ids = [base] + [f"{base}_{n}" for n in range(2, 13)]
    runs = [run_at(0, 1.0 + i / 100, run_id=run_id) for i, run_id in enumerate(ids)]
    current = run_at(0, 2.0, run_id=f"{base}_13")
    picked = window_runs(list(reversed(runs)), current, EWMA)
    assert [r.run_id for r in picked] == ids + [current.run_id]
