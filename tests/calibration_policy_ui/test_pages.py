"""The panel page in every state a trader can meet, read as text the way a person reads it."""

from __future__ import annotations

import json

import pytest

from calibration_policy import CalibrationUpdatePolicy, Context
from calibration_policy.pipeline import force_apply
from calibration_policy.review import ReviewStore

from .conftest import Host, text_of


def page(client, **params) -> str:
    response = client.get("/calibration/", params=params)
    assert response.status_code == 200, response.text
    return response.text


def current_table(html: str) -> str:
    return text_of(html.split('id="cp-current"')[1].split("</table>")[0])


def test_empty_state_says_what_to_run(client):
    text = text_of(page(client))
    assert "No calibration has run yet — run calibration-policy update --underlying SPY" in text
    assert "The system smooths calibration results over the last 14 days" in text  # the policy still shows


def test_applied_run_shows_green_badge_reason_and_live_values(host: Host, client):
    outcome = host.record(global_m=1.08, weekly=1.10, monthly=1.06)
    assert outcome.applied
    html = page(client)
    text = text_of(html)
    assert "Calibration: SPY" in text
    assert "cp-badge-applied" in html and "Applied" in text
    assert outcome.run.applied_reason in text
    assert outcome.run.applied_reason.startswith("Applied: Global 1.00 → 1.08")
    table = current_table(html)
    config = host.config("SPY")
    for label, scope in (("Global", "global"), ("Weekly (3–10d)", "weekly"), ("Monthly (20–40d)", "monthly")):
        assert f"{label} {config[scope]:.3f}" in table
    assert "before records began" not in table  # every value was just set by this update
    assert f'data-value="{config["global"]}"' in html


def test_not_applied_run_shows_grey_badge_and_what_it_would_take(host: Host, client):
    host.record(global_m=1.01, weekly=1.01, monthly=1.01)
    html = page(client)
    text = text_of(html)
    assert "cp-badge-not-applied" in html and "Not applied" in text
    assert "Not applied: change too small (Global 0.01 < 0.03" in text
    assert "Failed Change large enough" in text
    assert "needs to move 0.02 more" in text
    assert "Passed Enough options in the sample: 412 options (minimum 150)" in text
    assert "Live since before records began" in text and "Global 1.000" in current_table(html)
    assert host.config("SPY")["global"] == 1.0


def test_thin_sample_says_how_many_more_options_it_needs(host: Host, client):
    host.record(global_m=1.2, n=72)
    text = text_of(page(client))
    assert "too few options in the sample (72, minimum 150)" in text
    assert "(needs 78 more options)" in text


def test_forced_run_is_marked_forced(host: Host, client):
    host.record(global_m=1.01)
    force_apply(
        "SPY",
        target=host.target_for("SPY"),
        context=Context.build(policy=host.policy, history_dir=host.history_dir, archive_dir=host.archive_dir),
    )
    text = text_of(page(client))
    assert "Applied (forced by user)" in text
    assert "Applied: forced by user (the policy alone said: change too small" in text


def test_pending_suggestion_shows_with_approve_and_reject(host: Host, client):
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.09)
    html = page(client)
    text = text_of(html)
    assert "Waiting for approval" in text
    assert "cp-badge-pending" in html
    assert "Approve and apply" in text and "Reject" in text
    assert 'name="reviewer"' not in html  # the host says who is signed in
    assert host.config("SPY")["global"] == 1.0


def test_approval_section_is_shown_when_required_even_with_nothing_pending(host: Host, client):
    host.record(global_m=1.0)
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    text = text_of(page(client))
    assert "No suggestion is waiting" in text
    assert "Every update waits for a person to approve it in the calibration panel." in text


def test_reviewer_name_is_asked_when_the_host_does_not_say(host: Host, make_client):
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.09)
    html = make_client(current_user=None).get("/calibration/").text
    assert 'name="reviewer" required' in html


