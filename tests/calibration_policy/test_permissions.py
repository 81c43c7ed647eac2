"""Who may do what (issue 18): the permissions table, the one check in every change function,
the four-eyes rule, and the audit trail — through the Python API and the CLI."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions
from calibration_policy.archive import Archive
from calibration_policy.audit import changes
from calibration_policy.cli import main
from calibration_policy.default_plugins.scoring_weights.analysis import weights_policy
from calibration_policy.default_plugins.scoring_weights.domain import weights_target
from calibration_policy.default_plugins.scoring_weights.flow import suggest_weights
from calibration_policy.errors import PermissionCheckError, PermissionDeniedError, PolicyError
from calibration_policy.hookspecs import hookimpl
from calibration_policy.permissions import ACTIONS, PermissionsTable, check, explain
from calibration_policy.pipeline import (
    approve_suggestion,
    force_apply,
    modify_suggestion,
    reject_suggestion,
    run_update,
)
from calibration_policy.pipeline import roll_back as rollback
from calibration_policy.plugins import get_plugin_manager
from calibration_policy.review import ReviewStore
from calibration_policy.target import JsonFileTarget

from .test_weights_support import EQUAL, make_trades, read_weights, write_weights

T0 = datetime(2025, 12, 1, 21, 0, tzinfo=UTC)
REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = REPO_ROOT / "examples" / "options_agent" / "plugins"
SURFACE = REPO_ROOT / "examples" / "options_agent" / "config" / "vol_surface.json"

TABLE = {
    "roles": {
        "viewer": ["view"],
        "operator": ["view", "propose", "force_apply"],
        "approver": ["view", "approve", "reject", "modify", "roll_back"],
        "admin": ["*"],
    },
    "users": {"vic": ["viewer"], "olga": ["operator"], "ana": ["operator", "approver"], "bo": ["approver"]},
    "groups": {"risk": {"members": ["rita"], "roles": ["admin"]}},
}


def result(global_m: float = 1.08, n: int = 412) -> dict:
    return {
        "global_metrics": {"n": n, "vega_sum": 12400.0, "recommended_iv_multiplier": global_m},
        "bands": {"weekly": {"min_dte": 3, "max_dte": 10, "n": n // 2, "recommended_iv_multiplier": global_m + 0.02}},
    }


@pytest.fixture
def place(tmp_path: Path):
    config = tmp_path / "vol.json"
    config.write_text(json.dumps({"global": 1.0, "weekly": 1.0}))

    class Place:
        target = JsonFileTarget(config)
        dirs = {
            "history_dir": tmp_path / "runs",
            "archive_dir": tmp_path / "archive",
            "suggestions_dir": tmp_path / "suggestions",
        }

        def files(self) -> dict[str, bytes]:
            return {str(p): p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file()}

    return Place()


# -- the table, validated when the policy loads ------------------------------------------------------


def test_the_table_answers_by_user_group_and_domain():
    table = PermissionsTable(**TABLE, everyone=["viewer"])
    assert table.allows("vic", "view", "vol_surface") and not table.allows("vic", "approve", "vol_surface")
    assert table.allows("rita", "change_policy", "scoring_weights")  # through her group
    assert table.allows("stranger", "view", "vol_surface")  # everyone
    scoped = PermissionsTable(roles={"w": ["scoring_weights:approve"]}, users={"bo": ["w"]})
    assert scoped.allows("bo", "approve", "scoring_weights") and not scoped.allows("bo", "approve", "vol_surface")


def test_a_bad_permissions_table_fails_when_the_policy_loads(tmp_path: Path):
    path = tmp_path / "calibration_policy.toml"
    path.write_text('[permissions.roles]\nviewer = ["view", "aprove"]\n[permissions.users]\nana = ["admin"]\n')
    with pytest.raises(PolicyError) as error:
        CalibrationUpdatePolicy.load(path)
    message = str(error.value)
    assert "role 'viewer' names the unknown action 'aprove'" in message
    assert "user 'ana' is given the unknown role 'admin' (known roles: viewer)" in message
    assert "known actions: " + ", ".join(ACTIONS) in message
    path.write_text('[permissions]\nroles = { viewer = ["view"] }\nadmins = ["x"]\n')
    with pytest.raises(PolicyError, match="permissions.admins is not a policy setting"):
        CalibrationUpdatePolicy.load(path)
    with pytest.raises(PolicyError, match="required_approvals"):
        CalibrationUpdatePolicy(required_approvals=0)


def test_without_permissions_everyone_may_do_everything():
    for action in ACTIONS:
        assert check(action, actor="anyone", domain="vol_surface") == "anyone"
    assert "everyone who is signed in may do everything" in explain(CalibrationUpdatePolicy())


def test_a_denial_names_the_missing_permission():
    policy = CalibrationUpdatePolicy(permissions=TABLE)
    with pytest.raises(PermissionDeniedError) as error:
        check("force_apply", actor="vic", domain="vol_surface", policy=policy)
    assert str(error.value) == (
        "vic may not force-apply the IV multipliers (missing permission: force_apply on "
        "vol_surface); nothing was changed."
    )
    assert (error.value.actor, error.value.action, error.value.domain) == ("vic", "force_apply", "vol_surface")


def test_a_host_callable_that_raises_is_a_clear_error_and_writes_nothing(place):
    def broken(user, action, domain):
        raise KeyError("roles")

    before = place.files()
    with pytest.raises(
        PermissionCheckError,
        match=r"The host's permission check failed for ana \(propose on vol_surface\): "
        r"KeyError: 'roles'; nothing was changed.",
    ):
        run_update(
            result(),
            underlying="SPY",
            source="live",
            target=place.target,
            context=Context.build(actor="ana", permissions=broken, **place.dirs),
        )
    with pytest.raises(PermissionCheckError, match="not True or False"):
        check("view", actor="ana", domain="vol_surface", permissions=lambda u, a, d: "yes")
    assert place.files() == before


class DeskRota:
    """A host's permission plugin: interns never force-apply, whatever the table says; no opinion otherwise."""

    @hookimpl
    def permission_allowed(self, actor, action, domain, policy):
        return False if actor.startswith("intern") and action == "force_apply" else None


