"""The engine's batch forms answer exactly as the per-run forms; a bad one stops with a sentence."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibration_policy import CalibrationRun, CalibrationUpdatePolicy, Context
from calibration_policy.decide import RuleContext
from calibration_policy.default_plugins import lab_rules, rules, smoothers
from calibration_policy.engine import BatchContext, EngineError, Scan, scan_together, smooth_series
from calibration_policy.engine.rules import moments
from calibration_policy.hookspecs import hookimpl
from calibration_policy.lab import tune
from calibration_policy.pipeline import run_update
from calibration_policy.plugins import get_plugin_manager
from calibration_policy.replay import replay
from calibration_policy.specs import Rule, Smoother
from calibration_policy.target import JsonFileTarget

T0 = datetime(2025, 3, 3, 21, tzinfo=UTC)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

values = st.floats(0.5, 2.0, allow_nan=False)
gaps = st.sampled_from([0, 1, 3600, 86_400, 86_400, 3 * 86_400, 86_400 * 7 + 17])


@st.composite
def windows(draw):
    """A few windows in the engine's layout: times (ns) and values back to back, and their offsets."""
    count = draw(st.integers(1, 6))
    times, vals, offsets = [], [], [0]
    for _ in range(count):
        length = draw(st.integers(1, 12))
        t = draw(st.integers(1_600_000_000, 1_700_000_000)) * 10**9
        for _ in range(length):
            t += draw(gaps) * 10**9
            times.append(t)
            vals.append(draw(values))
        offsets.append(len(times))
    return np.array(times, dtype=np.int64).view("datetime64[ns]"), np.array(vals), np.array(offsets)


@SETTINGS
@given(windows(), st.floats(0.01, 400))
def test_the_ewma_batch_form_is_the_per_window_ewma_to_the_last_bit(layout, half_life):
    times, vals, offsets = layout
    options = smoothers.EwmaOptions(half_life_days=half_life)
    batch = smoothers.ewma_batch(times, vals, offsets, options)
    one_by_one = [smoothers.ewma(times[a:b], vals[a:b], options) for a, b in zip(offsets[:-1], offsets[1:])]
    assert batch.tolist() == one_by_one


@SETTINGS
@given(windows())
def test_the_rolling_median_batch_form_is_numpy_median_per_window(layout):
    times, vals, offsets = layout
    batch = smoothers.rolling_median_batch(times, vals, offsets, None)
    assert batch.tolist() == [
        smoothers.rolling_median(times[a:b], vals[a:b], None) for a, b in zip(offsets[:-1], offsets[1:])
    ]


SCOPES = ("global", "weekly", "monthly")
RULES = {
    "min_sample_size": (rules.min_sample_size, rules.min_sample_size_batch),
    "min_vega_sum": (rules.min_vega_sum, rules.min_vega_sum_batch),
    "min_delta": (rules.min_delta, rules.min_delta_batch),
    "max_step": (rules.max_step, rules.max_step_batch),
    "bounds": (rules.bounds, rules.bounds_batch),
    "min_delta_directional": (lab_rules.min_delta_directional, lab_rules.min_delta_directional_batch),
    "cooldown_period": (lab_rules.cooldown, lab_rules.cooldown_batch),
}


