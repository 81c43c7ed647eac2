"""A domain names its own evidence: a quote-spreads plugin counts fills and a notional in USD, and no
surface (rule verdicts, explain, the panel's checklist, sample line and settings, the lab form) says
options or vega for it (issue 24, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cp_quote_spreads.domain import QuoteSpreadsDomain
from fastapi.testclient import TestClient

from calibration_policy import CalibrationUpdatePolicy, Context, record_calibration_result
from calibration_policy import plugins as plugins_module
from calibration_policy.cli import main
from calibration_policy.plugin import JsonFileTarget, Rule, RuleVerdict, TargetFactory, hookimpl
from calibration_policy.plugins import get_plugin_manager
from calibration_policy_ui.app import create_app

from .conftest import text_of


class SpreadsPlugin:
    @hookimpl
    def register_domains(self, register):
        register(QuoteSpreadsDomain())

    @hookimpl
    def register_rules(self, register):
        def max_widen_bp(ctx):
            return RuleVerdict("max_widen_bp", True, "no venue widens by more than 0.5 bp", counts_in_reason=False)

        register(Rule("max_widen_bp", max_widen_bp, "Widening capped", "No venue widens by more than 0.5 bp."))

    @hookimpl
    def register_targets(self, register):
        register(TargetFactory("quote_spreads", lambda underlying, path=None: JsonFileTarget(path, name="spreads")))


@pytest.fixture
def data(tmp_path: Path):
    plugins_module.reset_plugin_manager()
    get_plugin_manager().register(SpreadsPlugin(), name="quote-spreads")
    root = tmp_path / "data"
    (root / "config").mkdir(parents=True)
    (root / "config" / "quote_spreads_SPY.json").write_text(json.dumps({"global": 1.4, "nyse": 1.1}))
    (root / "calibration_policy.toml").write_text(
        'domain = "quote_spreads"\nmin_sample_size = 500\nmin_vega_sum = 10000000\n'
        'rules = ["min_sample_size", "min_vega_sum", "max_widen_bp", "min_delta"]\n'
    )
    record_calibration_result(
        {"markups": {"global": 1.5, "nyse": 1.2}, "fills": 900, "notional_usd": 2_000_000.0},
        "SPY",
        "venue-fit",
        history_dir=root / "calibration_runs",
        domain="quote_spreads",
    )
    yield root
    plugins_module.reset_plugin_manager()


def test_the_rule_and_explain_say_notional_in_usd(data: Path, capsys):
    from calibration_policy.decide import RuleContext
    from calibration_policy.default_plugins.rules import min_vega_sum

    policy = CalibrationUpdatePolicy.load(data / "calibration_policy.toml")
    verdict = min_vega_sum(RuleContext({}, {}, policy, {"vega_sum": 2_000_000.0}))
    assert verdict.text == "notional too low (2,000,000 USD, minimum 10,000,000 USD)"
    assert verdict.needs == "needs 8,000,000 more USD"
    assert main(["explain", "--data", str(data)]) == 0
    said = capsys.readouterr().out
    assert "at least 500 fills in the sample and a notional of at least 10,000,000 USD" in said
    assert "vega" not in said and "options" not in said


def test_the_panel_and_the_lab_speak_of_fills_and_notional(data: Path):
    client = TestClient(create_app(data))
    page = text_of(client.get("/calibration/", params={"underlying": "SPY"}).text)
    assert "Enough fills in the sample" in page and "Enough notional" in page
    assert "900 fills, notional 2,000,000 USD" in page
    assert "Fewest fills a run needs" in page and "Least notional a run needs" in page
    assert "their notional is at least 10,000,000 USD" in page
    lab = text_of(client.get("/calibration/lab").text)
    assert "Fills at least" in lab and "Notional at least" in lab
    for words in (page, lab):
        assert "vega" not in words.lower() and "options" not in words.lower()


def test_the_checklist_names_a_plugin_rule_by_its_label(data: Path):
    """The panel listed the plugin's rule as "Max widen bp", its code, beside the label it registered."""
    from calibration_policy import load_recent_calibration_history, run_update
    from calibration_policy_ui.views import checklist

    policy = CalibrationUpdatePolicy.load(data / "calibration_policy.toml")
    run_update(
        {"markups": {"global": 1.5, "nyse": 1.2}, "fills": 900, "notional_usd": 20000000.0},
        underlying="SPY",
        source="venue-fit",
        target=JsonFileTarget(data / "config" / "quote_spreads_SPY.json", name="spreads"),
        context=Context.build(
            policy=policy, history_dir=data / "calibration_runs", archive_dir=data / "config_archive"
        ),
    )
    run = load_recent_calibration_history("SPY", history_dir=data / "calibration_runs")[-1]
    labels = [check.label for check in checklist(run)]
    assert labels == ["Enough fills in the sample", "Enough notional", "Widening capped", "Change large enough"]


def test_the_chart_picker_and_the_latest_run_speak_of_spread_markups_by_their_scope_labels(data: Path):
    client = TestClient(create_app(data))
    html = client.get("/calibration/", params={"underlying": "SPY"}).text
    assert '<label for="cp-scope">Spread markup (bp)</label>' in html
    assert ">Multiplier<" not in html
    assert "This run recommended Global 1.500" in text_of(html)
    bad = client.get("/calibration/", params={"underlying": "SPY", "scope": "arca"})
    assert bad.status_code == 400
    assert "There is no spread markup 'arca' to chart; choose one of: global, nyse." in text_of(bad.text)
