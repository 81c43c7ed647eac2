"""Property-based requests against every JSON route and form of the panel, as each role, with a valid CSRF token:
no answer is a server error, and a refused request writes nothing.

Seed-stable (``derandomize``) and bounded (a few examples per route), so it runs in the suite in seconds and a
failure reproduces on every machine.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibration_policy import CalibrationUpdatePolicy, Context
from calibration_policy.default_plugins.scoring_weights.analysis import weights_policy
from calibration_policy.default_plugins.scoring_weights.domain import weights_target
from calibration_policy.default_plugins.scoring_weights.flow import suggest_weights
from calibration_policy.default_plugins.scoring_weights.settings import AutoSettings, WeightsSettings
from calibration_policy.review import ReviewStore
from calibration_policy.target import JsonFileTarget
from calibration_policy_ui.errors import API_TAG

from .conftest import USER_HEADER, Host, csrf_of
from .test_permissions import Roles
from .test_security import panel_routes
from .test_weights import EQUAL, trades

FUZZ = settings(
    derandomize=True,
    database=None,
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW_SHUFFLES = WeightsSettings(
    weights_policy(), AutoSettings(out_of_sample={"permutations": 20, "resamples": 100}, max_looks=1)
)
ROLES = ("vic", "olga", "ana")  # a viewer, a proposer who may force, everything
PREFIX = "/calibration"  # where Host.app mounts the panel

HOSTILE_VALUES = (
    "",
    "-1",
    "1e308",
    "NaN",
    "Infinity",
    "9" * 400,
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "\x00",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "[" * 3000 + "]" * 3000,
    '{"min_delta_global": -1}',
    "ü" * 60,
)
PLAUSIBLE = ("0", "SPY", "global", "2025-12-03", "2025-12-01T21:00:00Z", "yes", "true", "original")
HOSTILE = st.sampled_from(HOSTILE_VALUES + PLAUSIBLE)  # random examples mix the two; the sweep takes the hostile
TEXT = st.one_of(HOSTILE, st.text(max_size=30))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
JSON = st.recursive(
    SCALAR, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3), max_leaves=10
)
TRADE = st.fixed_dictionaries(
    {
        "wallet_score": st.one_of(st.floats(), SCALAR),
        "cluster_score": st.floats(0, 1),
        "token_score": st.floats(0, 1),
        "context_score": st.floats(0, 1),
        "pnl": st.floats(),
        "win": st.one_of(st.booleans(), SCALAR),
    },
    optional={"closed_at": st.one_of(HOSTILE, st.datetimes().map(lambda d: d.isoformat()))},
)


def stored(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every record under the data folder (size, inode, modification time: a write, atomic or not, changes one):
    what "nothing written" is checked against. Left out: the run index (a cache a read may refresh) and the
    empty files a lock leaves behind."""
    found = {}
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name != ".index"]
        for name in files:
            if not name.endswith(".lock"):
                stat = os.stat(os.path.join(folder, name))
                found[os.path.relpath(os.path.join(folder, name), root)] = (stat.st_size, stat.st_ino, stat.st_mtime_ns)
    return found


def fuzzed_routes() -> list[tuple[str, str, str]]:
    """(method, path, name) of every panel route that takes input: each change, and each JSON read (its query)."""
    host = Host(Path(tempfile.mkdtemp(prefix="fuzz-routes-")))
    found = []
    for route in panel_routes(host.app()):
        if route.name.endswith(".static"):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            if method != "GET" or API_TAG in (route.tags or []):
                found.append((method, PREFIX + route.path, route.name))
    return sorted(set(found))


