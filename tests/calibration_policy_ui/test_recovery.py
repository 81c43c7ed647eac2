"""Issue 11 in the panel: a form or API call based on values changed since is refused (409, nothing
changed, the message says what changed), and the signing secret survives a restart."""

from __future__ import annotations

import os
import stat

from fastapi.testclient import TestClient

from calibration_policy.pipeline import live_version

from .conftest import USER_HEADER, Host, csrf_of, text_of
from .test_actions import confirm


def test_d10_a_force_confirmed_on_a_page_rendered_before_a_newer_change_changes_nothing(host: Host, client):
    host.record(global_m=1.01, weekly=1.02, monthly=1.0)
    html, form = confirm(client)
    version = __import__("re").search(r'name="version" value="([^"]+)"', html).group(1)
    host.record(day=1, global_m=1.2, weekly=1.2, monthly=1.2)  # someone else's change goes live meanwhile
    newer = host.config("SPY")
    assert newer["global"] != 1.0
    response = client.post(
        "/calibration/force-apply", data={**form, "version": version, "confirm": "yes"}, follow_redirects=False
    )
    assert response.status_code == 409
    text = text_of(response.text)
    assert (
        "changed since you looked" in text
        and "Nothing was changed" in text
        and "applied automatically by the policy" in text
    )
    assert host.config("SPY") == newer
    # beside the confirm box, on the confirmation re-drawn with the values live now and their version
    assert 'id="cp-confirm-error"' in response.text and 'name="confirm"' in response.text
    assert f'name="version" value="{live_version(host.target_for("SPY"))}"' in response.text


def test_the_api_sends_an_etag_and_refuses_a_stale_if_match(host: Host, client):
    host.record(global_m=1.01, weekly=1.02, monthly=1.0)
    status = client.get("/calibration/api/status", params={"underlying": "SPY"})
    etag = status.headers["etag"]
    assert etag.strip('"') == live_version(host.target_for("SPY"))
    host.record(day=1, global_m=1.2, weekly=1.2, monthly=1.2)
    newer = host.config("SPY")
    token = csrf_of(client)
    response = client.post(
        "/calibration/api/force-apply",
        json={"underlying": "SPY", "use": "recommended"},
        headers={"X-CSRF-Token": token, "If-Match": etag},
    )
    assert response.status_code == 409, response.text
    assert "changed since you looked" in response.json()["detail"]
    assert host.config("SPY") == newer
    fresh = client.get("/calibration/api/status", params={"underlying": "SPY"}).headers["etag"]
    ok = client.post(
        "/calibration/api/force-apply",
        json={"underlying": "SPY", "use": "recommended"},
        headers={"X-CSRF-Token": token, "If-Match": fresh},
    )
    assert ok.status_code == 200, ok.text
    assert ok.headers["etag"] != fresh


def test_the_signing_secret_survives_a_restart(host: Host, monkeypatch):
    monkeypatch.delenv("CALIBRATION_PANEL_SECRET", raising=False)
    host.record(global_m=1.01, weekly=1.02, monthly=1.0)
    first = TestClient(host.app(secret=None), base_url="http://agent.test")
    first.headers[USER_HEADER] = "ana"
    html, form = confirm(first)
    secret_file = host.root / ".panel_secret"
    assert secret_file.exists() and stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    restarted = TestClient(host.app(secret=None), base_url="http://agent.test", cookies=first.cookies)
    restarted.headers[USER_HEADER] = "ana"
    response = restarted.post("/calibration/force-apply", data={**form, "confirm": "yes"}, follow_redirects=False)
    assert response.status_code == 303, response.text  # the form opened before the restart still works