def test_corrupt_run_file_is_skipped(host: Host, client):
    host.record(global_m=1.08)
    (host.history_dir / "20251231T000000.000000Z_SPY_harvested.json").write_text("{not json")
    text = text_of(page(client))
    assert "Applied: Global 1.00 → 1.08" in text


def test_several_underlyings_get_a_selector(host: Host, client):
    host.record("SPY", global_m=1.08)
    host.record("QQQ", global_m=1.01, weekly=1.01, monthly=1.01)
    html = page(client)
    assert '<option value="QQQ" selected>' in html and '<option value="SPY">' in html
    spy = text_of(page(client, underlying="spy"))
    assert "Calibration: SPY" in spy and "Applied: Global 1.00 → 1.08" in spy
    qqq = text_of(page(client, underlying="QQQ"))
    assert "Not applied: change too small" in qqq


def test_any_number_of_bands_with_their_dte_ranges(host: Host, client):
    host.record(global_m=1.08, extra_bands={"quarterly": (60, 90, 1.11), "leaps": (180, 400, 1.02)})
    table = current_table(page(client))
    assert "Leaps (180–400d)" in table and "Quarterly (60–90d)" in table
    assert table.index("Global") < table.index("Leaps")


def test_history_pages_ten_runs_at_a_time(host: Host, client):
    for day in range(23):
        host.record(day=day, global_m=1.0 + day / 1000)
    first = page(client)
    assert first.count('<tr><td class="cp-nowrap">') == 10
    assert "23 runs recorded · page 1 of 3" in text_of(first)
    assert "Older runs →" in first and "Newer runs" not in first
    third = page(client, page=3)
    assert third.count('<tr><td class="cp-nowrap">') == 3
    assert "2025-12-01 21:00 UTC" in text_of(third).split("Recent runs")[1]
    beyond = text_of(page(client, page=9))
    assert "No runs on this page" in beyond


def test_chart_has_a_text_alternative_and_a_band_selector(host: Host, client):
    for day in range(5):
        host.record(day=day, global_m=1.02 + day / 100)
    html = page(client)
    assert '<svg viewBox="0 0 720 260" role="img"' in html
    assert '<desc id="cp-chart-svg-desc">Global multiplier over 5 runs from 2025-12-01 to 2025-12-05.' in html
    assert "Chart data as a table" in html
    weekly = page(client, scope="weekly")
    assert "Recommended vs smoothed vs live: Weekly (3–10d)" in text_of(weekly)
    bad = client.get("/calibration/", params={"scope": "nonsense"})
    assert bad.status_code == 400
    assert "There is no IV multiplier 'nonsense' to chart; choose one of: global, monthly, weekly." in text_of(bad.text)


def test_policy_text_follows_the_live_policy(host: Host, client):
    host.record()
    assert "at least 0.03 for the global value" in text_of(page(client))
    host.policy = CalibrationUpdatePolicy(min_delta_global=0.05, min_sample_size=300)
    text = text_of(page(client))
    assert "at least 0.05 for the global value" in text and "at least 300 options" in text


def test_policy_from_a_toml_file_is_reread_on_every_request(host: Host, make_client, tmp_path):
    toml = tmp_path / "calibration_policy.toml"
    toml.write_text("min_delta_global = 0.04\n")
    client = make_client(policy=lambda: CalibrationUpdatePolicy.from_toml(toml))
    host.record()
    assert "at least 0.04 for the global value" in text_of(client.get("/calibration/").text)
    toml.write_text("min_delta_global = 0.07\n")
    assert "at least 0.07 for the global value" in text_of(client.get("/calibration/").text)
    toml.write_text("min_delta_global = 'lots'\n")
    broken = client.get("/calibration/")
    assert broken.status_code == 503
    assert "The calibration policy cannot be loaded" in text_of(broken.text)