ROUTES = fuzzed_routes()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A panel with runs, a pending suggestion for each domain, and the weights files (one for every route:
    what a fuzzed request changes, the next route sees, as a real panel would). The weights tab measures its
    evidence with 20 shuffles and 100 resamples, not 1,000 of each: the figures are not what this file checks,
    and each request that shows the tab measures them again."""
    host = Host(tmp_path_factory.mktemp("fuzz") / "data")
    host.policy = CalibrationUpdatePolicy(require_approval=True)
    host.record(global_m=1.08)
    host.root.mkdir(parents=True, exist_ok=True)
    weights, trades_file = host.root / "scoring_weights.json", host.root / "trades.parquet"
    weights.write_text(json.dumps(EQUAL))
    trades().to_parquet(trades_file)
    suggest_weights(
        trades_file,
        weights_target(path=weights),
        context=Context.build(
            history_dir=host.history_dir, suggestions_dir=host.suggestions_dir, archive_dir=host.archive_dir
        ),
    )
    pending = ReviewStore(host.suggestions_dir).all(status="pending")
    ids = {s.domain: s.suggestion_id for s in pending}
    live = host.target_for("SPY")
    # the host gives a live config for SPY only; another name has none (the test Host would create one)
    host.target_for = lambda underlying: live if underlying == "SPY" else JsonFileTarget(host.root / "none" / "x.json")
    clients = {}
    for user in ROLES:
        client = TestClient(
            host.app(
                permissions=Roles(),
                tab_options={
                    "scoring_weights": {"weights_path": weights, "trades_path": trades_file, "settings": FEW_SHUFFLES}
                },
            ),
            base_url="http://agent.test",
        )
        client.headers[USER_HEADER] = user
        clients[user] = (client, csrf_of(client))
    return host, clients, ids


def route_of(client, name: str) -> APIRoute:
    return next(r for r in panel_routes(client.app) if r.name == name)


def typed_fields(route: APIRoute) -> dict[str, str]:
    """The route's form fields, or its JSON body model's fields, with their declared types."""
    found: dict[str, str] = {}
    for param in route.dependant.body_params:
        annotation = getattr(param.field_info, "annotation", None)
        model_fields = getattr(annotation, "model_fields", None)
        if model_fields:
            found.update({name: repr(info.annotation) for name, info in model_fields.items()})
        else:
            found[param.alias] = repr(annotation)
    return found


def body_fields(route: APIRoute) -> list[str]:
    return list(typed_fields(route))


def representatives(route: APIRoute, turn: int) -> list[str]:
    """Every text field (each one means something else), and one of the other fields of each declared type (the
    weights' four numbers are one kind), a different one on each turn."""
    kinds: dict[str, list[str]] = {}
    for name, kind in typed_fields(route).items():
        kinds.setdefault(name if "str" in kind else kind, []).append(name)
    return [names[turn % len(names)] for names in kinds.values()] or ["underlying"]


@st.composite
def requests(draw, route: APIRoute, ids: list[str]) -> dict[str, Any]:
    path = PREFIX + route.path
    for name in ("suggestion_id", "proposal_id"):
        if "{" + name + "}" in path:
            path = path.replace(
                "{" + name + "}", draw(st.sampled_from([*ids.values(), "x", "..%2F..%2Fetc", "20251201T210000Z"]))
            )
    query = {name: draw(TEXT) for name in ("underlying", "at", "page", "before", "limit") if draw(st.booleans())}
    fields = body_fields(route)
    is_api = API_TAG in (route.tags or [])
    if not fields:
        return {"path": path, "params": query}
    if not is_api:  # a form: every field, each one hostile or plain
        form = {name: draw(TEXT) for name in fields if draw(st.integers(0, 4))}
        form.update(draw(st.dictionaries(TEXT, TEXT, max_size=2)))
        return {"path": path, "params": query, "data": form}
    body: Any = {
        name: draw(st.lists(TRADE, max_size=4) if name == "trades" else JSON) for name in fields if draw(st.booleans())
    }
    if draw(st.integers(0, 5)) == 0:
        body = draw(JSON)  # not even an object
    return {"path": path, "params": query, "content": json.dumps(body).encode(), "json": True}


@pytest.mark.parametrize(("method", "path", "name"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_no_request_is_a_server_error_and_a_refusal_writes_nothing(world, method, path, name):
    host, clients, ids = world
    route = route_of(clients["ana"][0], name)

    @FUZZ
    @given(user=st.sampled_from(ROLES), request=requests(route, ids))
    def check(user: str, request: dict[str, Any]) -> None:
        client, token = clients[user]
        before = stored(host.root)
        response = send(client, token, method, request)
        assert response.status_code < 500, (user, method, path, request, response.text[:400])
        if response.status_code >= 400:
            assert stored(host.root) == before, (user, method, path, request, response.status_code)

    check()


def send(client, token: str, method: str, request: dict[str, Any]):
    headers = {"X-CSRF-Token": token}
    if request.pop("json", False):
        headers["Content-Type"] = "application/json"
    if "data" in request:
        request["data"] = {**request["data"], "csrf_token": token}
    return client.request(method, request.pop("path"), headers=headers, follow_redirects=False, **request)


PLAIN = {"underlying": "SPY", "confirm": "yes", "reason": "fuzzing", "candidate": "{}", "notes": "", "to": "original"}


def plain_trade(closed_at: Any = None) -> dict[str, Any]:
    trade = {**dict.fromkeys(["wallet_score", "cluster_score", "token_score", "context_score"], 0.5), "pnl": 1.0}
    return {**trade, "win": True, **({"closed_at": closed_at} if closed_at is not None else {})}


@pytest.mark.parametrize(("method", "path", "name"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_each_hostile_value_in_each_field(world, method, path, name):
    """The sweep that random examples may miss: each hostile value in a field of each type in turn (the others plain),
    as the person who may do everything (the request gets furthest); and all at once as a viewer (refused: nothing
    may be written)."""
    host, clients, ids = world
    route = route_of(clients["ana"][0], name)
    fields = body_fields(route) or ["underlying"]
    is_api = API_TAG in (route.tags or [])
    answered = []
    for turn, value in enumerate(HOSTILE_VALUES):
        for user, hostile in [("ana", field) for field in representatives(route, turn)] + [("vic", None)]:
            client, token = clients[user]
            chosen = {f: value if hostile in (f, None) else PLAIN.get(f, "x") for f in fields}
            suggestion = ids["scoring_weights" if "weights" in path else "vol_surface"]
            request: dict[str, Any] = {
                "path": path.replace("{suggestion_id}", suggestion).replace("{proposal_id}", quote(value, safe=""))
            }
            request["params"] = {"underlying": chosen.get("underlying", "SPY"), "at": value}
            if route.dependant.body_params and is_api:
                body = {f: [plain_trade(), plain_trade(v)] if f == "trades" else v for f, v in chosen.items()}
                request.update(content=json.dumps(body).encode(), json=True)
            elif route.dependant.body_params:
                request["data"] = chosen
            before = stored(host.root)
            response = send(client, token, method, request)
            assert response.status_code < 500, (user, method, path, hostile, value[:40], response.text[:400])
            if response.status_code >= 400:
                assert stored(host.root) == before, (user, method, path, hostile, value[:40], response.status_code)
            answered.append(response.status_code)
    assert set(answered) != {404}, f"{method} {path}: every request missed the route"
