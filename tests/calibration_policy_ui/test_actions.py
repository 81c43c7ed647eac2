"""Force-apply, approve and reject from the panel: confirmation, POST, 303, flash, table updated."""

from __future__ import annotations

import re

import pytest

from calibration_policy import CalibrationUpdatePolicy, Context, open_store
from calibration_policy.stores import open_archive, open_reviews

from .conftest import Host, csrf_of, text_of


@pytest.fixture(autouse=True)
def _on_each_store(store_url):
    """Every panel action here runs on the file store and on PostgreSQL: the panel works unchanged on both."""


def confirm(client, underlying: str = "SPY") -> tuple[str, dict[str, str]]:
    response = client.get("/calibration/force-apply", params={"underlying": underlying})
    assert response.status_code == 200, response.text
    html = response.text
    form = {
        "csrf_token": csrf_of(client, html),
        "underlying": underlying,
        "run_id": re.search(r'name="run_id" value="([^"]+)"', html).group(1),
    }
    return html, form


def test_confirmation_page_shows_what_will_change_and_needs_a_ticked_box(host: Host, client):
    host.record(global_m=1.01, weekly=1.02, monthly=1.0)
    html, _ = confirm(client)
    text = text_of(html)
    assert "Force-apply the latest calibration for SPY?" in text
    assert "Global 1.000 1.010 1.010" in text  # live now, smoothed, recommended
    assert 'type="checkbox" name="confirm" value="yes" required' in html
    assert "Not applied: change too small" in text