@SETTINGS
@given(
    name=st.sampled_from(sorted(RULES)),
    current=st.fixed_dictionaries({}, optional={s: values for s in SCOPES}),
    rows=st.lists(
        st.tuples(
            st.lists(values, min_size=3, max_size=3),
            st.one_of(st.none(), st.integers(0, 600)),
            st.one_of(st.none(), st.floats(0, 20_000)),
            st.integers(0, 40 * 86_400),
        ),
        min_size=1,
        max_size=8,
    ),
    thresholds=st.tuples(st.sampled_from([0.0, 0.01, 0.03, 0.05]), st.sampled_from([0.02, 0.03, 0.1])),
    step=st.one_of(st.none(), st.sampled_from([0.05, 0.1, 0.3])),
    last=st.one_of(st.none(), st.integers(0, 20 * 86_400)),
)
def test_every_built_in_rule_batch_form_passes_and_adjusts_as_its_fn(name, current, rows, thresholds, step, last):
    policy = CalibrationUpdatePolicy(
        min_delta_global=thresholds[0],
        min_delta_band=thresholds[1],
        max_step=step if step is None or step >= max(thresholds) else None,
        bounds={"min": 0.6, "max": 1.8},
    )
    options = RULES_OPTIONS.get(name)
    fn, batch = RULES[name]
    last_at = None if last is None else T0 + timedelta(seconds=last)
    times = [T0 + timedelta(seconds=r[3]) for r in rows]
    evidence = {
        "sample_size": np.array([math.nan if r[1] is None else r[1] for r in rows], dtype=float),
        "vega_sum": np.array([math.nan if r[2] is None else r[2] for r in rows], dtype=float),
        "run_time": np.array([int(t.timestamp()) * 10**9 for t in times], dtype=np.int64).view("datetime64[ns]"),
        "last_applied_at": moments([last_at] * len(rows)),
    }
    proposed = {s: np.array([r[0][i] for r in rows]) for i, s in enumerate(SCOPES)}
    live = {s: np.full(len(rows), value) for s, value in current.items()}
    verdict = batch(BatchContext(live, proposed, policy, evidence, options, len(rows)))
    for k, row in enumerate(rows):
        ctx = RuleContext(
            dict(current),
            {s: row[0][i] for i, s in enumerate(SCOPES)},
            policy,
            {"sample_size": row[1], "vega_sum": row[2], "run_time": times[k], "last_applied_at": last_at},
            options=options,
        )
        one = fn(ctx)
        assert bool(verdict.passed[k]) == one.passed
        got = None if verdict.adjusted is None else {s: float(v[k]) for s, v in verdict.adjusted.items()}
        if one.adjusted is None:
            assert got is None or all(got[s] == ctx.proposed[s] for s in got)
        else:
            assert {**ctx.proposed, **(got or {})} == one.adjusted


RULES_OPTIONS = {
    "min_delta_directional": lab_rules.DirectionalOptions(up=0.02, down=0.04),
    "cooldown_period": lab_rules.CooldownOptions(days=3.0),
}


# -- bad batch forms -----------------------------------------------------------------------------


def _runs(n: int = 12) -> list[CalibrationRun]:
    return [
        CalibrationRun(
            run_id=f"{(T0 + timedelta(days=d)):%Y%m%dT%H%M%S.%fZ}_SPY_live",
            timestamp=T0 + timedelta(days=d),
            underlying="SPY",
            source="live",
            recommended_iv_multiplier={"global": 1.0 + 0.02 * d, "weekly": 1.01},
            sample_size=400,
            vega_sum=9000.0,
        )
        for d in range(n)
    ]


class BadForms:
    @hookimpl
    def register_smoothers(self, register):
        register(Smoother("raises", smoothers.rolling_median, batch=lambda t, v, o, opt: 1 / 0))
        register(Smoother("short", smoothers.rolling_median, batch=lambda t, v, o, opt: v[:1]))
        register(
            Smoother("nan_from_batch", smoothers.rolling_median, batch=lambda t, v, o, opt: np.full(len(o) - 1, np.nan))
        )

    @hookimpl
    def register_rules(self, register):
        register(Rule("rule_raises", rules.min_delta, batch=lambda ctx: [][1]))
        register(Rule("rule_short", rules.min_delta, batch=lambda ctx: rules.BatchVerdict(np.ones(1, dtype=bool))))
        register(
            Rule(
                "rule_nan",
                rules.max_step,
                batch=lambda ctx: rules.BatchVerdict(
                    np.ones(ctx.size, dtype=bool), {"global": np.full(ctx.size, np.nan)}
                ),
            )
        )
        register(
            Rule(
                "rule_disagrees",
                rules.min_delta,
                batch=lambda ctx: rules.BatchVerdict(~rules.min_delta_batch(ctx).passed),
            )
        )


