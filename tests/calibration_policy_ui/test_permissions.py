"""Who may do what in the panel (issue 18): every change route refuses a viewer with a 403 and
writes nothing, four-eyes with two people, buttons follow the permissions, and the check is made
at submit time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions
from calibration_policy.archive import Archive
from calibration_policy.default_plugins.scoring_weights.domain import weights_target
from calibration_policy.default_plugins.scoring_weights.flow import suggest_weights
from calibration_policy.permissions import ACTIONS
from calibration_policy.review import ReviewStore
from calibration_policy_ui import create_router

from .conftest import USER_HEADER, Host, csrf_of, text_of
from .test_weights import EQUAL, trades

CHANGE_METHODS = {"post", "put", "patch", "delete"}


class Roles:
    """The host's user store: a user's roles can change while the app runs."""

    def __init__(self) -> None:
        self.actions = {
            "vic": {"view"},
            "olga": {"view", "propose", "force_apply"},
            "ana": set(ACTIONS),
            "bo": set(ACTIONS),
        }

    def __call__(self, user: Any, action: str, domain: str) -> bool:
        return action in self.actions.get(user, set())


@pytest.fixture
def roles() -> Roles:
    return Roles()


@pytest.fixture
def weights_files(host: Host) -> dict[str, Path]:
    host.root.mkdir(parents=True, exist_ok=True)
    weights, trades_file = host.root / "scoring_weights.json", host.root / "trades.parquet"
    weights.write_text(json.dumps(EQUAL))
    trades().to_parquet(trades_file)
    return {"weights_path": weights, "trades_path": trades_file}


def client_for(host: Host, user: str, **options: Any) -> TestClient:
    client = TestClient(host.app(**options), base_url="http://agent.test")
    client.headers[USER_HEADER] = user
    return client


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def change_routes(app) -> list[tuple[str, str]]:
    """Every POST/PUT/PATCH/DELETE: from the OpenAPI schema, plus the HTML forms' routes it leaves out."""
    found = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in CHANGE_METHODS
    }
    found |= {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods
        if method.lower() in CHANGE_METHODS
    }
    return sorted(found)


def test_every_change_route_refuses_a_viewer_and_writes_nothing(host: Host, roles: Roles, weights_files):
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.08)
    target = weights_target(path=weights_files["weights_path"])
    suggestion = suggest_weights(
        weights_files["trades_path"],
        target,
        context=Context.build(history_dir=host.history_dir, suggestions_dir=host.suggestions_dir),
    ).suggestion
    pending = ReviewStore(host.suggestions_dir).all(status="pending")
    assert len(pending) == 2 and suggestion is not None
    viewer = client_for(host, "vic", permissions=roles, tab_options={"scoring_weights": weights_files})
    app = viewer.app
    schema_routes = [(m.upper(), p) for p, item in app.openapi()["paths"].items() for m in item if m in CHANGE_METHODS]
    assert len(schema_routes) >= 6  # force-apply and the weights' analyze, suggest, apply, reject, rollback
    routes = change_routes(app)
    token = csrf_of(viewer)
    before = files(host.root)
    for method, path in routes:
        url = path.replace("{suggestion_id}", suggestion.suggestion_id)
        response = viewer.request(
            method,
            url,
            headers={"X-CSRF-Token": token},
            data={"csrf_token": token, "underlying": "SPY", "run_id": "x", "confirm": "yes", "to": "original"},
            follow_redirects=False,
        )
        assert response.status_code == 403, (method, path, response.status_code, response.text[:200])
        assert "vic may not" in text_of(response.text) and "missing permission:" in text_of(response.text), path
        assert "nothing was changed" in text_of(response.text)
    assert files(host.root) == before
    # a viewer still sees the panel and the JSON
    assert viewer.get("/calibration/").status_code == 200
    assert viewer.get("/calibration/api/status", params={"underlying": "SPY"}).status_code == 200
    nobody = client_for(host, "mallory", permissions=roles, tab_options={"scoring_weights": weights_files})
    response = nobody.get("/calibration/api/status", params={"underlying": "SPY"})
    assert response.status_code == 403 and "missing permission: view" in response.json()["detail"]


