"""A third party's domain, installed with pip as a real package, works on every surface (issue 24, item 10).

``tests/packages/cp_quote_spreads`` is a plugin as its author would publish it: quote-spread markups in
basis points per venue, a source, a rule with options and a smoother, written only against
``calibration_policy.plugin`` and found through the ``calibration_policy`` entry point. pip installs a
temporary copy of it into a folder of its own; every command then runs as its user runs it — in a
subprocess, from a folder outside the repository, with that folder on PYTHONPATH — through the Python API,
the CLI (update, status, history, explain, review, roll back, replay, tune), the permissions and
``calibration-policy serve`` in Chromium at a desktop's and a phone's size.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import warm

from ..calibration_policy.test_hints import command_server, environment
from .browser import ARGS, CHROMIUM, needs_chromium

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tests" / "packages" / "cp_quote_spreads"
START = {"global": 1.40, "nyse": 1.10, "arca": 1.60, "bzx": 1.85}  # the live markups in bp before any update
POLICY = """\
domain = "quote_spreads"
require_approval = true
smoothing = "trimmed_mean"
smoothing_window_days = 5
rules = ["min_sample_size", "min_vega_sum", "max_widen_bp", "min_delta"]
min_sample_size = 500
min_vega_sum = 10000000
min_delta_global = 0.05
min_delta_band = 0.05
apply_scopes = "all"

[smoothing_options]
trim = 1

[rule_options.max_widen_bp]
max_widen_bp = 0.5

[permissions.roles]
viewer = ["view"]
desk = ["*"]

[permissions.users]
ana = ["desk"]
bo = ["desk"]
vic = ["viewer"]
"""
# The host's daily job, through the Python API: its own calibration handed to run_update with the domain's
# target, one run per market day.
API_SCRIPT = """\
import json, sys
from datetime import UTC, date, datetime
from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions, run_update
from cp_quote_spreads.domain import spreads_target
from cp_quote_spreads.source import VenueFitSource

policy = CalibrationUpdatePolicy.load("data/calibration_policy.toml")
context = Context.build(policy=policy, data_dir="data", actor="ana")  # the job's folders, policy and name, once
for day in sys.argv[1:]:
    when = date.fromisoformat(day)
    outcome = run_update(
        VenueFitSource().calibrate("SPY", when),
        underlying="SPY",
        source="venue-fit",
        target=spreads_target("SPY", "data/config/quote_spreads_SPY.json"),
        context=context,
        options=UpdateOptions(timestamp=datetime(when.year, when.month, when.day, 21, tzinfo=UTC)),
    )
    print(outcome.route, outcome.summary())
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package installed by pip, from a temporary copy of its folder, into a target folder of its own."""
    where = tmp_path_factory.mktemp("quote-spreads")
    shutil.copytree(PACKAGE, where / "source", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run(
        [*pip, "--no-cache-dir", "--quiet", "--target", str(where / "site"), str(where / "source")],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    dist = where / "site" / "cp_quote_spreads-0.3.0.dist-info"
    assert (dist / "entry_points.txt").read_text().split() == [
        "[calibration_policy]",
        "quote_spreads",
        "=",
        "cp_quote_spreads",
    ]
    assert (dist / "INSTALLER").read_text().strip() == "pip"
    return where / "site"


class Desk:
    """A market maker's folder outside the repository: its data folder, and commands run from there."""

    def __init__(self, folder: Path, site: Path) -> None:
        assert REPO not in folder.parents
        self.folder, self.env = folder, environment(PYTHONPATH=str(site))
        self.data = folder / "data"
        (self.data / "config").mkdir(parents=True)
        self.live_file.write_text(json.dumps(START, indent=2))
        (self.data / "calibration_policy.toml").write_text(POLICY)

    @property
    def live_file(self) -> Path:
        return self.data / "config" / "quote_spreads_SPY.json"

    def live(self) -> dict[str, float]:
        return json.loads(self.live_file.read_text())

    def api(self, *days: str) -> list[str]:
        """The host's job records and decides one run per day; returns each run's route and summary."""
        return self._run([sys.executable, "-c", API_SCRIPT, *days]).splitlines()

    def cli(self, *args: str, code: int = 0) -> str:
        return self._run(["calibration-policy", *args, "--data", "data"], code)

    def _run(self, argv: list[str], code: int = 0) -> str:
        done = warm.run(argv, cwd=self.folder, env=self.env, timeout=300)  # PYTHONPATH: the pip-installed plugin
        output = done.stdout + done.stderr
        assert done.returncode == code, f"{argv[:4]} exited {done.returncode}, not {code}:\n{output}"
        return output