def test_an_approval_from_a_page_rendered_before_a_newer_change_changes_nothing(host: Host, client):
    from calibration_policy import CalibrationUpdatePolicy
    from calibration_policy.review import ReviewStore

    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.09, weekly=1.1, monthly=1.05)
    [item] = ReviewStore(host.suggestions_dir).all(status="pending")
    html = client.get("/calibration/").text
    token = csrf_of(client, html)
    version = __import__("re").search(r'name="version" value="([^"]+)"', html).group(1)
    host.policy = CalibrationUpdatePolicy()
    host.record(day=1, global_m=1.3, weekly=1.3, monthly=1.3, n=2000)  # a forced or policy change meanwhile
    newer = host.config("SPY")
    assert newer["global"] != 1.0
    response = client.post(
        f"/calibration/suggestions/{item.suggestion_id}/approve",
        data={"csrf_token": token, "underlying": "SPY", "version": version},
        follow_redirects=False,
    )
    assert newer["global"] != 1.0  # the newer change went live
    assert response.status_code == 409, response.text
    assert "changed since you looked" in text_of(response.text)
    assert host.config("SPY") == newer
    status = ReviewStore(host.suggestions_dir).get(item.suggestion_id).status
    assert status in ("pending", "expired")
    # beside that suggestion's buttons while it still waits, else at the top of the page
    assert ('id="cp-review-error"' if status == "pending" else 'id="cp-page-error"') in response.text


def test_an_undo_pressed_on_a_page_rendered_before_a_newer_change_changes_nothing(host: Host, client):
    import re

    host.record(day=0, global_m=1.08)
    html = client.get("/calibration/").text
    form = html.split('<li class="cp-change"', 1)[1].split("</form>", 1)[0]
    version = re.search(r'name="version" value="([^"]+)"', form).group(1)
    assert version == live_version(host.target_for("SPY"))  # the undo carries the version the page showed
    to = re.search(r'name="to" value="([^"]+)"', form).group(1)
    change = re.search(r'name="change" value="([^"]+)"', form).group(1)
    host.record(day=1, global_m=1.14)  # someone else's change goes live meanwhile
    newer = host.config("SPY")
    assert newer["global"] != 1.08
    data = {"csrf_token": csrf_of(client, html), "underlying": "SPY", "to": to, "change": change, "version": version}
    response = client.post("/calibration/rollback", data=data, follow_redirects=False)
    assert response.status_code == 409
    text = text_of(response.text)
    assert "changed since you looked" in text and "Nothing was changed" in text
    assert host.config("SPY") == newer
    assert 'id="cp-undo-error"' in response.text  # beside the undo button that was pressed
    fresh = client.get("/calibration/").text
    version = re.search(r'name="version" value="([^"]+)"', fresh).group(1)
    undone = client.post("/calibration/rollback", data={**data, "version": version}, follow_redirects=False)
    assert undone.status_code == 303 and host.config("SPY")["global"] == 1.0  # back to before that change


def test_a_weights_rollback_from_a_page_rendered_before_a_newer_change_changes_nothing(tmp_path):
    import re

    from calibration_policy.apply import apply_values
    from calibration_policy.default_plugins.scoring_weights.domain import weights_target

    from .test_weights import EQUAL, Tab, page, suggest

    tab = Tab(tmp_path / "data")
    client = tab.client()
    suggestion_id = suggest(client)
    _, token = page(client)
    client.post(f"/calibration/weights/suggestions/{suggestion_id}/approve", data={"csrf_token": token})
    html, token = page(client)
    timeline = html.split('id="cp-w-changes"', 1)[1].split("</section>", 1)[0]
    version = re.search(r'name="version" value="([^"]+)"', timeline).group(1)
    assert version == live_version(weights_target(path=tab.weights))  # the undo carries the version the page showed
    apply_values(
        weights_target(path=tab.weights),
        {"wallet": 0.4, "cluster": 0.2, "token": 0.2, "context": 0.2},
        archive_dir=tab.dirs()["archive_dir"],
        kind="force",
        reason="Applied: someone else",
        domain="scoring_weights",
    )
    newer = tab.live()
    response = client.post(
        "/calibration/weights/rollback",
        data={"csrf_token": token, "to": "original", "version": version},
        follow_redirects=False,
    )
    assert response.status_code == 409 and "changed since you looked" in text_of(response.text)
    assert tab.live() == newer != EQUAL
