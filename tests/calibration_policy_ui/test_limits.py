"""Request bodies are bounded before they are parsed: 413 past a route's limit, 400 on deep nesting and on dates
outside the supported range, and a viewer is refused before a large body is read when the host already knows who
is signed in."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.middleware.base import BaseHTTPMiddleware

from calibration_policy.limits import json_depth
from calibration_policy_ui import create_router
from calibration_policy_ui.limits import BodyLimits, parse_size

from .conftest import USER_HEADER, Host, counted_megabytes, csrf_of, text_of
from .test_permissions import Roles, files, weights_files  # noqa: F401  (a fixture)

TRADE = {"wallet_score": 0.5, "cluster_score": 0.4, "token_score": 0.6, "context_score": 0.5, "pnl": 1.0, "win": True}


@pytest.fixture
def signed_in(host: Host, make_client):
    host.record()
    client = make_client()
    return client, csrf_of(client)


def test_a_form_over_the_limit_is_refused_with_413_and_nothing_changes(host: Host, signed_in):
    client, token = signed_in
    before = files(host.root)
    response = client.post(
        "/calibration/force-apply",
        data={"csrf_token": token, "underlying": "SPY", "confirm": "yes", "note": "x" * 70_000},
        follow_redirects=False,
    )
    assert response.status_code == 413
    assert "accepts at most 64 KiB, so nothing was read or changed" in text_of(response.text)
    assert files(host.root) == before


def test_a_trades_upload_has_its_own_larger_limit(signed_in, weights_files):  # noqa: F811  (the live weights)
    client, token = signed_in
    trades = [TRADE] * 2_000  # ~230 KB: over the forms' limit, well under the upload's
    response = client.post("/calibration/api/weights/analyze", json={"trades": trades}, headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.text[:300]
    huge = b'{"trades": [' + b" " * (21 * 1024 * 1024) + b"]}"
    response = client.post(
        "/calibration/api/weights/analyze",
        content=huge,
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "The request body is 22,020,110 bytes; this address accepts at most 20 MiB, so nothing was read or changed."
    )


def test_a_body_without_content_length_is_cut_off_at_the_limit(signed_in):
    client, token = signed_in

    def chunks():
        for _ in range(100):
            yield b" " * 1024

    response = client.post(
        "/calibration/api/force-apply",
        content=chunks(),
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "The request body is larger than this address accepts (at most 64 KiB), "
        "so the rest was not read and nothing changed."
    )


def test_limits_are_set_by_the_host_or_the_environment(host: Host, make_client, monkeypatch):
    host.record()
    small = make_client(body_limits={"default": "1KiB", "api_weights_analyze": "2KiB"})
    token = csrf_of(small)
    response = small.post(
        "/calibration/api/weights/analyze", json={"trades": [TRADE] * 30}, headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 413 and "at most 2 KiB" in response.json()["detail"]
    monkeypatch.setenv("CALIBRATION_PANEL_BODY_LIMIT", "100")
    assert BodyLimits.of(None).for_route("calibration_policy_ui.force") == 100
    assert BodyLimits.of(None).for_route("calibration_policy_ui.api_weights_analyze") == 20 * 1024 * 1024
    assert parse_size("64KiB") == 65_536 and parse_size("1.5MB") == 1_572_864
    with pytest.raises(ValueError, match="is not a size"):
        parse_size("lots")


@pytest.mark.parametrize("field", ["candidate", "evidence"])
def test_deeply_nested_json_in_a_form_is_refused_not_a_server_error(host: Host, signed_in, field):
    client, token = signed_in
    form = {"csrf_token": token, "candidate": "{}", "reason": "deep", field: "[" * 5_000 + "]" * 5_000}
    response = client.post("/calibration/lab/propose", data=form)
    assert response.status_code == 200  # back on the lab page, with the reason
    assert "nests 5,000 levels deep" in text_of(response.text) or "nests 5000 levels deep" in text_of(response.text)
    assert not (host.root / "policy_proposals").exists() or not any((host.root / "policy_proposals").iterdir())


def test_deeply_nested_json_body_is_a_400(signed_in):
    client, token = signed_in
    response = client.post(
        "/calibration/api/weights/analyze",
        content=b'{"trades": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "The request's JSON nests 5001 levels deep; at most 64 are accepted."


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a": "[[[[[[", "b": [1, {"c": "]\\"{"}]}') == 3
    assert json_depth(b"12") == 0


def test_a_date_outside_the_supported_range_is_a_400_naming_the_field(signed_in):
    client, token = signed_in
    trades = [TRADE] * 2 + [{**TRADE, "closed_at": "0001-01-01T00:00:00+05:00"}]
    response = client.post("/calibration/api/weights/analyze", json={"trades": trades}, headers={"X-CSRF-Token": token})
    assert response.status_code == 400
    assert response.json()["detail"].startswith(
        "Invalid request: trades.2.closed_at is 0001-01-01T00:00:00+05:00, outside the supported dates 1900-01-01 to 2199-12-31"
    )


class SignIn(BaseHTTPMiddleware):
    """A host whose sign-in is a middleware (as a reverse proxy's header would be): the user is known first."""

    async def dispatch(self, request, call_next):
        request.state.user = request.headers.get(USER_HEADER)
        return await call_next(request)


def test_a_viewer_is_refused_before_a_large_body_is_read(host: Host, weights_files):  # noqa: F811
    host.record()
    app = FastAPI()
    app.add_middleware(SignIn)
    app.include_router(
        create_router(
            history_dir=host.history_dir,
            policy=lambda: host.policy,
            target_for=host.target_for,
            current_user=lambda request: getattr(request.state, "user", None),
            secret="test",
            permissions=Roles(),
            tab_options={"scoring_weights": weights_files},
        ),
        prefix="/calibration",
    )
    client = TestClient(app, base_url="http://agent.test", headers={USER_HEADER: "vic"})
    token = csrf_of(client)
    sent: list[int] = []
    response = client.post(
        "/calibration/api/weights/analyze",
        content=counted_megabytes(sent),
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
    )
    assert response.status_code == 403 and "vic may not" in response.json()["detail"]
    assert len(sent) <= 1  # refused before the body was read (the client may have queued its first chunk)