@pytest.fixture
def desk(tmp_path: Path, site: Path) -> Desk:
    return Desk(tmp_path / "desk", site)


def pending(desk: Desk) -> list[dict]:
    return json.loads(desk.cli("review", "list", "--status", "pending", "--json"))


def test_the_api_and_every_command_speak_the_domain_and_govern_its_file(desk: Desk, data_digest):
    routes = desk.api("2025-12-01", "2025-12-02", "2025-12-03")
    assert routes[0].startswith("propose SPY 2025-12-01 21:00 UTC (venue-fit): Waiting for approval:"), routes
    assert "660 fills (minimum 500); notional 16,500,000 USD (minimum 10,000,000 USD)" in routes[0]
    assert desk.live() == START  # a person approves first

    said = desk.cli("update", "-u", "SPY", "--source", "venue-fit", "--date", "2025-12-04", "--actor", "ana")
    assert said.startswith("SPY 2025-12-04 21:00 UTC (venue-fit): ")
    explained = desk.cli("explain")
    assert "“Trimmed mean” (trim 1)" in explained and "at least 500 fills in the sample" in explained
    assert 'It also checks "Widening capped"' in explained and "(largest widening 0.5 bp)" in explained

    waiting = pending(desk)
    assert [w["domain"] for w in waiting] == ["quote_spreads"]
    first = waiting[0]["suggestion_id"]
    shown = desk.cli("review", "show", first)
    assert "Live when suggested: Global 1.4000, NYSE Arca 1.6000, Cboe BZX 1.8500, NYSE 1.1000" in shown

    # A viewer may look, not act: refused in a sentence, exit 2, nothing in the data folder changes.
    before = data_digest(desk.data)
    refused = desk.cli("review", "approve", first, "--by", "vic", code=2)
    assert "vic may not approve changes to the spread markups (missing permission: approve on quote_spreads)" in (
        refused
    )
    desk.cli("rollback", "original", "-u", "SPY", "--by", "vic", code=2)
    desk.cli("update", "-u", "SPY", "--source", "venue-fit", "--date", "2025-12-05", "--actor", "vic", code=2)
    assert data_digest(desk.data) == before

    approved = desk.cli("review", "approve", first, "--by", "bo", "--notes", "NYSE fills were picked off")
    assert f"Suggestion {first} approved by bo; live now Global " in approved
    assert desk.live() == pytest.approx(waiting[0]["values"])
    status = desk.cli("status", "SPY")
    assert "Current Quote spread markups for SPY" in status and "Spread markup (bp)" in status
    assert "NYSE Arca" in status and "Cboe BZX" in status and "vega" not in status.lower()

    desk.api("2025-12-08", "2025-12-09")
    modified = desk.cli("review", "modify", "pending", "-u", "SPY", "--set", "nyse=1.12", "--by", "ana")
    assert "modified by ana; live now" in modified and desk.live()["nyse"] == 1.12
    for stale in pending(desk):
        rejected = desk.cli("review", "reject", stale["suggestion_id"], "--by", "bo", "--notes", "superseded")
        assert "rejected by bo; the live values are unchanged." in rejected

    history = desk.cli("history", "SPY")
    assert "Last 6 calibration runs for SPY" in history and "venue-fit" in history
    changes = desk.cli("history", "--changes")
    assert "quote_spreads: approved" in changes and "bo" in changes

    desk.cli("rollback", "original", "-u", "SPY", "--by", "ana", "--notes", "back to the desk's own markups")
    assert desk.live() == START
    assert sorted(p.name for p in desk.folder.iterdir()) == ["data"]  # nothing written beside the data folder