def test_the_audit_trail_cannot_be_edited_through_the_api(host: Host, weights_files):
    app = client_for(host, "ana", tab_options={"scoring_weights": weights_files}).app
    for method, path in change_routes(app):
        assert method == "POST", (method, path)  # nothing is ever replaced or deleted
        assert not any(word in path for word in ("archive", "history", "changes", "audit")), path


def test_four_eyes_in_the_panel_refuses_the_proposer_and_accepts_a_second_person(host: Host):
    host.policy = CalibrationUpdatePolicy(require_approval=True, require_distinct_approver=True)
    from calibration_policy.pipeline import run_update

    from .conftest import T0, host_result

    outcome = run_update(
        host_result(global_m=1.08),
        underlying="SPY",
        source="harvested",
        target=host.target_for("SPY"),
        options=UpdateOptions(timestamp=T0),
        context=Context.build(
            policy=host.policy,
            actor="ana",
            via="python",
            **{
                "history_dir": host.history_dir,
                "archive_dir": host.archive_dir,
                "suggestions_dir": host.suggestions_dir,
            },
        ),
    )
    sid = outcome.run.pending_suggestion
    before = host.config("SPY")
    ana = client_for(host, "ana")
    page = ana.get("/calibration/")
    form = {"csrf_token": csrf_of(ana, page.text), "underlying": "SPY", "notes": ""}
    refused = ana.post(f"/calibration/suggestions/{sid}/approve", data=form, follow_redirects=False)
    assert refused.status_code == 403
    assert f"ana proposed suggestion {sid}, so another person must approve it (four-eyes rule)" in text_of(refused.text)
    assert host.config("SPY") == before
    bo = client_for(host, "bo")
    page = bo.get("/calibration/")
    form = {"csrf_token": csrf_of(bo, page.text), "underlying": "SPY", "notes": "looks right"}
    done = bo.post(f"/calibration/suggestions/{sid}/approve", data=form, follow_redirects=False)
    assert done.status_code == 303 and host.config("SPY")["global"] == pytest.approx(1.08)
    entry = Archive(host.archive_dir, "vol_surface_SPY").entries()[-1]
    assert (entry.by, entry.via, entry.model_extra["proposed_by"]) == ("bo", "panel", "ana")


def test_force_requires_approval_over_the_api_waits_for_a_second_person(host: Host):
    host.policy = CalibrationUpdatePolicy(force_requires_approval=True)
    host.record(global_m=1.01, weekly=1.01, monthly=1.01)
    before = host.config("SPY")
    ana = client_for(host, "ana")
    response = ana.post(
        "/calibration/api/force-apply",
        json={"underlying": "SPY", "use": "recommended"},
        headers={"X-CSRF-Token": csrf_of(ana)},
    )
    assert response.status_code == 200 and response.json()["applied"] is False
    assert "waits for a second person's approval" in response.json()["message"]
    assert host.config("SPY") == before
    sid = ReviewStore(host.suggestions_dir).all(status="pending")[0].suggestion_id
    form = {"csrf_token": csrf_of(ana, ana.get("/calibration/").text), "underlying": "SPY"}
    assert ana.post(f"/calibration/suggestions/{sid}/approve", data=form, follow_redirects=False).status_code == 403
    bo = client_for(host, "bo")
    form = {"csrf_token": csrf_of(bo, bo.get("/calibration/").text), "underlying": "SPY"}
    assert bo.post(f"/calibration/suggestions/{sid}/approve", data=form, follow_redirects=False).status_code == 303
    assert host.config("SPY") == {"global": 1.01, "monthly": 1.01, "weekly": 1.01}