def test_a_host_permission_plugin_refuses_beside_the_table_and_any_refusal_wins(place, fresh_plugins):
    get_plugin_manager().register(DeskRota(), name="desk_rota")
    before = place.files()
    everyone_admin = CalibrationUpdatePolicy(permissions={"roles": {"admin": ["*"]}, "everyone": ["admin"]})
    for policy in (CalibrationUpdatePolicy(), everyone_admin):  # no table, and a table that allows everything
        with pytest.raises(PermissionDeniedError, match="intern-joe may not force-apply the IV multipliers"):
            force_apply(
                "SPY", target=place.target, context=Context.build(policy=policy, actor="intern-joe", **place.dirs)
            )
        assert check("propose", actor="intern-joe", domain="vol_surface", policy=policy) == "intern-joe"
    assert place.files() == before
    # the plugin's "no opinion" never widens the table: vic stays a viewer
    with pytest.raises(PermissionDeniedError, match="missing permission: approve"):
        check("approve", actor="vic", domain="vol_surface", policy=CalibrationUpdatePolicy(permissions=TABLE))
    text = explain(CalibrationUpdatePolicy())
    assert "No permissions table is configured. The permission plugin desk_rota also decide" in text
    # with a plugin that may refuse, somebody must be named
    with pytest.raises(PermissionDeniedError, match="Say who is acting"):
        check("propose", actor="", domain="vol_surface")


def test_a_permission_plugin_that_raises_or_answers_nonsense_is_named_and_writes_nothing(place, fresh_plugins):
    class Broken:
        @hookimpl
        def permission_allowed(self, actor, action, domain, policy):
            raise LookupError("directory down")

    class Chatty:
        @hookimpl
        def permission_allowed(self, actor, action, domain, policy):
            return "yes"

    before = place.files()
    get_plugin_manager().register(Broken(), name="ldap_roles")
    with pytest.raises(
        PermissionCheckError,
        match=r"The permission plugin ldap_roles failed for ana \(force_apply on vol_surface\): "
        r"LookupError: directory down; nothing was changed.",
    ):
        force_apply("SPY", target=place.target, context=Context.build(actor="ana", **place.dirs))
    get_plugin_manager().unregister(name="ldap_roles")
    get_plugin_manager().register(Chatty(), name="chatty")
    with pytest.raises(
        PermissionCheckError, match="The permission plugin chatty answered 'yes' .* not True, False or None"
    ):
        force_apply("SPY", target=place.target, context=Context.build(actor="ana", **place.dirs))
    assert place.files() == before


