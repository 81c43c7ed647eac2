"""Evidence gates: a rule that says it gates evidence keeps the runs it fails out of the smoothing, in the live
path and in the replay alike; the built-in sample-size and vega rules go through the same declaration; a
gate that raises or answers nonsense stops with a sentence naming its plugin and the run, nothing live."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cp_quote_spreads.domain import QuoteSpreadsDomain
from pydantic import BaseModel, ConfigDict, Field

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions
from calibration_policy.engine import EngineError
from calibration_policy.lab import compare
from calibration_policy.pipeline import run_update
from calibration_policy.plugin import JsonFileTarget, Rule, RuleVerdict, hookimpl
from calibration_policy.plugins import get_plugin_manager, get_rule
from calibration_policy.replay import load_history, replay

T0 = datetime(2025, 9, 1, 20, tzinfo=UTC)


class NotionalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_usd: float = Field(10_000_000.0, ge=0, description="Least notional traded on the day.")


def min_notional(ctx) -> RuleVerdict:
    notional, least = ctx.evidence.get("vega_sum"), ctx.options.min_usd
    if notional is None:
        return RuleVerdict("min_notional", False, "the notional traded is unknown", {"minimum": least})
    ok = notional >= least
    return RuleVerdict(
        "min_notional", ok, f"notional {notional:,.0f} USD (minimum {least:,.0f} USD)", {"usd": notional}
    )


def notional_per_fill(ctx) -> RuleVerdict:
    """A plugin's bug: a day without fills divides by zero."""
    per_fill = ctx.evidence["vega_sum"] / ctx.evidence["sample_size"]
    return RuleVerdict("notional_per_fill", per_fill >= 1000, f"{per_fill:,.0f} USD a fill", {"per_fill": per_fill})


class SpreadsPlugin:
    @hookimpl
    def register_domains(self, register):
        register(QuoteSpreadsDomain())

    @hookimpl
    def register_rules(self, register):
        register(Rule("min_notional", min_notional, "Enough notional", options=NotionalOptions, gates_evidence=True))
        register(Rule("notional_per_fill", notional_per_fill, "Notional per fill", gates_evidence=True))
        register(Rule("says_yes", lambda ctx: "yes", "Says yes", gates_evidence=True))


@pytest.fixture
def spreads(fresh_plugins):
    get_plugin_manager().register(SpreadsPlugin(), name="quote-spreads")
    yield


# (day, NYSE markup in bp, fills, notional USD): day 2 is a thin afternoon whose fit is wild
DAYS = [
    (0, 1.50, 900, 42_000_000.0),
    (1, 1.56, 840, 38_000_000.0),
    (2, 4.80, 610, 1_200_000.0),
    (3, 1.62, 880, 40_500_000.0),
]


def policy(**changes) -> CalibrationUpdatePolicy:
    settings = {
        "domain": "quote_spreads",
        "rules": ("min_sample_size", "min_notional", "min_delta"),
        "min_sample_size": 500,
        "min_delta_global": 0.05,
        "smoothing": "rolling_median",
        "rule_options": {"min_notional": {"min_usd": 5_000_000.0}},
    }
    return CalibrationUpdatePolicy(**{**settings, **changes})


def record_live(root: Path, rules: CalibrationUpdatePolicy, days=DAYS) -> Path:
    live = root / "quote_spreads_SPY.json"
    if not live.exists():
        root.mkdir(parents=True, exist_ok=True)
        live.write_text(json.dumps({"nyse": 1.5}))
    for day, markup, fills, notional in days:
        run_update(
            {"markups": {"nyse": markup}, "fills": fills, "notional_usd": notional},
            underlying="SPY",
            source="venue-fit",
            target=JsonFileTarget(live, name="quote_spreads_SPY"),
            options=UpdateOptions(timestamp=T0 + timedelta(days=day)),
            context=Context.build(
                policy=rules, history_dir=root / "runs", archive_dir=root / "archive", suggestions_dir=root / "sugg"
            ),
        )
    return live


def test_a_plugin_gate_keeps_its_failing_run_out_of_the_live_smoothing(spreads, tmp_path):
    gated = record_live(tmp_path / "gated", policy())
    kept = record_live(tmp_path / "kept", policy(smoothing_skips_thin_runs=False))
    gated_runs, kept_runs = load_history(tmp_path / "gated" / "runs"), load_history(tmp_path / "kept" / "runs")
    # day 3's window: days 0, 1 and 3 (median 1.56); with the thin day 2 it would be the median of four, 1.59
    assert gated_runs[3].smoothed == {"nyse": 1.56}
    assert kept_runs[3].smoothed == {"nyse": pytest.approx(1.59)}
    assert "notional 1,200,000 USD (minimum 5,000,000 USD)" in gated_runs[2].applied_reason
    # day 3 moves 0.06 from the live 1.50 either way, so it applies what each smoothing said
    assert json.loads(gated.read_text()) == {"nyse": 1.56}
    assert json.loads(kept.read_text()) == {"nyse": pytest.approx(1.59)}


