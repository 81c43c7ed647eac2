"""The Scoring weights tab in a real browser: the running sum, modify-and-apply, and accessibility.

The tab is served by uvicorn on a free loopback port and driven in Chromium; a screenshot goes
to ``artifacts/weights-tab.png``.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI

from calibration_policy_ui.weights import create_weights_router

from .test_weights import EQUAL, Tab

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]


@pytest.fixture
def served(tmp_path: Path):
    import uvicorn

    tab = Tab(tmp_path / "data")
    app = FastAPI()
    app.include_router(create_weights_router(weights_path=tab.weights, trades_path=tab.trades, secret="browser-test",
                                             current_user=lambda request: "ana", **tab.dirs()), prefix="/calibration")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/calibration/weights/", tab
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def page():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser.new_page(viewport={"width": 1200, "height": 900})
        browser.close()


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
    axe = pytest.importorskip("axe_playwright_python.sync_playwright", reason="pip install axe-playwright-python")
    url, _ = served
    page.goto(url)
    page.get_by_role("button", name="Suggest these weights for review").click()
    page.wait_for_url(url)
    page.locator("summary", has_text="Modify the weights before applying").click()
    results = axe.Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, "; ".join(f"{v['id']} ({v['impact']}): {v['help']}" for v in bad)
