"""The Scoring weights tab in a real browser: the running sum, modify-and-apply, and accessibility.

The tab is served by uvicorn on a free loopback port and driven in Chromium; a screenshot goes
to ``artifacts/weights-tab.png``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from calibration_policy_ui.tabs.scoring_weights import create_weights_router

from .browser import ARTIFACTS, assert_accessible, chromium_page, needs_chromium, serving
from .test_weights import EQUAL, Tab

pytestmark = needs_chromium


@pytest.fixture
def served(tmp_path: Path):
    tab = Tab(tmp_path / "data")
    app = FastAPI()
    app.include_router(
        create_weights_router(
            weights_path=tab.weights,
            trades_path=tab.trades,
            secret="browser-test",
            current_user=lambda request: "ana",
            **tab.dirs(),
        ),
        prefix="/calibration",
    )
    with serving(app) as url:
        yield f"{url}/calibration/weights/", tab


@pytest.fixture
def page():
    with chromium_page() as page:
        yield page


def test_the_running_sum_follows_the_typed_weights_and_modify_applies(served, page):
    url, tab = served
    page.goto(url)
    page.get_by_role("button", name="Suggest these weights for review").click()
    page.wait_for_url(url)
    assert "Review it as suggestion" in page.locator(".cp-flash").inner_text()
    page.locator("summary", has_text="Modify the weights before applying").click()
    form = page.locator("form[data-cp-weights]")
    total, hint = form.locator("output[data-cp-weights-sum]"), form.locator("[data-cp-weights-hint]")
    assert total.inner_text() == "1.0000" and hint.inner_text() == "(adds up to 1)"
    form.get_by_label("Wallet").fill("0.6")
    assert total.inner_text() != "1.0000" and hint.inner_text() == "(must add up to exactly 1)"
    for factor, value in {"wallet": "0.4", "cluster": "0.3", "token": "0.1", "context": "0.2"}.items():
        form.get_by_label(factor.capitalize()).fill(value)
    assert total.inner_text() == "1.0000" and hint.inner_text() == "(adds up to 1)"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "weights-tab.png"), full_page=True)
    form.get_by_role("button", name="Apply these weights").click()
    page.wait_for_url(url)
    assert page.locator(".cp-flash").inner_text().startswith("Modified and approved: the weights are live now")
    assert tab.live() == {"wallet": 0.4, "cluster": 0.3, "token": 0.1, "context": 0.2} != EQUAL
    shown = page.locator("#cp-w-current tbody tr[data-factor=wallet] [data-value]").get_attribute("data-value")
    assert float(shown) == 0.4


def test_the_tab_has_no_serious_accessibility_problems(served, page):
    url, _ = served
    page.goto(url)
    page.get_by_role("button", name="Suggest these weights for review").click()
    page.wait_for_url(url)
    page.locator("summary", has_text="Modify the weights before applying").click()
    assert_accessible(page, "the Scoring weights tab")
