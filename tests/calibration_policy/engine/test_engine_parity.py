"""Parity: the engine over N runs decides exactly as N live decisions made one after the other.

Each example records a drawn history through the live path (``run_update``: record, smooth, decide,
apply, archive), then replays the recorded history with the policy that ran: every decision, its
values and its reason must come back exactly (a plugin rule without a batch form included).
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibration_policy import CalibrationUpdatePolicy, Context, RuleVerdict, UpdateOptions
from calibration_policy.hookspecs import hookimpl
from calibration_policy.pipeline import run_update
from calibration_policy.plugins import get_plugin_manager
from calibration_policy.replay import load_history, replay
from calibration_policy.specs import Rule
from calibration_policy.target import JsonFileTarget

from ..conftest import build_result

T0 = datetime(2025, 6, 2, 21, tzinfo=UTC)
SCOPES = ("global", "weekly", "monthly")


def no_big_jump(ctx) -> RuleVerdict:
    """A host's rule, without a batch form: no scope may move more than 12% of its live value at once."""
    jumps = {s: abs(new - ctx.current[s]) / ctx.current[s] for s, new in ctx.proposed.items() if ctx.current.get(s)}
    worst = max(jumps.values(), default=0.0)
    if worst <= 0.12:
        return RuleVerdict("no_big_jump", True, f"largest move {worst:.1%}", {"worst": worst}, counts_in_reason=False)
    return RuleVerdict("no_big_jump", False, f"a move of {worst:.1%} is more than 12% at once", {"worst": worst})


class HostRules:
    @hookimpl
    def register_rules(self, register):
        register(Rule("no_big_jump", no_big_jump, "No big jump", "No scope moves more than 12% at once."))


@pytest.fixture
def host_rule(fresh_plugins):
    get_plugin_manager().register(HostRules(), name="host_rules")
    yield


multiplier = st.floats(0.8, 1.3, allow_nan=False).map(lambda v: round(v, 4))


@st.composite
def histories(draw):
    days, out = 0.0, []
    for _ in range(draw(st.integers(1, 9))):
        days += draw(st.sampled_from([0.0, 0.25, 1.0, 1.0, 1.0, 3.0]))
        out.append(
            (
                days,
                {s: draw(multiplier) for s in SCOPES},
                draw(st.sampled_from([60, 200, 420])),
                draw(st.sampled_from([2500.0, 9000.0, 14000.0])),
            )
        )
    return out


@st.composite
def policies(draw):
    low = draw(st.sampled_from([0.0, 0.01, 0.02, 0.03, 0.05]))
    band = draw(st.sampled_from([0.01, 0.03, 0.06]))
    gate = draw(st.sampled_from(["min_delta", "min_delta_directional"]))
    extras = draw(st.lists(st.sampled_from(["cooldown_period", "stabilization_window", "no_big_jump"]), unique=True))
    rules = ["min_sample_size", "min_vega_sum", "bounds", "max_step"]
    if "stabilization_window" in extras:
        rules.append("stabilization_window")  # before the change gate, as its description says
    rules.append(gate)
    rules += [r for r in extras if r != "stabilization_window"]
    options = {
        "cooldown_period": {"days": draw(st.sampled_from([0.5, 2.0]))},
        "stabilization_window": {"days": draw(st.sampled_from([1.0, 3.0]))},
        "min_delta_directional": {"up": draw(st.sampled_from([0.01, 0.03])), "down": 0.04},
    }
    return CalibrationUpdatePolicy(
        min_delta_global=low,
        min_delta_band=band,
        min_sample_size=draw(st.sampled_from([100, 150, 300])),
        min_vega_sum=draw(st.sampled_from([3000.0, 5000.0])),
        smoothing=draw(st.sampled_from(["ewma", "rolling_median"])),
        smoothing_window_days=draw(st.integers(1, 20)),
        max_step=draw(st.sampled_from([None, 0.06, 0.2])),
        apply_scopes=draw(st.sampled_from(["all", "changed"])),
        smoothing_skips_thin_runs=draw(st.booleans()),
        rules=tuple(rules),
        rule_options={name: value for name, value in options.items() if name in rules},
    )


def record_live(root: Path, history, policy, start) -> None:
    """The live path, one run after the other, as a host calls it every day."""
    live = root / "live.json"
    live.write_text(json.dumps(start))
    target = JsonFileTarget(live)
    for days, recommended, n, vega in history:
        bands = {s: v for s, v in recommended.items() if s != "global"}
        run_update(
            build_result(global_m=recommended["global"], bands=bands, n=n, vega_sum=vega),
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=T0 + timedelta(days=days)),
            context=Context.build(
                policy=policy, history_dir=root / "runs", archive_dir=root / "archive", suggestions_dir=root / "sugg"
            ),
        )


def assert_replay_reproduces(runs, policy, start) -> None:
    result = replay(runs, policy, start_values=start)
    assert result.differences == []
    by_id = {r.run_id: r for r in runs}
    for sim in result.decisions:
        recorded = by_id[sim.run_id].decision
        assert sim.decision.apply == recorded["apply"]
        assert sim.decision.values == recorded["values"]
        assert sim.reason == recorded["reason"]
        assert sim.smoothed == by_id[sim.run_id].smoothed


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories(), policy=policies(), start=st.fixed_dictionaries({s: multiplier for s in SCOPES}))
def test_the_engine_over_n_runs_decides_as_n_live_decisions_one_after_the_other(host_rule, history, policy, start):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        record_live(root, history, policy, start)
        assert_replay_reproduces(load_history(root / "runs"), policy, start)


def lab_policy() -> CalibrationUpdatePolicy:
    return CalibrationUpdatePolicy(
    rules=("min_sample_size", "min_vega_sum", "bounds", "max_step", "stabilization_window", "min_delta",
           "cooldown_period", "no_big_jump"),
    max_step=0.06,
    min_delta_global=0.02,
    rule_options={"stabilization_window": {"days": 2}, "cooldown_period": {"days": 2}},
    )  # fmt: skip


def test_replaying_the_recorded_history_reproduces_every_decision_on_both_stores(host_rule, store_url, tmp_path):
    """Every built-in rule and a host rule without a batch form, over 40 days recorded live on the store in use."""
    import random

    rng = random.Random(7)
    level, history = 1.0, []
    for day in range(40):
        level += rng.gauss(0, 0.03)
        history.append(
            (float(day), {s: round(level + rng.gauss(0, 0.02), 4) for s in SCOPES}, rng.choice([60, 420, 420]), 9000.0)
        )
    start = {s: 1.0 for s in SCOPES}
    policy = lab_policy()
    record_live(tmp_path, history, policy, start)
    runs = load_history(tmp_path / "runs")
    assert len(runs) == 40
    reasons = " ".join(r.applied_reason or "" for r in runs)
    assert "Applied" in reasons and "Not applied" in reasons
    assert_replay_reproduces(runs, policy, start)