def test_unreadable_live_config_is_explained_and_the_rest_still_shows(host: Host, client):
    host.record(global_m=1.08)
    host.config_path("SPY").write_text("{broken")
    response = client.get("/calibration/")
    assert response.status_code == 200
    text = text_of(response.text)
    assert "is not valid JSON" in text and "restore it from the archive" in text
    assert "Latest calibration run" in text and "Force-apply this run" not in text


def test_target_for_failing_in_host_code_is_a_plain_message(host: Host, make_client):
    host.record()

    def no_config(underlying: str):
        raise LookupError(f"the agent does not trade {underlying}")

    response = make_client(target_for=no_config).get("/calibration/")
    assert response.status_code == 200
    assert "The live config for SPY cannot be opened: the agent does not trade SPY" in text_of(response.text)


@pytest.mark.parametrize("underlying", ["ZZZ", "../x", "a/b", "SPY\x00", "x" * 41])
def test_unknown_or_hostile_underlying_is_a_4xx_with_a_plain_message(host: Host, client, underlying):
    host.record()
    response = client.get("/calibration/", params={"underlying": underlying})
    assert 400 <= response.status_code < 500
    assert "Traceback" not in response.text
    assert text_of(response.text)


@pytest.mark.parametrize(
    "query",
    ["page=nan", "page=inf", "page=0", "page=-1", "page=1e309", "page=99999999999999999999999", "page=1.5", "page=abc"],
)
def test_bad_numbers_are_a_400(host: Host, client, query):
    host.record()
    response = client.get(f"/calibration/?{query}")
    assert response.status_code == 400
    assert "Invalid request: page" in text_of(response.text)


def test_pending_runs_from_earlier_policy_stay_visible(host: Host, client):
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.09)
    host.policy = CalibrationUpdatePolicy()
    assert len(ReviewStore(host.suggestions_dir).all(status="pending")) == 1
    assert "Waiting for approval" in text_of(page(client))


def test_undecided_run_reads_not_decided_yet(host: Host, client):
    from calibration_policy import record_calibration_result

    from .conftest import T0, host_result

    record_calibration_result(host_result(), "SPY", "harvested", history_dir=host.history_dir, timestamp=T0)
    text = text_of(page(client))
    assert "Not decided yet" in text and "No decision recorded yet." in text


def test_host_config_values_are_never_rounded_into_the_data_attribute(host: Host, client):
    host.record(global_m=1.0834567)
    html = page(client)
    assert f'data-value="{json.loads(host.config_path("SPY").read_text())["global"]}"' in html


# -- extreme numbers and dates (issue 11, D5): a 4xx with a sentence, or a page that renders ---------------

EXTREME_NUMBERS = [1.7e308, -1.7e308, 1.7976931348623157e308, 1e308, -0.0, 1e-320, 5e-324, -1e-320]


@pytest.mark.parametrize("value", EXTREME_NUMBERS, ids=repr)
def test_every_number_a_run_file_or_live_config_can_hold_renders(host: Host, client, value):
    """A recommended multiplier of 1.7e308 overflowed the chart (HTTP 500); −0 read "-0.000"."""
    from calibration_policy import CalibrationPolicyError

    host.record(day=0)
    recommended = value if value > 0 else 1.0  # a multiplier must be positive: −0 or −1e308 is refused when recorded
    try:
        host.record(day=1, global_m=recommended, weekly=recommended, monthly=1.0)
    except CalibrationPolicyError:
        pass  # a smoothing that cannot average such numbers refuses; the run is recorded all the same
    host.target_for("SPY")
    host.config_path("SPY").write_text(json.dumps({"global": value, "weekly": -value, "monthly": 1.0}))
    for url in ("/calibration/", "/calibration/force-apply", "/calibration/api/status", "/calibration/api/runs"):
        response = client.get(url, params={"underlying": "SPY"})
        assert response.status_code == 200, f"{url}: HTTP {response.status_code}: {response.text[:300]}"
        assert "-0.000" not in response.text and "Traceback" not in response.text
        if "/api/" not in url:
            assert max(len(word) for word in text_of(response.text).split()) < 100, (
                "a number printed with hundreds of digits"
            )
    if value == 1.7e308:
        assert "1.7e+308" in text_of(page(client))
    chart = client.get("/calibration/", params={"underlying": "SPY", "scope": "weekly"})
    assert chart.status_code == 200 and "cp-chart" in chart.text