def test_replay_and_tune_try_another_policy_over_its_runs(desk: Desk):
    desk.api(*(f"2025-12-{day:02d}" for day in (1, 2, 3, 4, 5, 8, 9, 10, 11, 12)))
    # The candidate: no approval needed, and a larger change before anything moves.
    candidate = desk.folder / "candidate.toml"
    candidate.write_text(POLICY.replace("require_approval = true", "require_approval = false"))
    replay = json.loads(desk.cli("replay", "--policy", str(candidate), "-u", "SPY", "--json"))
    assert replay["runs"] == 10 and replay["applies"] >= 1 and replay["policy"]["smoothing"] == "trimmed_mean"

    tuned = desk.folder / "tuned.toml"
    said = desk.cli(
        "tune",
        "--policy",
        str(candidate),
        "-u",
        "SPY",
        "--param",
        "min_delta_global=0.01:0.2",
        "--param",
        "rule_options.max_widen_bp.max_widen_bp=0.1:1",
        "--n",
        "9",
        "--out",
        str(tuned),
    )
    assert "Replayed 9 candidates (grid)." in said and tuned.is_file()
    assert 'domain = "quote_spreads"' in tuned.read_text() and 'smoothing = "trimmed_mean"' in tuned.read_text()


def in_first_screen(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    return box is not None and 0 <= box["y"] and box["y"] + box["height"] <= page.viewport_size["height"]


def with_chromium(test):
    """The browser tests' marks, on this one test only (the commands above need no browser)."""
    for mark in needs_chromium:
        test = mark(test)
    return test


@with_chromium
def test_the_panel_shows_the_domain_in_its_words_and_approves_at_both_sizes(desk: Desk):
    playwright = pytest.importorskip("playwright.sync_api")
    assert desk.api("2025-12-01")[0].startswith("propose")
    (suggested,) = [waiting["values"] for waiting in pending(desk)]
    argv = ["calibration-policy", "serve", "--data", "data", "--single-user", "ana"]
    with command_server(argv, cwd=desk.folder, env=desk.env, page="/calibration/?underlying=SPY") as (base, _):
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1366, "height": 768})
                page.goto(f"{base}/calibration/?underlying=SPY")
                live = page.locator("#cp-now").inner_text()
                assert "Live Quote spread markups" in live and "Spread markup (bp)" in live
                assert "NYSE Arca\t1.600" in live and "Cboe BZX\t1.850" in live
                latest = page.locator("#cp-latest").inner_text()
                assert "Enough fills in the sample" in latest and "notional 16,500,000 USD" in latest
                assert "Widening capped" in latest  # the rule as its plugin labelled it
                assert latest.index("Approve or reject the suggestion waiting") < latest.index("Force-apply")
                assert in_first_screen(page, "#cp-review-link")
                words = page.locator("main").inner_text().lower()
                assert "vega" not in words and "iv multiplier" not in words and "options" not in words
                page.close()

                phone = browser.new_page(viewport={"width": 390, "height": 844})
                phone.goto(f"{base}/calibration/?underlying=SPY")
                review = phone.locator("#cp-review-link")
                box = review.bounding_box()
                assert box is not None and box["y"] < 2 * 844, f"the review link is {box} down the phone's page"
                review.click()  # the link lands on the suggestion's own form
                assert in_first_screen(phone, "button:text('Approve and apply')")
                approve = phone.get_by_role("button", name="Approve and apply")
                approve.click()
                phone.wait_for_url("**/calibration/?underlying=SPY#calibration-panel")
                assert phone.get_by_role("status").inner_text().startswith("Approved suggestion")
                assert desk.live() == pytest.approx(suggested) and suggested != START
                scroll_width = phone.evaluate("document.documentElement.scrollWidth")
                assert scroll_width <= 390, f"the phone's page is {scroll_width} px wide"

                # "Applied: suggestion <a long id> approved by …" once widened the runs table past a laptop's card
                page = browser.new_page(viewport={"width": 1366, "height": 768})
                page.goto(f"{base}/calibration/?underlying=SPY")
                history = page.locator("#cp-history .cp-scroll")
                assert "Applied: suggestion" in history.inner_text()
                assert history.evaluate("e => e.scrollWidth <= e.clientWidth"), "the Reason column is cut off"
            finally:
                browser.close()
