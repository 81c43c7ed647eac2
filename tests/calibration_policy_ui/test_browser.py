"""The seed's smoke test in a real browser: the agent's app on uvicorn, the panel in Chromium.

Record calibrations, open the panel, check the latest run's badge and reason and that the
multipliers shown are the config file's; force-apply through the confirmation and see the
table change; run axe-core for accessibility. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .browser import ARTIFACTS, assert_accessible, chromium_page, needs_chromium, serving

pytestmark = needs_chromium


@pytest.fixture
def page():
    with chromium_page() as page:
        yield page


def live_values(data: Path) -> dict[str, float]:
    config = json.loads((data / "config" / "vol_surface_SPY.json").read_text())
    return {"global": config["iv_multiplier"], **{k: v["iv_multiplier"] for k, v in config["bands"].items()}}


def shown_values(page) -> dict[str, float]:
    rows = page.locator("#cp-current tbody tr")
    return {
        rows.nth(i).get_attribute("data-scope"): float(rows.nth(i).locator("[data-value]").get_attribute("data-value"))
        for i in range(rows.count())
    }


def test_panel_smoke_in_a_real_browser(served, page):
    base, data = served
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{base}/calibration/?underlying=SPY")

    latest = page.locator("#cp-latest")
    assert latest.locator(".cp-badge").inner_text().strip() == "Not applied"
    assert (
        latest.locator(".cp-status .cp-reason")
        .inner_text()
        .startswith("Not applied: too few options in the sample (90, minimum 150)")
    )
    assert "(needs 60 more options)" in latest.locator(".cp-check-fail").first.inner_text()
    assert "Failed" in latest.locator(".cp-check-fail").first.inner_text()
    before = shown_values(page)
    assert before == live_values(data)
    assert page.locator("nav[aria-label=Main] a[aria-current=page]").inner_text() == "Calibration"
    assert page.locator("#cp-history tbody tr").count() == 8
    assert page.locator("svg[role=img] desc").text_content().startswith("Global multiplier over 8 runs")
    assert_accessible(page, "panel")
    page.screenshot(path=str(ARTIFACTS / "panel.png"), full_page=True)

    page.get_by_role("link", name="Force-apply this run's values").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Force-apply the latest calibration for SPY?"
    assert_accessible(page, "confirmation page")
    page.get_by_role("button", name="Force-apply to vol_surface_SPY").click()  # the box is not ticked yet
    assert "/force-apply" in page.url and live_values(data) == before  # the browser held the form back
    page.get_by_label("I understand this overrides the policy").check()
    page.get_by_role("button", name="Force-apply to vol_surface_SPY").click()

    page.wait_for_url("**/calibration/?underlying=SPY")
    assert (
        page.get_by_role("status")
        .inner_text()
        .startswith("Applied calibration from 2025-12-08 21:00 UTC to vol surface (SPY).")
    )
    after = shown_values(page)
    assert after == live_values(data) and after != before
    assert page.locator("#cp-latest .cp-badge").inner_text().strip() == "Applied (forced by user)"
    page.screenshot(path=str(ARTIFACTS / "panel-after-force.png"), full_page=True)


def test_underlying_selector_and_scope_selector_work_without_javascript(served, page):
    base, _ = served
    page.goto(f"{base}/calibration/")
    page.get_by_label("Underlying", exact=True).select_option("QQQ")
    page.locator("form:has(#cp-underlying) button").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Calibration: QQQ"
    page.get_by_label("IV multiplier", exact=True).select_option("weekly")
    page.locator("form:has(#cp-scope) button").click()
    assert "Weekly (3–10d)" in page.locator("#cp-chart-title").inner_text()
    assert_accessible(page, "panel with a band selected")


def test_empty_panel_is_accessible(tmp_path: Path, page):
    from .agent import agent_app_module

    (tmp_path / "data").mkdir()
    with serving(agent_app_module().create_app(tmp_path / "data", secret="s")) as url:
        page.goto(f"{url}/calibration/")
        assert "No calibration has run yet" in page.get_by_role("heading", level=2).first.inner_text()
        assert_accessible(page, "empty panel")
