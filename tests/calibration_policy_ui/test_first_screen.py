"""Issue 13 without a browser: the four answers, the changes timeline with undo, plain words,
the panel at home in a host (block names, Bootstrap-like CSS, template reload, ``current_user``)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import jinja2
from fastapi import FastAPI
from fastapi.templating import Jinja2Templates
from fastapi.testclient import TestClient
from pydantic import BaseModel

from calibration_policy import CalibrationUpdatePolicy, hookimpl

from .conftest import Host, csrf_of, text_of


def section(html: str, section_id: str) -> str:
    return html.split(f'id="{section_id}"', 1)[1].split("</section>", 1)[0]


def test_the_first_screen_answers_the_four_questions(host: Host, client):
    host.record(day=0, global_m=1.08)  # applied: the live values went live with this run
    host.record(day=1, global_m=1.09)  # too small a move: not applied
    html = client.get("/calibration/").text
    now = text_of(section(html, "cp-now"))
    assert (
        "Live since 2025-12-01 21:00 UTC (applied automatically by the policy)" in now
    )  # the run's date, not the clock
    assert "Global 1.080" in now and "2025-12-01" not in now.split("Global", 1)[1]  # one date says it for all
    latest = text_of(section(html, "cp-latest"))
    assert "Latest calibration run: 2025-12-02 21:00 UTC Not applied" in latest
    assert re.search(r"Not applied: .*global", latest)  # why, naming what was compared
    assert re.search(r"This run recommended Global 1\.090, smoothed to 1\.0\d\d \(live: 1\.080\)", latest)
    assert latest.index("What decides") < latest.index("Force-apply this run's values")  # the override comes last
    assert "Not set Step size: no limit on the size of one step" in latest  # a rule with no limit checked nothing
    assert (
        "What decides: A new value goes live only when the run has at least 150 options, their total vega is at "
        "least 5,000, the value stays within 0.25–4.00 and the smoothed global or band value (the last 14 days of "
        "runs, averaged with a 7-day half-life) moves at least 0.03 from the live one."
    ) in latest


def test_each_scope_shows_its_own_date_only_when_they_went_live_at_different_times(host: Host, client):
    host.record(day=0, global_m=1.08, weekly=1.07)
    host.record(day=30, global_m=1.08, weekly=1.20)  # only the weekly band moves
    now = text_of(section(client.get("/calibration/").text, "cp-now"))
    assert "Live since 2025-12-31 21:00 UTC" in now
    assert "Global 1.080 2025-12-01" in now and "Weekly (3–10d) 1.200 2025-12-31" in now


def test_the_rule_sentence_adds_the_step_limit_and_the_approval():
    from calibration_policy_ui.views import rule_sentence

    policy = CalibrationUpdatePolicy(require_approval=True, max_step=0.05)
    sentence = rule_sentence(policy)
    assert sentence.endswith("; one update moves it by at most 0.05, and then a person approves it.")


def test_the_rule_sentence_names_a_band_threshold_only_when_it_differs():
    from calibration_policy_ui.views import rule_sentence

    sentence = rule_sentence(
        CalibrationUpdatePolicy(min_delta_global=0.05, min_delta_band=0.02, smoothing_window_days=7)
    )
    assert (
        "the smoothed global value (the last 7 days of runs, averaged with a 7-day half-life) moves at least 0.05 "
        "from the live one, "
        "or a DTE band's at least 0.02"
    ) in sentence
    assert "for a band" not in rule_sentence(CalibrationUpdatePolicy())


def test_the_rule_sentence_names_the_smoother_the_policy_configures():
    """A median policy is not described as an average (a reader once gave the rule wrong from that)."""
    from calibration_policy.plugins import get_plugin_manager
    from calibration_policy.specs import Smoother
    from calibration_policy_ui.views import rule_sentence

    median = rule_sentence(CalibrationUpdatePolicy(smoothing="rolling_median", smoothing_window_days=5))
    assert "(the last 5 days of runs, their median)" in median and "average" not in median

    class TrimOptions(BaseModel):
        trim: float = 0.1

    class Plugin:
        @hookimpl
        def register_smoothers(self, register):
            register(Smoother("trimmed", lambda t, v, o: float(v.mean()), "Trimmed mean", options=TrimOptions))

    get_plugin_manager().register(Plugin(), name="trimmed-smoother")
    try:
        policy = CalibrationUpdatePolicy(smoothing="trimmed", smoothing_options={"trim": 0.2})
        assert "(the last 14 days of runs, by “Trimmed mean” (trim 0.2))" in rule_sentence(policy)
        assert "using “Trimmed mean” (trim 0.2)" in policy.explain()
    finally:
        get_plugin_manager().unregister(name="trimmed-smoother")


def test_settings_are_plain_words_without_none_true_or_paths(host: Host, client):
    host.record(global_m=1.08)
    html = client.get("/calibration/").text
    policy = text_of(section(html, "cp-policy"))
    assert "A person approves every update before it goes live no" in policy
    assert "Largest move in one update no limit" in policy
    for word in ("None", "True", "False", "min_delta", "_"):
        assert word not in policy, word
    assert str(host.root) not in text_of(html.split('id="cp-now"', 1)[1])  # no server path on the page's own parts


def test_changes_timeline_shows_before_after_who_why_and_undo_rolls_back(host: Host, client):
    host.record(day=0, global_m=1.08)
    host.record(day=1, global_m=1.14)
    html = client.get("/calibration/").text
    changes = section(html, "cp-changes")
    items = changes.split('<li class="cp-change"')[1:]
    assert len(items) == 2
    assert "Policy · 2025-12-02 21:00 UTC (recorded " in text_of(items[0])  # when it went live, and when it was written
    assert re.search(r"Global: 1\.080 → 1\.1\d\d", text_of(items[0])) and "by the policy (automatic)" in text_of(
        items[0]
    )
    assert "Global: 1.000 → 1.080" in text_of(items[1])
    undo = re.search(r'<form method="post" action="([^"]+)"', items[0]).group(1)
    assert undo.startswith("/calibration/rollback#cp-change-")
    to = re.search(r'name="to" value="([^"]+)"', items[0]).group(1)
    token = csrf_of(client, html)
    done = client.post(
        "/calibration/rollback", data={"csrf_token": token, "underlying": "SPY", "to": to}, follow_redirects=False
    )
    assert done.status_code == 303
    assert host.config("SPY")["global"] == 1.08
    page = text_of(client.get(done.headers["location"]).text)
    assert "Rolled back to the IV multipliers of" in page and "by ana" in page
    assert "Rolled back · " in text_of(section(client.get("/calibration/").text, "cp-changes"))


def test_undo_without_a_name_shows_the_error_next_to_its_button(host: Host, make_client):
    host.record(day=0, global_m=1.08)
    client = make_client(current_user=None)
    html = client.get("/calibration/").text
    change = re.search(r'name="change" value="([^"]+)"', html).group(1)
    response = client.post(
        "/calibration/rollback",
        data={"csrf_token": csrf_of(client, html), "underlying": "SPY", "to": "original", "change": change},
    )
    assert response.status_code == 400 and host.config("SPY")["global"] == 1.08
    item = response.text.split(f'id="cp-change-{change}"', 1)[1].split("</form>", 1)[0]
    assert 'aria-invalid="true"' in item and "autofocus" in item
    assert "Say who is undoing this change" in text_of(item)


HOST_BASE = """<!doctype html><html><head><title>{% block title %}Host app{% endblock %}</title>
<link rel="stylesheet" href="/host/bootstrap.css"></head>
<body><nav class="navbar">Host nav</nav><div class="container">{% block content %}{% endblock %}</div></body></html>"""


def host_app(host: Host, folder: Path, current_user) -> FastAPI:
    from calibration_policy_ui import create_router

    (folder / "base.html").write_text(HOST_BASE)
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder))))
    app = FastAPI()
    app.include_router(
        create_router(
            history_dir=host.history_dir,
            archive_dir=host.archive_dir,
            suggestions_dir=host.suggestions_dir,
            policy=lambda: host.policy,
            target_for=host.target_for,
            templates=templates,
            base_template="base.html",
            current_user=current_user,
            secret="s",
        ),
        prefix="/calibration",
    )
    return app


def test_in_a_host_whose_title_is_a_block_nothing_strays_above_its_navbar(host: Host, tmp_path: Path):
    host.record(global_m=1.08)
    client = TestClient(host_app(host, tmp_path, lambda request: request.state.user))  # docs/panel.md's example
    for url in (
        "/calibration/",
        "/calibration/weights/",
        "/calibration/force-apply?underlying=SPY",
        "/calibration/?underlying=NOPE",
    ):
        html = client.get(url).text
        assert "<title>Host app</title>" in html, url
        assert re.search(r"<body>\s*<nav", html), url  # no stray text before the host's navbar
        assert re.search(r'<div class="container">\s*<div class="cp-panel"', html), url


def test_readme_current_user_works_with_and_without_request_state_user(host: Host, tmp_path: Path):
    host.record(global_m=1.08)
    plain = TestClient(host_app(host, tmp_path, lambda request: request.state.user))
    before = host.config("SPY")
    for method, url in (
        ("GET", "/calibration/"),
        ("GET", "/calibration/api/csrf-token"),
        ("POST", "/calibration/force-apply"),
    ):
        response = plain.request(
            method, url, data={"underlying": "SPY", "confirm": "yes"} if method == "POST" else None
        )
        assert response.status_code == 401, url  # nobody signed in: one contract, never a 500
        assert "Nobody is signed in" in response.text
    assert host.config("SPY") == before
    assert (
        'name="reviewer"' in TestClient(host_app(host, tmp_path, None)).get("/calibration/").text
    )  # no sign-in: a name is asked
    app = host_app(host, tmp_path, lambda request: request.state.user)

    @app.middleware("http")
    async def sign_in(request, call_next):
        request.state.user = "ana"
        return await call_next(request)

    signed = TestClient(app)
    html = signed.get("/calibration/").text
    assert 'name="reviewer"' not in html.split('id="cp-changes"', 1)[1]


def test_a_template_override_shows_without_a_restart(host: Host, tmp_path: Path):
    host.record(global_m=1.08)
    client = TestClient(host_app(host, tmp_path, None))
    override = tmp_path / "calibration_policy_ui" / "error.html"
    override.parent.mkdir()
    override.write_text("{% extends base_template %}{% block content %}FIRST {{ message }}{% endblock %}")
    assert "FIRST" in client.get("/calibration/?underlying=NOPE").text
    time.sleep(1.1)  # a new modification time
    override.write_text("{% extends base_template %}{% block content %}SECOND {{ message }}{% endblock %}")
    assert "SECOND" in client.get("/calibration/?underlying=NOPE").text


def test_the_scoring_models_internal_run_name_never_shows_as_an_underlying(tmp_path: Path):
    from calibration_policy.default_plugins.scoring_weights.analysis import MODEL_NAME

    from .test_weights import USER_HEADER, Tab, suggest

    tab = Tab(tmp_path / "data")
    client = TestClient(tab.app(with_panel=True), base_url="http://agent.test", headers={USER_HEADER: "ana"})
    suggest(client)  # records a scoring-weights run in the shared history folder
    response = client.get("/calibration/api/status?underlying=NOPE")
    assert response.status_code == 404 and MODEL_NAME not in response.text
    assert MODEL_NAME not in client.get("/calibration/?underlying=NOPE").text
    assert MODEL_NAME not in client.get("/calibration/").text


def test_the_scoring_weights_have_the_same_timeline_with_undo(tmp_path: Path):
    from .test_weights import EQUAL, USER_HEADER, Tab, page, suggest

    tab = Tab(tmp_path / "data")
    client = TestClient(tab.app(), base_url="http://agent.test", headers={USER_HEADER: "ana"})
    suggestion_id = suggest(client)
    _, token = page(client)
    client.post(f"/calibration/weights/suggestions/{suggestion_id}/approve", data={"csrf_token": token})
    assert tab.live() != EQUAL
    html, token = page(client)
    timeline = section(html, "cp-w-changes")
    assert re.search(r"Approved · \d{4}-\d\d-\d\d \d\d:\d\d UTC · by ana Cluster: 0\.250 → 0\.\d{3}", text_of(timeline))
    to = re.search(r'name="to" value="([^"]+)"', timeline).group(1)
    client.post("/calibration/weights/rollback", data={"csrf_token": token, "to": to})
    assert tab.live() == EQUAL
    assert "Rolled back · " in text_of(section(page(client)[0], "cp-w-changes"))


def test_the_words_on_each_page_are_explained_by_their_domain(host: Host, client):
    host.record(global_m=1.08)
    html = client.get("/calibration/").text
    words = text_of(html.split('id="cp-words"', 1)[1].split("</details>", 1)[0])
    assert "What the words on this page mean IV multiplier The number the options agent multiplies" in words
    assert "Smoothed: the runs of the last 14 days, averaged with a 7-day half-life, so that" in words
    assert "Force-apply" in words
    weights = client.get("/calibration/weights/").text
    words = text_of(weights.split('id="cp-w-words"', 1)[1].split("</details>", 1)[0])
    assert "Scoring weights How much each factor (wallet, cluster, token, context) counts" in words
    assert "IV multiplier" not in words


def test_a_waiting_run_offers_its_review_before_force_apply(host: Host, client):
    """A reader of the first screen could not tell how to approve: it showed Force-apply and no Approve."""
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.08)
    html = client.get("/calibration/").text
    latest = section(html, "cp-latest")
    assert "Approve or reject the suggestion waiting" in latest and "Sample" not in latest
    assert latest.index("Approve or reject") < latest.index("Force-apply this run's values")
    target = re.search(r'id="cp-review-link" href="#(cp-suggestion-[^"]+)"', html).group(1)
    assert f'id="{target}"' in html  # the link lands on the suggestion's own Approve / Reject form
    assert "412 options" in text_of(section(html, "cp-run"))  # the sample in the domain's own unit


def test_a_policy_changed_since_the_live_values_went_live_is_said_plainly(host: Host, client):
    host.record(global_m=1.08)  # applied automatically under the default policy
    since = text_of(section(client.get("/calibration/").text, "cp-now"))
    assert "(applied automatically by the policy)" in since and "changed since" not in since
    assert "Scope IV multiplier" in since  # the value column in the domain's words
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    since = text_of(section(client.get("/calibration/").text, "cp-now"))
    assert (
        "(applied automatically by the policy in force then; the policy has changed since and now waits for a "
        "person to approve each update)"
    ) in since


def test_a_rule_passed_for_some_scopes_only_says_so_on_its_pill(host: Host, client):
    """A fresh reader read "Change large enough: Passed" as passed for every venue while two of four had not moved
    enough; the pill now says for how many it passed."""
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.08, weekly=1.005, monthly=1.002)  # only the global value moves past its threshold
    checks = text_of(section(client.get("/calibration/").text, "cp-latest"))
    assert "Passed for 1 of 3 Change large enough: change large enough for Global; not for" in checks
    host.record(day=1, global_m=1.2, weekly=1.2, monthly=1.2)  # every scope moves: plainly "Passed"
    checks = text_of(section(client.get("/calibration/").text, "cp-latest"))
    assert "Passed Change large enough: change large enough for Global, Weekly, Monthly Force-apply" in checks


def test_a_suggestion_is_headed_by_the_run_it_came_from_and_force_apply_says_what_it_does(host: Host, client):
    """A backfill suggests long after its run: "Suggestion of <today>" under a run of last year read as a mistake;
    and Force-apply never said what it skips."""
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.08)
    html = client.get("/calibration/").text
    assert "Suggestion from the run of 2025-12-01 21:00 UTC" in text_of(section(html, "cp-review"))
    latest = text_of(section(html, "cp-latest"))
    assert "Force-apply this run's values Overrides the checks above and puts this run's values live at once" in latest
    host.policy = CalibrationUpdatePolicy(require_approval=True, force_requires_approval=True)
    latest = text_of(section(client.get("/calibration/").text, "cp-latest"))
    assert "Overrides the checks above and waits for a second person's approval; recorded, and can be undone." in (
        latest
    )
