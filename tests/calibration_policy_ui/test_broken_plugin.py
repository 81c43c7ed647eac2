"""A domain plugin with a bug or a missing part: the panel and the CLI still work for every other domain,
and say in a sentence what is missing for that one (issue 24, bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cp_quote_spreads.domain import QuoteSpreadsDomain
from fastapi.testclient import TestClient

from calibration_policy import plugins as plugins_module
from calibration_policy import record_calibration_result
from calibration_policy.cli import main
from calibration_policy.plugin import JsonFileTarget, TargetFactory, hookimpl
from calibration_policy.plugins import get_plugin_manager
from calibration_policy_ui.app import create_app

from .conftest import text_of


class QuoteSpreads(QuoteSpreadsDomain):
    """The quote-spreads domain registered with no live-config target, and a glossary that raises."""

    @property
    def glossary(self):  # type: ignore[override]
        raise RuntimeError("the venue table is not loaded")


class SpreadsPlugin:
    @hookimpl
    def register_domains(self, register):
        register(QuoteSpreads())


class SpreadsTarget:
    """The live file, for the test whose domain is whole but for its glossary."""

    @hookimpl
    def register_targets(self, register):
        register(TargetFactory("quote_spreads", lambda underlying, path=None: JsonFileTarget(path, name="spreads")))


def record_spreads(data: Path) -> None:
    record_calibration_result(
        {"markups": {"global": 1.5, "nyse": 1.2}, "fills": 900},
        "SPY",
        "venue-fit",
        history_dir=data / "calibration_runs",
        domain="quote_spreads",
    )


@pytest.fixture
def data(tmp_path: Path):
    plugins_module.reset_plugin_manager()
    get_plugin_manager().register(SpreadsPlugin(), name="quote-spreads")
    root = tmp_path / "data"
    root.mkdir()
    (root / "scoring_weights.json").write_text(
        json.dumps({"wallet": 0.25, "cluster": 0.25, "token": 0.25, "context": 0.25})
    )
    yield root
    plugins_module.reset_plugin_manager()


def test_a_broken_glossary_is_one_line_of_the_page_not_a_server_error(data: Path):
    get_plugin_manager().register(SpreadsTarget(), name="quote-spreads-target")
    (data / "calibration_policy.toml").write_text('domain = "quote_spreads"\n')
    (data / "config").mkdir()
    (data / "config" / "quote_spreads_SPY.json").write_text(json.dumps({"global": 1.4, "nyse": 1.1}))
    record_spreads(data)
    client = TestClient(create_app(data))
    page = client.get("/calibration/", params={"underlying": "SPY"})
    assert page.status_code == 200
    words = text_of(page.text)
    assert (
        "The quote_spreads plugin's glossary could not be read (RuntimeError: the venue table is not loaded)" in words
    )
    assert "Calibration run" in words  # the glossary every domain shares is still there


def test_a_domain_without_a_live_config_target_says_so_and_the_other_domains_still_work(data: Path, capsys):
    (data / "calibration_policy.toml").write_text('domain = "quote_spreads"\n')
    record_spreads(data)
    client = TestClient(create_app(data))
    page = client.get("/calibration/", params={"underlying": "SPY"})
    assert 400 <= page.status_code < 500
    assert "Unknown live-config target 'quote_spreads'" in text_of(page.text)
    assert client.get("/calibration/weights").status_code == 200  # another domain's tab
    assert main(["status", "SPY", "--data", str(data)]) == 2
    assert "Unknown live-config target 'quote_spreads'" in capsys.readouterr().err
    (data / "calibration_policy.toml").write_text('domain = "vol_surface"\n')
    assert main(["explain", "--data", str(data)]) == 0  # the CLI for the other domains is unharmed
    assert client.get("/calibration/").status_code == 200
