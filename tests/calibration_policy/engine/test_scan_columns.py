"""The scan kept as columns (every underlying's state in numpy arrays) decides exactly as the scan
that keeps one dictionary per underlying: the same route, live values, writes and time of the last
change for every run, and the same decision and reason for the runs read."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibration_policy import CalibrationRun, CalibrationUpdatePolicy
from calibration_policy.engine import Prepared, Scan, scan_together, smooth_series
from calibration_policy.replay import _columns_figures, _scan_figures
from calibration_policy.rule_evidence import needed

T0 = datetime(2025, 3, 3, 21, tzinfo=UTC)
SCOPES = ("global", "weekly", "monthly")


def _runs(name: str, days: list[tuple[float, dict[str, float], int, float]]) -> list[CalibrationRun]:
    return [
        CalibrationRun(
            run_id=f"{(T0 + timedelta(days=day)).strftime('%Y%m%dT%H%M%S.%fZ')}_{name}_live_{k}",
            timestamp=T0 + timedelta(days=day),
            underlying=name,
            source="live",
            recommended_iv_multiplier=values,
            sample_size=sample,
            vega_sum=vega,
        )
        for k, (day, values, sample, vega) in enumerate(days)
    ]


def _scans(groups, policy, start, last, columns: bool) -> list[Scan]:
    scans = []
    for runs in groups:
        prepared = Prepared(runs, smooth_series(runs, policy))
        scans.append(Scan(runs, prepared.smoothed, policy, start, last, needed(policy), 0, prepared))
    scan_together(scans, columns=columns)
    return scans


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def assert_alike(groups, policy, start, last=None, read_every: int = 1) -> bool:
    """Both scans over ``groups``; True when the columns ran (the policy allowed it)."""
    as_columns = _scans(groups, policy, start, last, True)
    as_dicts = _scans(groups, policy, start, last, False)
    for one, other in zip(as_columns, as_dicts, strict=True):
        assert other._part is None
        assert one.route.tolist() == other.route.tolist()
        assert set(one.written) == set(other.written)
        for scope in one.written:
            assert all(map(_same, one.written[scope].tolist(), other.written[scope].tolist()))
        assert dict(one.values) == other.values
        for j in range(one.first, len(one.runs)):
            assert one.live_before[j] == other.live_before[j]
            assert one.live_after(j) == other.live_after(j)
            assert one.last_applied[j] == other.last_applied[j]
        for j in range(one.first, len(one.runs), read_every):
            mine, theirs = one.decision(j), other.decision(j)
            assert (mine.apply, mine.values, mine.reason) == (theirs.apply, theirs.values, theirs.reason)
    if as_columns[0]._part is None:
        return False
    # the figures of every underlying at once, to the last bit as one underlying's at a time
    assert _columns_figures(as_columns[0]._part.state) == [_scan_figures(s) for s in as_dicts]
    return all(s._part is not None for s in as_columns)


value = st.floats(0.8, 1.3, allow_nan=False).map(lambda v: round(v, 4))


@st.composite
def underlyings(draw):
    """One to four underlyings, each with up to twelve runs, all with the same scopes."""
    groups = []
    for u in range(draw(st.integers(1, 4))):
        day, days = 0.0, []
        for _ in range(draw(st.integers(1, 12))):
            day += draw(st.sampled_from([0.0, 0.5, 1.0, 1.0, 3.0]))
            days.append(
                (
                    day,
                    {s: draw(value) for s in SCOPES},
                    draw(st.sampled_from([60, 200, 420])),
                    draw(st.sampled_from([2500.0, 9000.0])),
                )
            )
        groups.append(_runs(f"U{u}", days))
    return groups


@st.composite
def policies(draw):
    gate = draw(st.sampled_from(["min_delta", "min_delta_directional"]))
    rules = ["min_sample_size", "min_vega_sum", "bounds", "max_step", gate]
    if draw(st.booleans()):
        rules.append("cooldown_period")  # a batch form reading when the live values last changed
    options = {
        "cooldown_period": {"days": draw(st.sampled_from([0.5, 2.0]))},
        "min_delta_directional": {"up": draw(st.sampled_from([0.01, 0.03])), "down": 0.04},
    }
    return CalibrationUpdatePolicy(
        min_delta_global=draw(st.sampled_from([0.0, 0.005, 0.02, 0.05])),
        min_delta_band=draw(st.sampled_from([0.01, 0.03, 0.06])),
        min_sample_size=draw(st.sampled_from([100, 300])),
        smoothing=draw(st.sampled_from(["ewma", "rolling_median"])),
        smoothing_window_days=draw(st.integers(1, 10)),
        max_step=draw(st.sampled_from([None, 0.06])),
        apply_scopes=draw(st.sampled_from(["all", "changed"])),
        bounds=draw(st.sampled_from([None, {"min": 0.9, "max": 1.2}])),
        rules=tuple(rules),
        rule_options={name: value for name, value in options.items() if name in rules},
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    groups=underlyings(),
    policy=policies(),
    start=st.fixed_dictionaries({s: value for s in SCOPES}),
    last=st.sampled_from([None, T0 - timedelta(days=1)]),
)
def test_the_columns_decide_as_the_dictionaries_on_drawn_histories(groups, policy, start, last):
    assert assert_alike(groups, policy, start, last)


def _walk(seed: int, underlyings: int, days: int) -> list[list[CalibrationRun]]:
    import random

    rng = random.Random(seed)
    groups = []
    for u in range(underlyings):
        level, out = {s: 1.0 for s in SCOPES}, []
        for day in range(days):
            level = {s: v + rng.gauss(0, 0.01) for s, v in level.items()}
            thin = rng.random() < 0.1
            out.append((float(day), {s: v + rng.gauss(0, 0.02) for s, v in level.items()}, 60 if thin else 400, 9000.0))
        groups.append(_runs(f"U{u:02d}", out))
    return groups


@pytest.mark.parametrize("threshold", [0.0, 0.005, 0.03])
@pytest.mark.parametrize("apply_scopes", ["all", "changed"])
def test_the_columns_decide_as_the_dictionaries_over_many_underlyings(threshold, apply_scopes):
    policy = CalibrationUpdatePolicy(min_delta_global=threshold, min_delta_band=threshold, apply_scopes=apply_scopes)
    assert assert_alike(_walk(3, 12, 60), policy, {s: 1.0 for s in SCOPES}, read_every=5)


@pytest.mark.parametrize(
    "policy, start",
    [
        (CalibrationUpdatePolicy(require_approval=True), {s: 1.0 for s in SCOPES}),  # a person decides
        (CalibrationUpdatePolicy(), {"global": 1.0}),  # the live values lack scopes the runs have
        (CalibrationUpdatePolicy(), {}),  # nothing live yet
        (
            CalibrationUpdatePolicy(
                rules=("min_sample_size", "stabilization_window", "min_delta", "bounds"),
                rule_options={"stabilization_window": {"days": 2}},
            ),
            {s: 1.0 for s in SCOPES},
        ),  # a rule without a batch form, reading recent_smoothed
    ],
    ids=["approval", "fewer_live_scopes", "nothing_live", "no_batch_form"],
)
def test_other_policies_keep_the_dictionaries_and_decide_alike(policy, start):
    assert not assert_alike(_walk(5, 3, 25), policy, start, read_every=3)


def test_runs_with_other_scopes_keep_the_dictionaries():
    groups = _walk(9, 2, 20)
    groups[1] = [
        run.model_copy(update={"recommended_iv_multiplier": {"global": run.recommended["global"]}}) for run in groups[1]
    ]
    assert not assert_alike(groups, CalibrationUpdatePolicy(), {s: 1.0 for s in SCOPES})


def _scoped(groups: list[list[CalibrationRun]]) -> list[CalibrationRun]:
    """The runs of ``groups`` end to end, some with fewer scopes, one with them in another order."""
    out = []
    for k, run in enumerate(run for group in groups for run in group):
        values = dict(run.recommended)
        if k % 7 == 3:
            values.pop("monthly")
        if k % 11 == 5:
            values = dict(reversed(values.items()))
        out.append(run.model_copy(update={"recommended_iv_multiplier": values}))
    return out


@pytest.mark.parametrize("first", [0, 4])
@pytest.mark.parametrize("smoothing", ["ewma", "rolling_median"])
def test_the_smoothing_hands_the_scan_columns_equal_to_its_dictionaries(first, smoothing):
    import numpy as np

    runs = _scoped(_walk(4, 1, 40))
    policy = CalibrationUpdatePolicy(smoothing=smoothing)
    targets = range(first, len(runs))
    dicts = smooth_series(runs, policy, targets)
    columns = smooth_series(runs, policy, targets, columns=True)
    assert columns.rows() == dicts and [columns.row(k) for k in range(len(dicts))] == dicts
    assert [list(columns.row(k)) for k in range(len(dicts))] == [list(d) for d in dicts]  # the same order
    by_dicts = Prepared(runs, [{}] * first + dicts, first)
    by_columns = Prepared(runs, columns, first)
    assert list(by_columns.smoothed) == list(by_dicts.smoothed)
    assert by_columns.stretch_end.tolist() == by_dicts.stretch_end.tolist()
    assert by_columns.starts() == by_dicts.starts()
    for one, other in ((by_columns.columns, by_dicts.columns), (by_columns.recommended, by_dicts.recommended)):
        assert list(one) == list(other)
        assert all(np.array_equal(one[s], other[s], equal_nan=True) for s in one)


@pytest.mark.parametrize("since", [None, T0 + timedelta(days=20)])
def test_a_replay_over_columns_equals_the_replay_over_dictionaries(monkeypatch, since):
    from calibration_policy.replay import replay

    history = [run for group in _walk(11, 5, 45) for run in group]
    policy = CalibrationUpdatePolicy(min_delta_global=0.01, min_delta_band=0.02)
    start = {s: 1.0 for s in SCOPES}
    columns = replay(history, policy, start, since=since)
    assert all(u.scan._part is not None for u in columns.underlyings.values())
    monkeypatch.setattr("calibration_policy.engine.columns.usable", lambda *args: False)
    dicts = replay(history, policy, start, since=since)
    assert all(u.scan._part is None for u in dicts.underlyings.values())
    assert columns.figures == dicts.figures
    assert [u.figures for u in columns.underlyings.values()] == [u.figures for u in dicts.underlyings.values()]
    for one, other in zip(columns.decisions, dicts.decisions, strict=True):
        assert (one.run_id, one.route, one.smoothed, one.live_before, one.live_after) == (
            other.run_id,
            other.route,
            other.smoothed,
            other.live_before,
            other.live_after,
        )
    assert [d.reason for d in columns.decisions[::9]] == [d.reason for d in dicts.decisions[::9]]