def test_the_built_in_permissions_are_a_default_plugin_listed_as_such(capsys):
    assert main(["plugins", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    built_in = listed["calibration_policy.default_plugins.default_permissions"]
    assert built_in["hooks"] == ["permission_allowed"] and built_in["package"] == "calibration-policy (built-in)"


# -- the Python API ------------------------------------------------------------------------------------


def test_every_change_function_refuses_a_viewer_and_writes_nothing(place):
    policy = CalibrationUpdatePolicy(permissions=TABLE, require_approval=True)
    run_update(
        result(),
        underlying="SPY",
        source="live",
        target=place.target,
        options=UpdateOptions(timestamp=T0),
        context=Context.build(policy=policy, actor="ana", **place.dirs),
    )
    pending = ReviewStore(place.dirs["suggestions_dir"]).all(status="pending")[0]
    before = place.files()
    store = ReviewStore(place.dirs["suggestions_dir"])
    calls = {
        "propose": lambda: run_update(
            result(),
            underlying="SPY",
            source="live",
            target=place.target,
            context=Context.build(policy=policy, actor="vic", **place.dirs),
        ),
        "force_apply": lambda: force_apply(
            "SPY", target=place.target, context=Context.build(policy=policy, actor="vic", **place.dirs)
        ),
        "approve": lambda: approve_suggestion(
            pending.suggestion_id,
            target=place.target,
            context=Context.build(
                suggestions_dir=store, actor="vic", policy=policy, archive_dir=place.dirs["archive_dir"]
            ),
        ),
        "modify": lambda: modify_suggestion(
            pending.suggestion_id,
            {"global": 1.02},
            target=place.target,
            context=Context.build(suggestions_dir=store, actor="vic", policy=policy),
        ),
        "reject": lambda: reject_suggestion(
            pending.suggestion_id, context=Context.build(suggestions_dir=store, actor="vic", policy=policy)
        ),
        "roll_back": lambda: rollback(
            place.target,
            "original",
            context=Context.build(archive_dir=place.dirs["archive_dir"], actor="vic", policy=policy),
        ),
    }
    for action, call in calls.items():
        with pytest.raises(PermissionDeniedError, match=f"missing permission: {action} on vol_surface"):
            call()
    assert place.files() == before


def test_a_python_host_that_passes_no_policy_follows_the_policy_in_force(place, tmp_path, monkeypatch):
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(
        'require_approval = true\n[permissions.roles]\nop = ["view", "propose"]\n[permissions.users]\nana = ["op"]\n'
    )
    monkeypatch.setenv("CALIBRATION_POLICY", str(policy_file))
    before = place.files()
    with pytest.raises(PermissionDeniedError, match="missing permission: propose on vol_surface"):
        run_update(
            result(),
            underlying="SPY",
            source="live",
            target=place.target,
            options=UpdateOptions(timestamp=T0),
            context=Context.build(actor="vic", **place.dirs),
        )
    assert place.files() == before  # no policy= given: the table in force still refused
    outcome = run_update(
        result(),
        underlying="SPY",
        source="live",
        target=place.target,
        options=UpdateOptions(timestamp=T0),
        context=Context.build(actor="ana", **place.dirs),
    )
    assert outcome.route == "propose"  # and its require_approval applies too


def test_four_eyes_refuses_the_proposer_and_accepts_a_second_person(place):
    policy = CalibrationUpdatePolicy(permissions=TABLE, require_approval=True, require_distinct_approver=True)
    outcome = run_update(
        result(),
        underlying="SPY",
        source="live",
        target=place.target,
        options=UpdateOptions(timestamp=T0),
        context=Context.build(policy=policy, actor="ana", via="cli", **place.dirs),
    )
    store = ReviewStore(place.dirs["suggestions_dir"])
    sid = outcome.run.pending_suggestion
    assert store.get(sid).proposed_by == "ana" and store.get(sid).proposed_via == "cli"
    before = place.files()
    with pytest.raises(
        PermissionDeniedError, match=f"ana proposed suggestion {sid}, so another person must approve it"
    ):
        approve_suggestion(
            sid,
            target=place.target,
            context=Context.build(
                suggestions_dir=store,
                actor="ana",
                policy=policy,
                archive_dir=place.dirs["archive_dir"],
                history_dir=place.dirs["history_dir"],
            ),
        )
    assert place.files() == before
    done = approve_suggestion(
        sid,
        target=place.target,
        notes="checked the vega",
        context=Context.build(
            suggestions_dir=store,
            actor="bo",
            via="python",
            policy=policy,
            archive_dir=place.dirs["archive_dir"],
            history_dir=place.dirs["history_dir"],
        ),
    )
    assert done.status == "approved" and json.loads(place.target.path.read_text())["global"] == pytest.approx(1.08)
    entry = Archive(place.dirs["archive_dir"], place.target.name).entries()[-1]
    assert (entry.by, entry.via, entry.kind) == ("bo", "python", "approve") and "checked the vega" in entry.reason
    assert entry.model_extra["proposed_by"] == "ana"


def test_a_modifier_may_not_approve_their_own_values(place):
    policy = CalibrationUpdatePolicy(require_approval=True, require_distinct_approver=True)
    outcome = run_update(
        result(),
        underlying="SPY",
        source="live",
        target=place.target,
        options=UpdateOptions(timestamp=T0),
        context=Context.build(policy=policy, actor="ana", **place.dirs),
    )
    store, sid = ReviewStore(place.dirs["suggestions_dir"]), outcome.run.pending_suggestion
    waiting = modify_suggestion(
        sid,
        {"global": 1.04, "weekly": 1.05},
        target=place.target,
        context=Context.build(suggestions_dir=store, actor="bo", policy=policy, archive_dir=place.dirs["archive_dir"]),
    )
    assert waiting.status == "pending" and waiting.modified_by == "bo" and waiting.values["global"] == 1.04
    assert json.loads(place.target.path.read_text()) == {"global": 1.0, "weekly": 1.0}
    with pytest.raises(PermissionDeniedError, match="bo last modified suggestion"):
        approve_suggestion(
            sid,
            target=place.target,
            context=Context.build(
                suggestions_dir=store, actor="bo", policy=policy, archive_dir=place.dirs["archive_dir"]
            ),
        )
    with pytest.raises(PermissionDeniedError, match="ana proposed suggestion"):
        approve_suggestion(
            sid,
            target=place.target,
            context=Context.build(
                suggestions_dir=store, actor="ana", policy=policy, archive_dir=place.dirs["archive_dir"]
            ),
        )
    done = approve_suggestion(
        sid,
        target=place.target,
        context=Context.build(
            suggestions_dir=store,
            actor="cy",
            policy=policy,
            archive_dir=place.dirs["archive_dir"],
            history_dir=place.dirs["history_dir"],
        ),
    )
    assert done.applied_values == {"global": 1.04, "weekly": 1.05}


def test_required_approvals_collects_distinct_approvers(place):
    policy = CalibrationUpdatePolicy(require_approval=True, required_approvals=2)
    outcome = run_update(
        result(),
        underlying="SPY",
        source="live",
        target=place.target,
        options=UpdateOptions(timestamp=T0),
        context=Context.build(policy=policy, actor="ana", **place.dirs),
    )
    store, sid = ReviewStore(place.dirs["suggestions_dir"]), outcome.run.pending_suggestion
    kw = {
        "policy": policy,
        "archive_dir": place.dirs["archive_dir"],
        "history_dir": place.dirs["history_dir"],
    }
    first = approve_suggestion(sid, target=place.target, context=Context.build(suggestions_dir=store, actor="bo", **kw))
    assert first.status == "pending" and [a["by"] for a in first.approvals] == ["bo"]
    assert json.loads(place.target.path.read_text()) == {"global": 1.0, "weekly": 1.0}
    with pytest.raises(PermissionDeniedError, match="bo already approved suggestion"):
        approve_suggestion(sid, target=place.target, context=Context.build(suggestions_dir=store, actor="bo", **kw))
    second = approve_suggestion(
        sid, target=place.target, context=Context.build(suggestions_dir=store, actor="cy", **kw)
    )
    assert second.status == "approved" and [a["by"] for a in second.approvals] == ["bo", "cy"]
    entry = Archive(place.dirs["archive_dir"], place.target.name).entries()[-1]
    assert "approved by bo and cy" in entry.reason


def test_force_requires_approval_makes_a_force_wait_for_a_second_person(place):
    policy = CalibrationUpdatePolicy(force_requires_approval=True)
    run_update(
        result(global_m=1.01),
        underlying="SPY",
        source="live",
        target=place.target,
        options=UpdateOptions(timestamp=T0),
        context=Context.build(policy=policy, actor="ana", **place.dirs),
    )
    before = json.loads(place.target.path.read_text())
    outcome = force_apply(
        "SPY", target=place.target, use="recommended", context=Context.build(policy=policy, actor="ana", **place.dirs)
    )
    assert not outcome.applied and outcome.route == "propose"
    assert json.loads(place.target.path.read_text()) == before
    store, sid = ReviewStore(place.dirs["suggestions_dir"]), outcome.run.pending_suggestion
    assert store.get(sid).forced and store.get(sid).distinct_approver
    kw = {
        "policy": policy,
        "archive_dir": place.dirs["archive_dir"],
        "history_dir": place.dirs["history_dir"],
    }
    with pytest.raises(PermissionDeniedError, match="four-eyes"):
        approve_suggestion(sid, target=place.target, context=Context.build(suggestions_dir=store, actor="ana", **kw))
    assert (
        approve_suggestion(
            sid, target=place.target, context=Context.build(suggestions_dir=store, actor="bo", **kw)
        ).status
        == "approved"
    )
    assert json.loads(place.target.path.read_text())["global"] == pytest.approx(1.01)


def test_the_audit_trail_names_who_when_via_and_why(place):
    policy = CalibrationUpdatePolicy(require_approval=True)
    outcome = run_update(
        result(),
        underlying="SPY",
        source="live",
        target=place.target,
        options=UpdateOptions(timestamp=T0),
        context=Context.build(policy=policy, actor="ana", via="cli", **place.dirs),
    )
    approve_suggestion(
        outcome.run.pending_suggestion,
        target=place.target,
        context=Context.build(
            suggestions_dir=place.dirs["suggestions_dir"],
            actor="bo",
            via="panel",
            archive_dir=place.dirs["archive_dir"],
            history_dir=place.dirs["history_dir"],
        ),
    )
    rollback(
        place.target,
        "original",
        notes="too jumpy",
        context=Context.build(archive_dir=place.dirs["archive_dir"], actor="cy", via="api"),
    )
    rows = [
        (c.what.split(": ", 1)[1], c.who, c.via)
        for c in changes(place.dirs["archive_dir"], place.dirs["suggestions_dir"])
    ]
    assert rows[0][0].endswith("proposed") and rows[0][1:] == ("ana", "cli")
    assert ("approved", "bo", "panel") in rows and ("rolled back", "cy", "api") in rows
    assert any("too jumpy" in c.why for c in changes(place.dirs["archive_dir"], place.dirs["suggestions_dir"]))
    run = json.loads(next(Path(place.dirs["history_dir"]).glob("*.json")).read_text())
    assert run["decided_by"] == "ana" and run["decided_via"] == "cli"


# -- the CLI --------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path):
    config = tmp_path / "vol_surface.json"
    shutil.copyfile(SURFACE, config)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        "require_approval = true\nrequire_distinct_approver = true\n"
        '[permissions.roles]\nviewer = ["view"]\noperator = ["view", "propose", "force_apply"]\n'
        '[permissions.users]\nvic = ["viewer"]\nana = ["operator"]\n'
    )
    return [
        "--plugins-dir",
        str(PLUGINS),
        "--config",
        str(config),
        "--history-dir",
        str(tmp_path / "runs"),
        "--archive-dir",
        str(tmp_path / "archive"),
        "--policy",
        str(policy),
    ], tmp_path


def test_cli_refuses_with_exit_2_and_writes_nothing(cli_env, capsys, monkeypatch):
    common, root = cli_env
    monkeypatch.setenv("CALIBRATION_SUGGESTIONS_DIR", str(root / "suggestions"))
    before = sorted(p.name for p in root.rglob("*"))
    assert main(["update", "--underlying", "SPY", "--date", "2025-12-10", "--actor", "vic", *common]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "Error: vic may not propose changes to the IV multipliers (missing permission: propose on "
        "vol_surface); nothing was changed."
    )
    assert main(["force", "--underlying", "SPY", "--actor", "vic", *common]) == 2
    assert "missing permission: force_apply on vol_surface" in capsys.readouterr().err
    assert sorted(p.name for p in root.rglob("*")) == before
    assert main(["update", "--underlying", "SPY", "--date", "2025-12-10", "--actor", "ana", *common]) == 0
    assert "Waiting for approval" in capsys.readouterr().out
    assert (
        main(
            [
                "history",
                "--changes",
                "--archive-dir",
                str(root / "archive"),
                "--suggestions-dir",
                str(root / "suggestions"),
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows[-1]["who"] == "ana" and rows[-1]["via"] == "cli" and rows[-1]["what"].endswith("proposed")


def test_cli_four_eyes_on_the_weights(tmp_path: Path, capsys):
    weights = write_weights(tmp_path / "scoring_weights.json")
    trades = tmp_path / "trades.parquet"
    make_trades(400).to_parquet(trades)
    settings = tmp_path / "weights.toml"
    settings.write_text("[policy]\nrequire_distinct_approver = true\n")
    common = [
        "--weights",
        str(weights),
        "--settings",
        str(settings),
        "--history-dir",
        str(tmp_path / "runs"),
        "--archive-dir",
        str(tmp_path / "archive"),
        "--suggestions-dir",
        str(tmp_path / "suggestions"),
    ]
    assert main(["weights", "suggest", "--trades", str(trades), "--actor", "ana", *common]) == 0
    capsys.readouterr()
    assert main(["weights", "approve", "pending", "--actor", "ana", *common]) == 2
    assert "ana proposed suggestion" in capsys.readouterr().err and read_weights(weights) == EQUAL
    assert main(["weights", "approve", "pending", "--actor", "bo", *common]) == 0
    assert "approved by bo" in capsys.readouterr().out and read_weights(weights) != EQUAL
    assert (
        main(
            [
                "history",
                "--changes",
                "--archive-dir",
                str(tmp_path / "archive"),
                "--suggestions-dir",
                str(tmp_path / "suggestions"),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "When (UTC)" in table and "Via" in table and "bo" in table and "cli" in table


def test_weights_python_api_four_eyes(tmp_path: Path):
    weights = write_weights(tmp_path / "scoring_weights.json")
    target = weights_target(path=weights)
    policy = weights_policy(require_distinct_approver=True)
    dirs = {"history_dir": tmp_path / "runs", "suggestions_dir": tmp_path / "suggestions"}
    outcome = suggest_weights(
        make_trades(400), target, timestamp=T0, context=Context.build(policy=policy, actor="ana", **dirs)
    )
    store = ReviewStore(dirs["suggestions_dir"])
    with pytest.raises(PermissionDeniedError, match="four-eyes"):
        approve_suggestion(
            outcome.suggestion.suggestion_id,
            target=target,
            context=Context.build(suggestions_dir=store, actor="ana", policy=policy, archive_dir=tmp_path / "archive"),
        )
    assert (
        approve_suggestion(
            outcome.suggestion.suggestion_id,
            target=target,
            context=Context.build(
                suggestions_dir=store,
                actor="bo",
                policy=policy,
                archive_dir=tmp_path / "archive",
                history_dir=dirs["history_dir"],
            ),
        ).status
        == "approved"
    )