@pytest.fixture
def bad_forms(fresh_plugins):
    get_plugin_manager().register(BadForms(), name="bad_forms")
    yield


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        (dict(smoothing="raises"), r"Smoothing strategy 'raises' failed in its batch form while smoothing 12 runs from "
         r"20250303T210000\.000000Z_SPY_live: ZeroDivisionError"),
        (dict(smoothing="short"), r"Smoothing strategy 'short' returned an array of shape \(1,\) .* for 12 windows"),
        (dict(smoothing="nan_from_batch"), r"'nan_from_batch' returned nan from its batch form for global of run "
         r"20250303T210000\.000000Z_SPY_live"),
        (dict(rules=("rule_raises",)), r"Rule 'rule_raises' of plugin bad_forms failed in its batch form while deciding .*IndexError"),
        (dict(rules=("rule_short",)), r"Rule 'rule_short' of plugin bad_forms returned 1 pass/fail answers \(bool\) from its batch form for \d+ runs"),
        (dict(rules=("rule_nan",), max_step=0.1), r"Rule 'rule_nan' of plugin bad_forms adjusted 'global' to nan for run 20250303T210000\.000000Z_SPY_live"),
    ],
)  # fmt: skip
def test_a_bad_batch_form_stops_the_replay_with_a_sentence_naming_it_and_the_run(bad_forms, policy, says):
    with pytest.raises(EngineError, match=says):
        replay(_runs(), CalibrationUpdatePolicy(**policy), start_values={"global": 1.0, "weekly": 1.0})


def test_a_batch_form_that_disagrees_with_its_fn_is_caught_when_the_decision_is_read(bad_forms):
    result = replay(_runs(), CalibrationUpdatePolicy(rules=("rule_disagrees",)), start_values={"global": 1.0})
    with pytest.raises(EngineError, match=r"Rule 'rule_disagrees' (passed|failed) run .* in its batch form but"):
        _ = result.decisions[0].reason


def test_a_bad_batch_form_in_the_live_path_changes_nothing_live(bad_forms, tmp_path, make_result):
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0, "weekly": 1.0, "monthly": 1.0}))
    before = live.read_bytes()
    with pytest.raises(
        EngineError, match="'rule_raises' of plugin bad_forms failed in its batch form while deciding run "
    ):
        run_update(
            make_result(global_m=1.2),
            underlying="SPY",
            source="live",
            target=JsonFileTarget(live),
            context=Context.build(
                policy=CalibrationUpdatePolicy(rules=("rule_raises",)),
                history_dir=tmp_path / "runs",
                archive_dir=tmp_path / "archive",
                suggestions_dir=tmp_path / "sugg",
            ),
        )
    assert live.read_bytes() == before and not (tmp_path / "archive").exists()


# -- work done only where it is read ------------------------------------------------------------


def test_a_replay_builds_a_decision_only_for_the_runs_whose_decision_is_read(monkeypatch):
    from calibration_policy.engine import scan

    built = []
    real = scan.should_apply_update
    monkeypatch.setattr(scan, "should_apply_update", lambda *a, **k: built.append(1) or real(*a, **k))
    result = replay(_runs(40), CalibrationUpdatePolicy(), start_values={"global": 1.0, "weekly": 1.0})
    assert result.applies > 0 and result.figures.runs == 40
    assert built == []
    assert result.decisions[7].reason.startswith(("Applied", "Not applied"))
    assert len(built) == 1


def test_tune_smooths_each_underlying_once_for_every_candidate_that_smooths_alike(monkeypatch):
    from calibration_policy import replay as replay_module

    calls = []
    real = smooth_series
    monkeypatch.setattr("calibration_policy.engine.smooth_series", lambda *a, **k: calls.append(1) or real(*a, **k))
    history = _runs(30) + [
        r.model_copy(update={"underlying": "QQQ", "run_id": r.run_id.replace("SPY", "QQQ")}) for r in _runs(30)
    ]
    result = tune(
        history, CalibrationUpdatePolicy(), {"min_delta_global": (0.01, 0.06)}, n=12, start_values={"global": 1.0}
    )
    assert len(result.candidates) == 12
    assert len(calls) == 2  # one smoothing per underlying, shared by the 12 candidates
    assert replay_module.SmoothingCache  # the cache the candidates share


def test_a_scan_moves_the_live_value_at_each_apply():
    runs = _runs(10)
    smoothed = [dict(r.recommended) for r in runs]
    policy = CalibrationUpdatePolicy(min_delta_global=0.05, rules=("min_delta",))
    s = Scan(runs, smoothed, policy, {"global": 1.0, "weekly": 1.01}, None, set())
    scan_together([s])
    applied = [j for j in range(10) if s.route[j] == 1]
    assert applied == [3, 6, 9]  # +0.02 a day, threshold 0.05: every third day
    assert s.live_before[4]["global"] == pytest.approx(1.06) and s.live_after(9)["global"] == pytest.approx(1.18)