def test_the_replay_and_the_lab_leave_the_same_runs_out(spreads, tmp_path):
    rules = policy()
    record_live(tmp_path, rules)
    runs = load_history(tmp_path / "runs")
    result = replay(runs, rules, start_values={"nyse": 1.5})
    assert result.differences == []
    assert [d.smoothed for d in result.decisions] == [run.smoothed for run in runs]
    lab = compare(
        runs, {"live": rules, "keeps thin runs": policy(smoothing_skips_thin_runs=False)}, start_values={"nyse": 1.5}
    )
    assert lab.results["live"].decisions[3].smoothed == {"nyse": 1.56}
    assert lab.results["keeps thin runs"].decisions[3].smoothed == {"nyse": pytest.approx(1.59)}


def test_a_tighter_gate_option_leaves_more_runs_out(spreads, tmp_path):
    record_live(tmp_path, policy())
    runs = load_history(tmp_path / "runs")
    strict = policy(rule_options={"min_notional": {"min_usd": 40_000_000.0}})  # day 1's 38,000,000 fails too
    smoothed = [d.smoothed["nyse"] for d in replay(runs, strict, start_values={"nyse": 1.5}).decisions]
    assert smoothed[1] == pytest.approx(1.53)  # a run always counts in its own window
    assert smoothed[3] == pytest.approx((1.50 + 1.62) / 2)  # days 0 and 3 only


def test_the_built_in_rules_are_gates_and_an_unknown_figure_fails_the_gate(spreads, tmp_path):
    assert get_rule("min_sample_size").gates_evidence and get_rule("min_vega_sum").gates_evidence
    assert not get_rule("min_delta").gates_evidence and not get_rule("bounds").gates_evidence
    built_in = policy(rules=("min_sample_size", "min_vega_sum", "min_delta"), min_vega_sum=5_000_000.0, rule_options={})
    # day 1: the venue's feed lost the notional; day 2: too few fills
    record_live(
        tmp_path, built_in, [(0, 1.50, 900, 42e6), (1, 4.8, 700, None), (2, 3.9, 120, 9e6), (3, 1.62, 880, 40e6)]
    )
    runs = load_history(tmp_path / "runs")
    assert runs[1].vega_sum is None and "the notional of the sample is unknown" in runs[1].applied_reason
    assert "too few fills in the sample (120, minimum 500)" in runs[2].applied_reason
    assert runs[3].smoothed == {"nyse": pytest.approx(1.56)}  # days 0 and 3: neither thin day counts
    assert replay(runs, built_in, start_values={"nyse": 1.5}).differences == []


def test_a_gate_that_raises_names_its_plugin_and_the_run_and_nothing_goes_live(spreads, tmp_path):
    record_live(tmp_path, policy(), DAYS[:1] + [(1, 1.55, 0, 0.0)])  # a venue closed for the day: no fills
    live = tmp_path / "quote_spreads_SPY.json"
    before = live.read_bytes()
    zero = load_history(tmp_path / "runs")[1].run_id
    with pytest.raises(EngineError) as caught:
        record_live(
            tmp_path, policy(rules=("notional_per_fill", "min_delta"), rule_options={}), [(2, 1.7, 900, 41_000_000.0)]
        )
    assert str(caught.value) == (
        f"Rule 'notional_per_fill' of plugin quote-spreads failed while choosing the runs the smoothing counts "
        f"run {zero}: ZeroDivisionError: float division by zero."
    )
    assert live.read_bytes() == before and not (tmp_path / "archive").exists()
    runs = load_history(tmp_path / "runs")
    says = f"Rule 'says_yes' of plugin quote-spreads returned str, not a RuleVerdict, for run {runs[0].run_id}."
    with pytest.raises(EngineError, match=re.escape(says)):
        replay(runs, policy(rules=("says_yes", "min_delta"), rule_options={}), start_values={"nyse": 1.5})


def test_a_gate_may_not_read_the_live_values_history():
    with pytest.raises(ValueError, match="Rule 'calm' gates evidence, so it may read only the run's own evidence"):
        Rule("calm", min_notional, gates_evidence=True, evidence=("last_applied_at",))


def test_explain_says_which_runs_the_gates_leave_out(spreads):
    said = policy().explain()
    assert 'Runs that fail "Enough notional", or lack enough data, are recorded but left out of the smoothing.' in said
    assert "left out of the smoothing" not in policy(smoothing_skips_thin_runs=False).explain()
