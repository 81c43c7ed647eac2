"""Auth on every route, CSRF and cross-site refusal on every state change, inert hostile text."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from calibration_policy import CalibrationUpdatePolicy
from calibration_policy.review import ReviewStore
from calibration_policy_ui.security import CSRF_COOKIE, Signer

from .conftest import Host, csrf_of, require_user, text_of

PATH_PARAMS = {"path": "panel.css", "suggestion_id": "x", "proposal_id": "x"}


def flat_routes(routes) -> list:
    """Every route of the app, also inside included routers (FastAPI may keep those nested)."""
    found = []
    for route in routes:
        found.append(route)
        nested = getattr(getattr(route, "original_router", None), "routes", None) or getattr(route, "routes", None)
        if nested:
            found += flat_routes(nested)
    return found


def panel_routes(app) -> list[APIRoute]:
    routes = [
        r
        for r in flat_routes(app.routes)
        if isinstance(r, APIRoute) and r.endpoint.__module__.startswith("calibration_policy_ui")
    ]
    assert len(routes) >= 11  # every page, action, API and static route
    return routes


def has_dependency(dependant, call) -> bool:
    return any(d.call is call or has_dependency(d, call) for d in dependant.dependencies)


def test_every_route_carries_the_hosts_auth_dependency(host: Host):
    for route in panel_routes(host.app()):
        assert has_dependency(route.dependant, require_user), f"{route.path} skips the host's auth"


def test_every_route_refuses_a_request_without_sign_in(host: Host, make_client):
    host.record()
    anonymous = make_client(user=None)
    for route in panel_routes(anonymous.app):
        path = anonymous.app.url_path_for(route.name, **{k: v for k, v in PATH_PARAMS.items() if "{" + k in route.path})
        assert path.startswith("/calibration/")
        for method in route.methods:
            response = anonymous.request(method, path, params={"underlying": "SPY"})
            assert response.status_code == 401, f"{method} {path} answered {response.status_code} without sign-in"


def force_form(client) -> dict[str, str]:
    html = client.get("/calibration/force-apply", params={"underlying": "SPY"}).text
    return {
        "csrf_token": csrf_of(client, html),
        "underlying": "SPY",
        "confirm": "yes",
        "run_id": re.search(r'name="run_id" value="([^"]+)"', html).group(1),
    }


@pytest.fixture
def not_applied(host: Host) -> Host:
    host.record(global_m=1.01, weekly=1.01, monthly=1.01)
    return host


def refused(response) -> bool:
    return (
        response.status_code == 403
        and "nothing was changed" in text_of(response.text)
        or (response.status_code == 403 and "another website" in text_of(response.text))
    )


def test_missing_token_is_refused(not_applied: Host, client):
    form = force_form(client)
    del form["csrf_token"]
    assert refused(client.post("/calibration/force-apply", data=form))
    assert not_applied.config("SPY")["global"] == 1.0


def test_forged_token_is_refused(not_applied: Host, client):
    form = force_form(client)
    assert refused(client.post("/calibration/force-apply", data={**form, "csrf_token": "forged.token"}))
    assert not_applied.config("SPY")["global"] == 1.0


def test_token_without_its_cookie_is_refused(not_applied: Host, client):
    form = force_form(client)
    client.cookies.clear()
    assert refused(client.post("/calibration/force-apply", data=form))


def test_cookie_planted_by_someone_without_the_secret_is_refused(not_applied: Host, client):
    planted = Signer("attacker").sign("chosen")
    form = force_form(client)
    client.cookies.set(CSRF_COOKIE, planted)
    assert refused(client.post("/calibration/force-apply", data={**form, "csrf_token": planted}))
    assert not_applied.config("SPY")["global"] == 1.0


def test_token_of_another_browser_is_refused(not_applied: Host, client, make_client):
    other = make_client(user="bo")
    theirs = force_form(other)["csrf_token"]
    form = force_form(client)
    assert refused(client.post("/calibration/force-apply", data={**form, "csrf_token": theirs}))


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://agent.test.evil.example"},
    ],
)
def test_cross_site_requests_are_refused_even_with_a_valid_token(not_applied: Host, client, headers):
    form = force_form(client)
    response = client.post("/calibration/force-apply", data=form, headers=headers)
    assert response.status_code == 403
    assert "came from another website" in text_of(response.text)
    assert not_applied.config("SPY")["global"] == 1.0


def test_same_origin_request_passes(not_applied: Host, client):
    form = force_form(client)
    response = client.post(
        "/calibration/force-apply",
        data=form,
        follow_redirects=False,
        headers={"Origin": "http://agent.test", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303


def test_trusted_origin_behind_a_proxy_passes(not_applied: Host, make_client):
    client = make_client(trusted_origins=["https://agent.example.com/"])
    form = force_form(client)
    response = client.post(
        "/calibration/force-apply", data=form, follow_redirects=False, headers={"Origin": "https://agent.example.com"}
    )
    assert response.status_code == 303


def test_json_api_needs_the_token_header(not_applied: Host, client):
    assert client.post("/calibration/api/force-apply", json={"underlying": "SPY"}).status_code == 403
    token = csrf_of(client)
    response = client.post("/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.text
    cross = client.post(
        "/calibration/api/force-apply",
        json={"underlying": "SPY"},
        headers={"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_review_actions_need_the_token(host: Host, client, action):
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.09)
    [item] = ReviewStore(host.suggestions_dir).all(status="pending")
    url = f"/calibration/suggestions/{item.suggestion_id}/{action}"
    client.get("/calibration/")
    assert client.post(url, data={"underlying": "SPY"}).status_code == 403
    assert client.post(url, data={"underlying": "SPY", "csrf_token": "x"}).status_code == 403
    assert ReviewStore(host.suggestions_dir).get(item.suggestion_id).status == "pending"


def test_csrf_cookie_is_strict_and_http_only(host: Host, client):
    cookie = client.get("/calibration/").headers["set-cookie"]
    assert CSRF_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie


def test_pages_cannot_be_framed_or_cached(host: Host, client):
    host.record()
    for url in ("/calibration/", "/calibration/force-apply?underlying=SPY", "/calibration/?underlying=../x"):
        headers = client.get(url).headers
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["cache-control"] == "no-store"


def test_hostile_notes_and_reviewer_are_rendered_inert(host: Host, make_client):
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.09)
    [item] = ReviewStore(host.suggestions_dir).all(status="pending")
    client = make_client(user='<img src=x onerror="alert(1)">')
    token = csrf_of(client, client.get("/calibration/").text)
    payload = "<script>alert('notes')</script>"
    client.post(
        f"/calibration/suggestions/{item.suggestion_id}/approve",
        data={"csrf_token": token, "underlying": "SPY", "notes": payload},
    )
    html = client.get("/calibration/").text
    assert "approved by" in html
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;notes&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html


def test_hostile_band_names_and_values_are_rendered_inert(host: Host, client):
    host.record(global_m=1.08, extra_bands={"<b onmouseover=alert(1)>x</b>": (50, 60, 1.05)})
    html = client.get("/calibration/").text
    assert "<b onmouseover" not in html
    assert "&lt;b onmouseover=alert(1)&gt;" in html


def test_hostile_query_text_is_never_echoed_raw(host: Host, client):
    host.record()
    response = client.get("/calibration/", params={"scope": "<script>x</script>"})
    assert response.status_code == 400
    assert "<script>x</script>" not in response.text


def test_errors_never_show_a_traceback(host: Host, make_client):
    host.record()

    def broken(underlying: str):
        raise RuntimeError("secret internals")

    client: TestClient = make_client(target_for=broken)
    response = client.get("/calibration/force-apply", params={"underlying": "SPY"})
    assert response.status_code == 500
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert "Something went wrong on the server and nothing was changed" in text_of(response.text)