def test_buttons_follow_the_permissions_and_the_default_is_said_plainly(host: Host, roles: Roles):
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.08)
    viewer = client_for(host, "vic", permissions=roles).get("/calibration/").text
    assert "Force-apply this run" not in viewer
    assert 'disabled title="You may not approve"' in viewer and 'disabled title="You may not reject"' in viewer
    assert "decided by the host application's permission check" in text_of(viewer)
    admin = client_for(host, "ana", permissions=roles).get("/calibration/").text
    assert (
        "Force-apply this run" in admin
        and "disabled" not in admin.split("Approve and apply")[0].rsplit("<button", 1)[1]
    )
    default = client_for(host, "ana").get("/calibration/").text
    assert "everyone who is signed in may do everything" in text_of(default)


def test_permission_is_checked_at_submit_time_not_when_the_form_was_shown(host: Host, roles: Roles):
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    outcome = host.record(global_m=1.08)
    sid = outcome.run.pending_suggestion
    olga = client_for(host, "olga", permissions=roles)
    roles.actions["olga"] |= {"approve"}
    page = olga.get("/calibration/")
    assert 'disabled title="You may not approve"' not in page.text  # the form offered her the button
    roles.actions["olga"] -= {"approve"}  # …then her role changed before she clicked
    before = files(host.root)
    response = olga.post(
        f"/calibration/suggestions/{sid}/approve",
        data={"csrf_token": csrf_of(olga, page.text), "underlying": "SPY"},
        follow_redirects=False,
    )
    assert response.status_code == 403 and "missing permission: approve on vol_surface" in text_of(response.text)
    assert files(host.root) == before


def test_the_permissions_table_in_the_policy_governs_the_panel(host: Host):
    host.policy = CalibrationUpdatePolicy(
        permissions={
            "roles": {"viewer": ["view"], "ops": ["*"]},
            "users": {"vic": ["viewer"], "ana": ["ops"], "policy": ["ops"]},
        }
    )  # the daily job's identity
    host.record(global_m=1.01)
    vic = client_for(host, "vic")
    response = vic.post(
        "/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": csrf_of(vic)}
    )
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "vic may not force-apply the IV multipliers (missing permission: force_apply "
        "on vol_surface); nothing was changed."
    )
    ana = client_for(host, "ana")
    ok = ana.post("/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": csrf_of(ana)})
    assert ok.status_code == 200 and ok.json()["applied"]
    entry = Archive(host.archive_dir, "vol_surface_SPY").entries()[-1]
    assert (entry.kind, entry.by, entry.via) == ("force", "ana", "api")


def test_a_host_check_that_raises_is_a_clear_error_and_a_malformed_one_fails_at_start_up(host: Host):
    host.record(global_m=1.01)

    def broken(user, action, domain):
        raise LookupError("directory offline")

    client = client_for(host, "ana", permissions=broken)
    before = files(host.root)
    response = client.post("/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": "x"})
    assert response.status_code == 503
    assert response.json()["detail"].startswith(
        "The host's permission check failed for ana (force_apply on vol_surface): LookupError: directory offline"
    )
    assert files(host.root) == before
    with pytest.raises(TypeError, match=r"permissions must take three arguments: \(user, action, domain\)"):
        create_router(target_for=host.target_for, permissions=lambda user: True)
    with pytest.raises(TypeError, match="permissions must be a function"):
        create_router(target_for=host.target_for, permissions={"ana": "admin"})


def test_the_host_user_object_reaches_the_check_and_its_name_the_archive(host: Host):
    class User:
        def __init__(self, username: str, roles: set[str]) -> None:
            self.username, self.roles = username, roles

    people = {"ana": User("ana", {"risk"}), "vic": User("vic", {"trader"})}

    def may(user: User, action: str, domain: str) -> bool:
        return action == "view" or "risk" in user.roles

    host.record(global_m=1.01)
    options = {"current_user": lambda request: people[request.state.user], "permissions": may}
    vic = client_for(host, "vic", **options)
    assert (
        vic.post(
            "/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": csrf_of(vic)}
        ).status_code
        == 403
    )
    ana = client_for(host, "ana", **options)
    assert (
        ana.post(
            "/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": csrf_of(ana)}
        ).status_code
        == 200
    )
    assert Archive(host.archive_dir, "vol_surface_SPY").entries()[-1].by == "ana"