@pytest.mark.parametrize("threshold", [1e308, 1.7976931348623157e308, 0.0, 1e-320])
def test_every_threshold_the_policy_can_hold_renders(host: Host, client, threshold):
    """A threshold of 1e308 made the chart's band overflow: HTTP 500."""
    host.record(day=0)
    host.record(day=1, global_m=1.2)
    host.policy = CalibrationUpdatePolicy(
        min_delta_global=threshold, min_delta_band=threshold, band_min_delta={"weekly": threshold}
    )
    text = text_of(page(client, underlying="SPY"))
    assert "shaded band" in text
    assert client.get("/calibration/api/status", params={"underlying": "SPY"}).status_code == 200
    if threshold >= 1e308:
        assert "± 1e+308" in text or "± 1.8e+308" in text


@pytest.mark.parametrize(
    "at",
    [
        "0001-01-01",
        "0001-01-01T00:00-05:00",
        "9999-12-31",
        "9999-12-31T23:59:59.999999",
        "9999-12-31T20:00+03:00",
        "2025-12-10T12:00",
        "2025-12-10T12:00+14:00",
    ],
)
def test_extreme_but_real_moments_answer_as_of(host: Host, client, at):
    host.record(day=0, global_m=1.2)
    response = client.get("/calibration/api/as-of", params={"underlying": "SPY", "at": at})
    assert response.status_code == 200, response.text
    assert response.json()["at"].endswith("Z")


@pytest.mark.parametrize(
    "at",
    ["0001-01-01T00:00+05:00", "0001-01-01T04:59+05:00", "9999-12-31T23:00-05:00", "9999-12-31T23:59:59.999999-00:01"],
)
@pytest.mark.parametrize("route", ["api/as-of", "weights/", "api/weights/as-of"])
def test_moments_outside_utc_are_a_400_with_a_sentence(host: Host, client, at, route):
    """These were HTTP 500 (OverflowError converting to UTC) on all three routes."""
    host.record(day=0, global_m=1.2)
    params = {"api/as-of": {"underlying": "SPY", "at": at}, "weights/": {"as_of": at}, "api/weights/as-of": {"at": at}}[
        route
    ]
    response = client.get(f"/calibration/{route}", params=params)
    assert response.status_code == 400, f"{route}: HTTP {response.status_code}: {response.text[:300]}"
    message = response.json()["detail"] if route.startswith("api/") else text_of(response.text)
    assert at in message and "between 0001-01-01 and 9999-12-31 UTC" in message


def test_each_change_says_what_became_of_its_notifications(host: Host, client, monkeypatch):
    from calibration_policy.delivery import deliver_pass
    from calibration_policy.stores import open_outbox

    monkeypatch.setenv("DESK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    host.policy = CalibrationUpdatePolicy(
        min_sample_size=1,
        min_vega_sum=0,
        notify=[{"name": "desk", "url": "http://127.0.0.1:9/hook", "secret_env": "DESK_SECRET", "timeout_seconds": 1}],
    )
    outcome = host.record(global_m=1.2)
    assert outcome.applied
    assert "Notifications: every endpoint waiting" in text_of(client.get("/calibration/?underlying=SPY").text)
    deliver_pass(open_outbox(host.root), host.policy.notify)  # nothing listens on port 9: refused, retried later
    page = text_of(client.get("/calibration/?underlying=SPY").text)
    assert "Notifications: desk retrying, next try" in page and "whsec_" not in page
