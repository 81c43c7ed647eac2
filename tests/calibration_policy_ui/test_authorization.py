"""Who may change what in the panel, as a table (issue 22): every state-changing route of the app's own
route table — the HTML forms and the JSON API — × roles (viewer, operator, approver, and the proposer
under four-eyes) → 403 with the sentence, and the data root (and the database) byte for byte unchanged, on both
stores. The permissions
are the policy in force's ``[permissions]`` table, for the IV multipliers and the scoring weights alike.
A new route missing from the table fails here until someone says which permission it needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from calibration_policy import CalibrationUpdatePolicy, Context
from calibration_policy.default_plugins.scoring_weights.domain import weights_target
from calibration_policy.default_plugins.scoring_weights.flow import suggest_weights
from calibration_policy.pipeline import run_update

from .conftest import USER_HEADER, Host, csrf_of, host_result, text_of
from .test_weights import EQUAL, trades

CHANGE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PREFIX = "calibration_policy_ui."

# Every state-changing route, by name: the permission it needs (any one of them is enough).
ROUTES: dict[str, tuple[str, ...]] = {
    "force": ("force_apply",),
    "api_force": ("force_apply",),
    "approve": ("approve",),
    "reject": ("reject",),
    "rollback": ("roll_back",),
    "weights_suggest": ("propose",),
    "weights_approve": ("approve",),
    "weights_modify": ("modify",),
    "weights_reject": ("reject",),
    "weights_rollback": ("roll_back",),
    "api_weights_analyze": ("propose",),
    "api_weights_suggest": ("propose",),
    "api_weights_apply": ("approve", "modify"),
    "api_weights_reject": ("reject",),
    "api_weights_rollback": ("roll_back",),
    "lab_propose": ("propose",),
    "lab_approve": ("change_policy",),
    "lab_reject": ("change_policy",),
}
# The approvals four-eyes refuses to the person who proposed.
APPROVALS = {"approve", "weights_approve", "api_weights_apply"}

TABLE = {
    "roles": {
        "viewer": ["view"],
        "operator": ["view", "propose", "force_apply"],
        "approver": ["view", "approve", "reject", "modify", "roll_back"],
    },
    "everyone": ["viewer"],
    "users": {"olga": ["operator"], "bo": ["approver"], "ana": ["operator", "approver"]},
}
ROLES = {"viewer": "vic", "operator": "olga", "approver": "bo", "proposer": "ana"}


def grants(role: str) -> set[str]:
    names = {
        "viewer": ["viewer"],
        "operator": ["operator"],
        "approver": ["approver"],
        "proposer": TABLE["users"]["ana"],
    }
    return {a for r in names[role] for a in TABLE["roles"][r]}


def route_table(app) -> dict[str, tuple[str, str]]:
    """Route name → (method, path) of every state-changing route, read from the app itself (included
    routers too, however FastAPI nests them)."""
    found: dict[str, tuple[str, str]] = {}

    def walk(routes, prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:  # FastAPI's lazily included router keeps its own table, and its prefix
                walk(inner.routes, prefix + route.include_context.prefix)
                continue
            for method in getattr(route, "methods", None) or ():
                if method in CHANGE_METHODS:
                    found[route.name.removeprefix(PREFIX)] = (method, prefix + route.path)

    walk(app.routes, "")
    return found


@pytest.fixture
def desk(host: Host, store_url, data_digest) -> dict[str, Any]:
    """On both stores: the policy in force with its roles table and four-eyes; a pending IV suggestion and
    a pending weights suggestion, both proposed by ana."""
    host.policy = CalibrationUpdatePolicy(require_approval=True, require_distinct_approver=True, permissions=TABLE)
    host.root.mkdir(parents=True, exist_ok=True)
    weights, trades_file = host.root / "scoring_weights.json", host.root / "trades.parquet"
    weights.write_text(json.dumps(EQUAL))
    trades().to_parquet(trades_file)
    dirs = {"history_dir": host.history_dir, "suggestions_dir": host.suggestions_dir}
    iv = run_update(
        host_result(global_m=1.2),
        underlying="SPY",
        source="harvested",
        target=host.target_for("SPY"),
        context=Context.build(policy=host.policy, archive_dir=host.archive_dir, actor="ana", **dirs),
    )
    weighted = suggest_weights(trades_file, weights_target(path=weights), context=Context.build(actor="ana", **dirs))
    assert iv.run.pending_suggestion and weighted.suggestion is not None
    return {
        "files": {"weights_path": weights, "trades_path": trades_file},
        "ids": {"vol_surface": iv.run.pending_suggestion, "scoring_weights": weighted.suggestion.suggestion_id},
        "run_id": iv.run.run_id,
        "digest": lambda: {k: v for k, v in data_digest(host.root, store_url).items() if not k.endswith(".lock")},
    }


def client_for(host: Host, user: str, files: dict[str, Path]) -> TestClient:
    """The panel on the host's data folder, where the weights tab finds its weights and trades files."""
    assert all(path.parent == host.root for path in files.values())
    client = TestClient(host.app(), base_url="http://agent.test")
    client.headers[USER_HEADER] = user
    return client


def test_every_state_changing_route_is_in_the_table(host: Host, desk):
    routes = route_table(client_for(host, "vic", desk["files"]).app)
    assert set(routes) - set(ROUTES) == set(), "say which permission these new routes need"
    assert set(ROUTES) - set(routes) == set(), "these routes are gone: take them out of the table"


def request_for(name: str, path: str, desk: dict[str, Any], token: str) -> dict[str, Any]:
    """A well-formed request for the route, so a refusal can only be the permission's (or four-eyes')."""
    weights_id, iv_id = desk["ids"]["scoring_weights"], desk["ids"]["vol_surface"]
    sid = weights_id if "weights" in name else iv_id
    url = path.replace("{suggestion_id}", sid).replace("{proposal_id}", "20251201T000000.000000Z")
    form = {
        "csrf_token": token,
        "underlying": "SPY",
        "run_id": desk["run_id"],
        "confirm": "yes",
        "to": "original",
        "notes": "",
        "reason": "tidy",
        "policy": "min_delta_global = 0.05",
        **{factor: "0.25" for factor in EQUAL},
    }
    if name.startswith("api_"):
        body = {
            "api_force": {"underlying": "SPY", "confirm": True},
            "api_weights_apply": {"suggestion_id": weights_id},
            "api_weights_reject": {},
            "api_weights_rollback": {"to": "original"},
        }.get(name, {})
        return {"url": url, "json": body, "headers": {"X-CSRF-Token": token}}
    return {"url": url, "data": form, "headers": {"X-CSRF-Token": token}}


@pytest.mark.parametrize("role", list(ROLES))
def test_every_state_changing_route_refuses_a_role_without_the_permission(host: Host, desk, role: str):
    client = client_for(host, ROLES[role], desk["files"])
    token = csrf_of(client)
    checked = 0
    for name, (method, path) in sorted(route_table(client.app).items()):
        needs = ROUTES[name]
        four_eyes = role == "proposer" and name in APPROVALS
        if set(needs) & grants(role) and not four_eyes:
            continue
        before = desk["digest"]()
        response = client.request(method, follow_redirects=False, **request_for(name, path, desk, token))
        said = text_of(response.text)
        assert response.status_code == 403, (role, name, response.status_code, said[:300])
        assert "nothing was changed" in said, (role, name, said[:300])
        assert ("four-eyes" in said) if four_eyes else (f"missing permission: {needs[0]}" in said), (role, name)
        assert desk["digest"]() == before, (role, name)
        checked += 1
    assert checked > 0
