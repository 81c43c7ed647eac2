"""Real identities for ``serve``: a users file with argon2 hashes (the name signed in with is who acts), a
trusted proxy's header only from its address, and the shared password only as an explicit single user that
four-eyes settings refuse."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from calibration_policy import CalibrationUpdatePolicy
from calibration_policy.cli import main
from calibration_policy.users import UsersError, UsersFile
from calibration_policy_ui.commands import ServeOptions, sign_in_of
from calibration_policy_ui.login import SignIn, SignInSetupError

from .agent import agent_app_module, fill
from .conftest import counted_megabytes

TABLE = {"roles": {"approver": ["view", "approve", "reject"], "viewer": ["view"]}, "everyone": ["viewer"]}


@pytest.fixture
def users(tmp_path: Path) -> UsersFile:
    found = UsersFile(tmp_path / "users.json")
    found.add("ana", "correct horse battery", ["approver"])
    found.add("bo", "another long secret")
    return found


def whoami(sign_in: SignIn) -> TestClient:
    app = FastAPI()

    @app.get("/me")
    def me(request: Request, user: str = Depends(sign_in.dependency())) -> dict[str, str]:
        return {"user": user}

    return TestClient(app)


def test_the_users_file_keeps_hashes_only_and_is_private(users: UsersFile):
    text = users.path.read_text()
    assert "correct horse" not in text and "$argon2id$" in text
    assert stat.S_IMODE(users.path.stat().st_mode) == 0o600
    assert [(u.name, u.roles) for u in users.users()] == [("ana", ("approver",)), ("bo", ())]
    assert users.verify("ana", "correct horse battery").name == "ana"
    assert users.verify("ana", "another long secret") is None and users.verify("carol", "x" * 10) is None
    with pytest.raises(UsersError, match="use at least 8"):
        users.add("carol", "short")
    with pytest.raises(UsersError, match="not usable"):
        users.add("../etc", "long enough pw")


def test_the_name_signed_in_with_is_who_acts(users: UsersFile):
    client = whoami(SignIn(users=users))
    assert client.get("/me", auth=("ana", "correct horse battery")).json() == {"user": "ana"}
    # bo's password does not make anyone ana: the name and the password go together
    assert client.get("/me", auth=("ana", "another long secret")).status_code == 401
    assert client.get("/me", auth=("bo", "another long secret")).json() == {"user": "bo"}
    assert client.get("/me").status_code == 401


def test_the_proxy_header_counts_only_from_the_proxy(users: UsersFile):
    trusted = whoami(SignIn(users=users, proxy_header="X-Forwarded-User", trusted_proxies=frozenset({"testclient"})))
    assert trusted.get("/me", headers={"X-Forwarded-User": "ana"}).json() == {"user": "ana"}
    elsewhere = whoami(SignIn(users=users, proxy_header="X-Forwarded-User", trusted_proxies=frozenset({"10.0.0.9"})))
    assert elsewhere.get("/me", headers={"X-Forwarded-User": "ana"}).status_code == 401
    # from elsewhere, the users file still signs people in
    assert elsewhere.get("/me", auth=("bo", "another long secret")).json() == {"user": "bo"}
    with pytest.raises(SignInSetupError, match="needs --trusted-proxy"):
        SignIn(proxy_header="X-Forwarded-User").check_policy(CalibrationUpdatePolicy())


def test_one_shared_password_is_one_user_whatever_name_is_typed():
    client = whoami(SignIn(single_user="trader", password="hunter2"))
    assert client.get("/me", auth=("the-approver", "hunter2")).json() == {"user": "trader"}
    assert client.get("/me", auth=("trader", "wrong")).status_code == 401


@pytest.mark.parametrize(
    "setting", [{"require_distinct_approver": True}, {"required_approvals": 2}, {"force_requires_approval": True}]
)
def test_four_eyes_refuses_a_single_shared_sign_in(setting, users: UsersFile):
    policy = CalibrationUpdatePolicy(**setting)
    with pytest.raises(SignInSetupError, match="one person could approve their own change"):
        SignIn(single_user="trader", password="hunter2").check_policy(policy)
    SignIn(users=users).check_policy(policy)  # people who sign in as themselves: fine


def test_serve_picks_the_users_file_of_the_data_folder(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPTIONS_AGENT_PASSWORD", "hunter2")
    assert sign_in_of(tmp_path, ServeOptions()).single  # no users file yet: the shared password, one user
    UsersFile(tmp_path / "users.json").add("ana", "correct horse battery")
    chosen = sign_in_of(tmp_path, ServeOptions())
    assert not chosen.single and chosen.users.path == tmp_path / "users.json"
    assert sign_in_of(tmp_path, ServeOptions(single_user="trader")).single


def test_serve_refuses_four_eyes_with_one_shared_login(tmp_path: Path, capsys):
    data = tmp_path / "data"
    fill(data, "SPY", days=2)
    (data / "calibration_policy.toml").write_text("require_distinct_approver = true\n")
    assert main(["serve", "--data", str(data), "--single-user", "trader", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "asks for a second person (require_distinct_approver = true)" in err and "users add" in err


def test_users_commands_add_list_remove(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("CALIBRATION_DATA", str(tmp_path))
    (tmp_path / "calibration_policy.toml").write_text(
        "[permissions]\nroles = { approver = ['view', 'approve'] }\neveryone = []\n"
    )
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("correct horse battery\n"))
    assert main(["users", "add", "ana", "--role", "approver"]) == 0
    assert "ana may sign in to serve (approver)" in capsys.readouterr().out
    assert main(["users", "add", "bo", "--role", "admin"]) == 2
    assert "The role 'admin' is not in the policy's [permissions] table (roles: approver)." in capsys.readouterr().err
    assert main(["users", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": "ana", "roles": ["approver"]}]
    assert main(["users", "remove", "ana"]) == 0 and main(["users", "remove", "ana"]) == 2
    assert "There is no user 'ana'" in capsys.readouterr().err


def test_the_agent_acts_as_the_signed_in_user_with_the_files_roles(tmp_path: Path):
    data = tmp_path / "data"
    fill(data, "SPY", days=3)
    (data / "calibration_policy.toml").write_text(
        "[permissions]\nroles = { approver = ['view', 'approve', 'reject', 'force_apply'], viewer = ['view'] }\n"
        "everyone = ['viewer']\n"
    )
    file = UsersFile(data / "users.json")
    file.add("ana", "correct horse battery", ["approver"])
    file.add("bo", "another long secret")
    client = TestClient(agent_app_module().create_app(data, secret="s"), base_url="http://agent.test")
    assert client.get("/calibration/", auth=("ana", "wrong password")).status_code == 401
    bo, ana = ("bo", "another long secret"), ("ana", "correct horse battery")
    assert client.get("/calibration/", auth=bo).status_code == 200  # a viewer sees the panel
    token = client.get("/calibration/api/csrf-token", auth=bo).json()["csrf_token"]
    refused = client.post(
        "/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": token}, auth=bo
    )
    assert refused.status_code == 403 and "bo may not" in refused.json()["detail"]
    done = client.post(
        "/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": token}, auth=ana
    )
    assert done.status_code != 403, done.text  # the users file's role 'approver' lets ana force-apply


def test_the_panel_on_its_own_signs_people_in_as_serve_chose(tmp_path: Path):
    """``serve`` without --app serves the minimal app: the users file signs people in there too."""
    from calibration_policy_ui.app import create_app

    data = tmp_path / "data"
    fill(data, "SPY", days=3)
    (data / "calibration_policy.toml").write_text(
        "[permissions]\nroles = { approver = ['view', 'approve', 'reject', 'force_apply'], viewer = ['view'] }\n"
        "everyone = ['viewer']\n"
    )
    file = UsersFile(data / "users.json")
    file.add("ana", "correct horse battery", ["approver"])
    file.add("bo", "another long secret")
    app = create_app(data, secret="s", sign_in=sign_in_of(data, ServeOptions()))
    client = TestClient(app, base_url="http://agent.test")
    assert client.get("/calibration/").status_code == 401
    assert client.get("/calibration/", auth=("ana", "wrong password")).status_code == 401
    bo, ana = ("bo", "another long secret"), ("ana", "correct horse battery")
    token = client.get("/calibration/api/csrf-token", auth=bo).json()["csrf_token"]
    refused = client.post(
        "/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": token}, auth=bo
    )
    assert refused.status_code == 403 and "bo may not" in refused.json()["detail"]
    done = client.post(
        "/calibration/api/force-apply", json={"underlying": "SPY"}, headers={"X-CSRF-Token": token}, auth=ana
    )
    assert done.status_code != 403, done.text


def test_serve_refuses_a_signed_in_viewer_before_reading_the_body(tmp_path: Path):
    """``serve`` signs people in with a middleware, so the panel knows who is there before any route reads:
    a viewer's 16 MiB upload is refused (403) with at most its first chunk read, not after the whole body."""
    from calibration_policy_ui.app import create_app

    data = tmp_path / "data"
    fill(data, "SPY", days=3)
    (data / "calibration_policy.toml").write_text(
        "[permissions]\nroles = { viewer = ['view'] }\neveryone = ['viewer']\n"
    )
    UsersFile(data / "users.json").add("bo", "another long secret")
    client = TestClient(
        create_app(data, secret="s", sign_in=sign_in_of(data, ServeOptions())), base_url="http://a.test"
    )
    bo = ("bo", "another long secret")
    token = client.get("/calibration/api/csrf-token", auth=bo).json()["csrf_token"]
    sent: list[int] = []
    refused = client.post(
        "/calibration/api/weights/analyze",
        content=counted_megabytes(sent),
        headers={"X-CSRF-Token": token, "Content-Type": "application/json"},
        auth=bo,
    )
    assert refused.status_code == 403 and "bo may not" in refused.json()["detail"]
    assert len(sent) <= 1  # the client may have queued its first chunk; the server read none of the rest
    assert client.post("/calibration/api/weights/analyze", content=b"{}", auth=("bo", "wrong")).status_code == 401
