"""The lab form is generated from the policy's rules and their option models: a plugin rule with options gets
its own inputs (label, unit), submitting them changes that rule's options in the tried policy, and a bad
value is one sentence naming the field, a 400 and nothing written (issue 24, item 3)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from cp_quote_spreads.domain import QuoteSpreadsDomain
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from calibration_policy import plugins as plugins_module
from calibration_policy import record_calibration_result
from calibration_policy.plugin import JsonFileTarget, Rule, RuleVerdict, TargetFactory, hookimpl
from calibration_policy.plugins import get_plugin_manager
from calibration_policy_ui.app import create_app

from .conftest import Host, text_of


class WidenOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_widen_bp: float = Field(
        0.5, ge=0, description="Largest widening in one update", json_schema_extra={"unit": "bp"}
    )


def max_widen(ctx) -> RuleVerdict:
    limit = ctx.options.max_widen_bp
    widest = max((new - ctx.current.get(s, new) for s, new in ctx.proposed.items()), default=0.0)
    return RuleVerdict("max_widen", widest <= limit, f"widest {widest:.2f} bp (limit {limit:g} bp)", {"widest": widest})


class SpreadsPlugin:
    def __init__(self, root: Path) -> None:
        self.root = root

    @hookimpl
    def register_domains(self, register):
        register(QuoteSpreadsDomain())

    @hookimpl
    def register_rules(self, register):
        register(Rule("max_widen", max_widen, "Gradual widening", options=WidenOptions))

    @hookimpl
    def register_targets(self, register):
        def live(underlying: str, path=None) -> JsonFileTarget:
            name = f"quote_spreads_{underlying}"
            return JsonFileTarget(path or self.root / "config" / f"{name}.json", name=name)

        register(TargetFactory("quote_spreads", live))


@pytest.fixture
def spreads(tmp_path: Path):
    plugins_module.reset_plugin_manager()
    root = tmp_path / "data"
    get_plugin_manager().register(SpreadsPlugin(root), name="quote-spreads")
    (root / "config").mkdir(parents=True)
    (root / "config" / "quote_spreads_SPY.json").write_text(json.dumps({"nyse": 1.4}))
    (root / "calibration_policy.toml").write_text(
        'domain = "quote_spreads"\nrules = ["min_sample_size", "max_widen", "min_delta"]\nmin_sample_size = 500\n'
        "min_delta_global = 0.05\n[rule_options.max_widen]\nmax_widen_bp = 0.1\n"
    )
    for day, markup in enumerate([1.40, 1.90, 2.50, 3.20, 4.00]):  # a venue widening day after day
        record_calibration_result(
            {"markups": {"nyse": markup}, "fills": 900, "notional_usd": 40_000_000.0},
            "SPY",
            "venue-fit",
            history_dir=root / "calibration_runs",
            domain="quote_spreads",
            timestamp=datetime(2025, 9, 1, 20, tzinfo=UTC) + timedelta(days=day),
        )
    yield root
    plugins_module.reset_plugin_manager()


def _files(root: Path) -> dict[Path, bytes]:
    """The runs, live configs, policy and proposals (the store's read index is a cache, not a record)."""
    return {p: p.read_bytes() for p in [*root.rglob("*.json"), *root.rglob("*.toml")]}


def _candidate(html: str) -> dict:
    return json.loads(unescape(re.search(r'name="candidate" value="([^"]+)"', html).group(1)))


def test_a_plugin_rule_gets_its_own_inputs_and_they_change_its_options(spreads: Path):
    client = TestClient(create_app(spreads))
    page = client.get("/calibration/lab")
    form = text_of(re.search(r'<form method="get".*?</form>', page.text, re.S).group(0))
    assert "Gradual widening Largest widening in one update (bp)" in form
    assert 'name="max_widen.max_widen_bp" inputmode="decimal" value="0.1"' in page.text
    assert "Fills at least" in form and "Any value (bp)" in form and "vega" not in form.lower()
    before = _files(spreads)
    tried = client.get("/calibration/lab", params={"underlying": "SPY", "max_widen.max_widen_bp": "1"})
    assert tried.status_code == 200
    assert _candidate(tried.text)["rule_options"]["max_widen"] == {"max_widen_bp": 1.0}
    words = text_of(tried.text)
    assert re.search(r"the live policy holds: .*widest 0\.\d+ bp \(limit 0\.1 bp\).*; the candidate applies", words)
    assert _files(spreads) == before  # a replay writes nothing


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (
            "-0.5",
            "Largest widening in one update (max_widen.max_widen_bp): input should be greater than or equal to 0.",
        ),
        ("wide", "Largest widening in one update (max_widen.max_widen_bp) must be a number, not 'wide'."),
        ("nan", "Largest widening in one update (max_widen.max_widen_bp) must be a finite number, not 'nan'."),
    ],
)
def test_a_bad_option_is_one_sentence_naming_the_field_and_nothing_is_written(spreads: Path, value, says):
    client = TestClient(create_app(spreads))
    before = _files(spreads)
    answer = client.get("/calibration/lab", params={"underlying": "SPY", "max_widen.max_widen_bp": value})
    assert answer.status_code == 400
    assert re.search(r'role="alert"><p>([^<]*)', answer.text).group(1) == says.replace("'", "&#39;")
    assert "Propose the candidate" not in answer.text
    assert _files(spreads) == before


def test_the_iv_form_offers_the_lab_rules_and_filling_one_adds_it(host: Host, client):
    for day in range(6):
        host.record(day=day, global_m=1.0 + 0.012 * day, weekly=1.0 + 0.01 * day, monthly=1.0 + 0.011 * day)
    page = client.get("/calibration/lab").text
    for name, value in (("min_delta_global", "0.03"), ("min_sample_size", "150"), ("cooldown_period.days", "")):
        assert (
            f'name="{name}" inputmode="{"numeric" if name == "min_sample_size" else "decimal"}" value="{value}"' in page
        )
    assert "Cooldown (optional: fill it in to add the rule)" in text_of(page)
    tried = client.get("/calibration/lab", params={"underlying": "SPY", "cooldown_period.days": "2", "up": "9"})
    candidate = _candidate(tried.text)
    assert candidate["rules"][-1] == "cooldown_period" and candidate["rule_options"]["cooldown_period"] == {"days": 2.0}
    assert "min_delta_directional" not in candidate["rules"]  # a blank optional rule is not added
    bad = client.get("/calibration/lab", params={"underlying": "SPY", "min_sample_size": "150.5"})
    assert bad.status_code == 400
    assert "Options at least (min_sample_size) must be a whole number, not &#39;150.5&#39;." in bad.text