def test_force_apply_redirects_with_a_flash_and_the_table_changes(host: Host, client):
    outcome = host.record(global_m=1.01, weekly=1.02, monthly=1.0)
    assert not outcome.applied
    _, form = confirm(client)
    response = client.post("/calibration/force-apply", data={**form, "confirm": "yes"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/calibration/?underlying=SPY"
    assert host.config("SPY") == {"global": 1.01, "monthly": 1.0, "weekly": 1.02}
    after = client.get(response.headers["location"])
    text = text_of(after.text)
    assert "Applied calibration from 2025-12-01 21:00 UTC to vol surface (SPY)." in text
    assert "Global 1.010" in text_of(after.text.split('id="cp-current"')[1].split("</table>")[0])
    assert "Applied (forced by user)" in text
    entry = open_archive(host.archive_dir, "vol_surface_SPY").entries()[-1]
    assert entry.kind == "force" and entry.actor == "user"
    again = client.get("/calibration/")
    assert "Applied calibration from" not in again.text  # the flash shows once


def test_force_apply_without_the_box_ticked_changes_nothing(host: Host, client):
    host.record(global_m=1.01, weekly=1.01, monthly=1.01)
    before = host.config("SPY")
    _, form = confirm(client)
    response = client.post("/calibration/force-apply", data=form)
    assert response.status_code == 400
    assert "Tick the box to confirm" in text_of(response.text)
    assert host.config("SPY") == before


def test_force_apply_can_use_the_raw_recommendation(host: Host, client):
    host.record(day=0, global_m=1.01)
    host.record(day=1, global_m=1.02)
    _, form = confirm(client)
    client.post("/calibration/force-apply", data={**form, "confirm": "yes", "use": "recommended"})
    assert host.config("SPY")["global"] == 1.02


def test_force_apply_applies_the_run_that_was_confirmed(host: Host, client):
    host.record(day=0, global_m=1.01, weekly=1.01, monthly=1.01)
    _, form = confirm(client)
    host.record(day=1, global_m=1.015, weekly=1.01, monthly=1.01)  # a newer run arrives meanwhile
    client.post("/calibration/force-apply", data={**form, "confirm": "yes", "use": "recommended"})
    assert host.config("SPY")["global"] == 1.01


def test_force_apply_of_another_underlyings_run_is_refused(host: Host, client):
    host.record("SPY", global_m=1.01)
    host.record("QQQ", global_m=1.01)
    _, form = confirm(client, "SPY")
    response = client.post("/calibration/force-apply", data={**form, "underlying": "QQQ", "confirm": "yes"})
    assert response.status_code == 400
    assert "is a SPY run, not QQQ" in text_of(response.text)


def test_confirmation_for_an_underlying_without_runs_is_a_404(host: Host, client):
    host.record("SPY")
    response = client.get("/calibration/force-apply", params={"underlying": "QQQ"})
    assert response.status_code == 404
    assert "There is no calibration run for QQQ to apply yet" in text_of(response.text)


def pending(host: Host) -> str:
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.09, weekly=1.1, monthly=1.05)
    [item] = open_reviews(host.suggestions_dir).all(status="pending")
    return item.suggestion_id


def test_approve_applies_the_suggestion_and_marks_the_run(host: Host, client):
    sid = pending(host)
    token = csrf_of(client, client.get("/calibration/").text)
    response = client.post(
        f"/calibration/suggestions/{sid}/approve",
        data={"csrf_token": token, "underlying": "SPY", "notes": "looks right"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert host.config("SPY")["global"] == 1.09
    item = open_reviews(host.suggestions_dir).get(sid)
    assert (item.status, item.reviewer, item.notes) == ("approved", "ana", "looks right")
    text = text_of(client.get(response.headers["location"]).text)
    assert f"Approved suggestion {sid}: its values are live now." in text
    assert "approved by ana (looks right)" in text
    assert open_store(host.history_dir).latest("SPY", 1)[0].status == "applied"


def test_reject_leaves_the_config_alone_and_records_the_notes(host: Host, client):
    sid = pending(host)
    token = csrf_of(client, client.get("/calibration/").text)
    response = client.post(
        f"/calibration/suggestions/{sid}/reject",
        data={"csrf_token": token, "underlying": "SPY", "notes": "earnings week"},
    )
    assert response.status_code == 200  # followed the redirect
    assert f"Rejected suggestion {sid}; the live values stay as they were." in text_of(response.text)
    assert host.config("SPY")["global"] == 1.0
    item = open_reviews(host.suggestions_dir).get(sid)
    assert (item.status, item.notes) == ("rejected", "earnings week")


def test_second_review_says_it_was_already_done_with_a_409(host: Host, client):
    """A settled suggestion (the loser of a race between two reviewers) is a 409, as in the weights tab (was 400)."""
    sid = pending(host)
    token = csrf_of(client, client.get("/calibration/").text)
    data = {"csrf_token": token, "underlying": "SPY"}
    client.post(f"/calibration/suggestions/{sid}/reject", data=data)
    for action in ("approve", "reject"):
        response = client.post(f"/calibration/suggestions/{sid}/{action}", data=data)
        assert response.status_code == 409
        assert f"Suggestion {sid} was already rejected at" in text_of(response.text)
    assert host.config("SPY")["global"] == 1.0


def test_a_waiting_suggestion_never_reads_applied(host: Host, client):
    sid = pending(host)
    page = client.get("/calibration/").text
    reason = re.search(rf'id="cp-suggestion-{sid}".*?<p class="cp-reason">([^<]*)</p>', page, re.S).group(1)
    assert reason.startswith("Suggested: Global 1.00 → 1.09 (change 0.09") and "Applied:" not in text_of(page)


def test_reviewer_name_comes_from_the_form_when_the_host_has_no_user(host: Host, make_client):
    sid = pending(host)
    client = make_client(current_user=None)
    token = csrf_of(client, client.get("/calibration/").text)
    missing = client.post(f"/calibration/suggestions/{sid}/approve", data={"csrf_token": token, "underlying": "SPY"})
    assert missing.status_code == 400
    assert "Say who is reviewing" in text_of(missing.text)
    client.post(
        f"/calibration/suggestions/{sid}/approve", data={"csrf_token": token, "underlying": "SPY", "reviewer": "bo"}
    )
    assert open_reviews(host.suggestions_dir).get(sid).reviewer == "bo"


def test_unknown_or_hostile_suggestion_ids_are_a_4xx(host: Host, client):
    pending(host)
    token = csrf_of(client, client.get("/calibration/").text)
    for sid in ("nope", "..%2F..%2Fetc", "a.b..c", "x" * 200):
        response = client.post(
            f"/calibration/suggestions/{sid}/approve", data={"csrf_token": token, "underlying": "SPY"}
        )
        assert 400 <= response.status_code < 500, sid
        assert "Traceback" not in response.text
    assert host.config("SPY")["global"] == 1.0


def test_notes_longer_than_the_limit_are_refused(host: Host, client):
    sid = pending(host)
    token = csrf_of(client, client.get("/calibration/").text)
    response = client.post(
        f"/calibration/suggestions/{sid}/reject", data={"csrf_token": token, "underlying": "SPY", "notes": "x" * 2001}
    )
    assert response.status_code == 400
    assert "Invalid request: notes" in text_of(response.text)


def test_an_iv_review_route_refuses_a_weights_suggestion_before_touching_anything(host: Host, client):
    from calibration_policy.default_plugins.scoring_weights.domain import weights_target
    from calibration_policy.default_plugins.scoring_weights.flow import suggest_weights

    from ..calibration_policy.test_weights_support import make_trades, write_weights

    host.root.mkdir(parents=True, exist_ok=True)
    weights = weights_target(path=write_weights(host.root / "scoring_weights.json"))
    outcome = suggest_weights(
        make_trades(400),
        weights,
        context=Context.build(history_dir=host.history_dir, suggestions_dir=host.suggestions_dir),
    )
    sid = outcome.suggestion.suggestion_id
    token = csrf_of(client)
    before = {p: p.read_bytes() for p in sorted(host.root.rglob("*")) if p.is_file()}
    for action in ("approve", "reject"):
        response = client.post(
            f"/calibration/suggestions/{sid}/{action}", data={"csrf_token": token, "underlying": "SPY"}
        )
        assert response.status_code == 404
        assert f"Suggestion {sid} suggests weights, not IV multipliers" in text_of(response.text)
    assert {p: p.read_bytes() for p in sorted(host.root.rglob("*")) if p.is_file()} == before
    assert open_reviews(host.suggestions_dir).get(sid).status == "pending"
