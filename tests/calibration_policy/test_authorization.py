"""Who may change what, as a table (issue 22): every state-changing CLI command and every public change
function × roles (viewer, operator, approver, and the proposer under four-eyes) → exit 2 or
:class:`PermissionDeniedError`, the data root (and the database) byte for byte unchanged, on both stores. The commands are read from the
CLI's own click group: a new command missing from the table fails here until someone says what it needs.
"""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

from calibration_policy import Context
from calibration_policy.cli import build_cli, main
from calibration_policy.default_plugins.scoring_weights.domain import weights_target
from calibration_policy.default_plugins.scoring_weights.flow import run_auto, suggest_weights
from calibration_policy.default_plugins.scoring_weights.settings import AutoSettings
from calibration_policy.errors import PermissionDeniedError
from calibration_policy.pipeline import (
    approve_suggestion,
    force_apply,
    modify_suggestion,
    propose_policy,
    reject_suggestion,
    review_policy,
    roll_back,
    roll_back_policy,
    run_update,
    set_policy,
)
from calibration_policy.policy import CalibrationUpdatePolicy
from calibration_policy.policy_versions import PolicyVersions
from calibration_policy.stores import open_reviews
from calibration_policy.target import JsonFileTarget

from .test_weights_support import make_trades, write_weights

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = REPO_ROOT / "examples" / "options_agent" / "plugins"
SURFACE = REPO_ROOT / "examples" / "options_agent" / "config" / "vol_surface.json"

POLICY = """require_approval = true
require_distinct_approver = true

[permissions.roles]
viewer = ["view"]
operator = ["view", "propose", "force_apply"]
approver = ["view", "approve", "reject", "modify", "roll_back"]

[permissions]
everyone = ["viewer"]

[permissions.users]
olga = ["operator"]
bo = ["approver"]
ana = ["operator", "approver"]
"""

ROLES = {"viewer": "vic", "operator": "olga", "approver": "bo", "proposer": "ana"}
GRANTS = {
    "viewer": {"view"},
    "operator": {"view", "propose", "force_apply"},
    "approver": {"view", "approve", "reject", "modify", "roll_back"},
    "proposer": {"view", "propose", "force_apply", "approve", "reject", "modify", "roll_back"},
}

# Every command of the click group, said once: the permission a governed change needs …
GOVERNED = {
    "update": "propose",
    "force": "force_apply",
    "weights suggest": "propose",
    "weights auto": "propose",
    "weights approve": "approve",
    "weights modify": "modify",
    "weights reject": "reject",
    "weights rollback": "roll_back",
    "policy set": "change_policy",
    "policy rollback": "change_policy",
    "policy accept": "change_policy",
    "review approve": "approve",
    "review modify": "modify",
    "review reject": "reject",
    "rollback": "roll_back",
}
# … or that it only reads …
READ_ONLY = {
    "as-of",
    "compare",
    "db status",
    "explain",
    "history",
    "outbox list",
    "plugins",
    "policy as-of",
    "policy diff",
    "policy log",
    "policy show",
    "replay",
    "review list",
    "review show",
    "status",
    "users list",
    "weights analyze",
    "weights as-of",
    "weights history",
    "weights list",
    "weights show",
}
# … or why it writes without being a person's change of governed values.
NOT_A_CHANGE = {
    "doctor": "--repair only settles what a killed change left half done, as the next change would",
    "migrate": "copies every record to another store, ids and contents kept",
    "db upgrade": "upgrades the database's schema",
    "outbox run": "delivers notifications of changes already made and records each attempt",
    "outbox redeliver": "asks for one notification to be sent again; no governed value changes",
    "demo": "writes its own demo folder",
    "serve": "starts the panel, whose routes are checked (tests/calibration_policy_ui/test_authorization.py)",
    "tune": "writes a candidate policy file; making it live is `policy set`",
    "users add": "writes the users file (0600) serve signs people in with; guarded, like the policy file, by who may "
    "write the data root (doctor warns when anyone else can)",
    "users remove": "the same users file, one name taken out",
}


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> set[str]:
    found: set[str] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= leaf_commands(command, (*prefix, name))
        else:
            found.add(" ".join((*prefix, name)))
    return found


def test_every_cli_command_is_in_the_table():
    commands = leaf_commands(build_cli())
    listed = set(GOVERNED) | READ_ONLY | set(NOT_A_CHANGE)
    assert commands - listed == set(), "say what these new commands need (GOVERNED, READ_ONLY or NOT_A_CHANGE)"
    assert listed - commands == set(), "these commands are gone: take them out of the table"


class World:
    """A data root as a desk keeps it: the policy in force with its roles table and four-eyes, the IV and
    weights live configs, a pending suggestion of each proposed by ana, one weights change archived."""

    def __init__(self, root: Path, store_url: str, data_digest: Callable[..., dict[str, str]]) -> None:
        self.root = root
        self.digest = lambda: data_digest(root, store_url)  # files, and the database's rows on PostgreSQL
        root.mkdir()
        (root / "calibration_policy.toml").write_text(POLICY)
        # the policy as recorded, then edited by hand: an outside edit waiting for `policy accept`
        PolicyVersions(root).record(
            CalibrationUpdatePolicy.from_toml(root / "calibration_policy.toml"),
            actor="lead",
            reason="the desk's roles",
        )
        (root / "calibration_policy.toml").write_text("min_delta_global = 0.04\n" + POLICY)
        (root / "scoring_weights.toml").write_text("[auto]\nenabled = true\nmin_trades_between = 1\n")
        self.config = root / "vol_surface.json"
        shutil.copyfile(SURFACE, self.config)
        write_weights(root / "scoring_weights.json")
        make_trades(400).to_parquet(root / "trades.parquet")
        self.policy_file = root.parent / "tidy.toml"
        self.policy_file.write_text("min_delta_global = 0.05\n")
        self.iv = ["--plugins-dir", str(PLUGINS), "--config", str(self.config)]

    def cli(self, *args: str) -> int:
        return main([*args, "--data", str(self.root)])

    def proposal(self) -> str:
        from calibration_policy.policy_versions import PolicyProposals

        return PolicyProposals(self.root).pending()[0].proposal_id

    def version(self) -> str:
        return PolicyVersions(self.root).versions()[0].version_id

    def pending(self, domain: str) -> str:
        return next(s.suggestion_id for s in self.reviews().all(status="pending") if s.domain == domain)

    def reviews(self) -> Any:
        return open_reviews(self.root / "suggestions")  # the active store's: the folder, or the database

    def iv_target(self) -> JsonFileTarget:
        return JsonFileTarget(self.config)

    def weights(self):
        return weights_target(path=self.root / "scoring_weights.json")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, store_url, data_digest) -> World:
    """On both stores: the data folder, and PostgreSQL (runs, suggestions, archive and live configs in it)."""
    for name in ("CALIBRATION_HISTORY_DIR", "CALIBRATION_ARCHIVE_DIR", "CALIBRATION_SUGGESTIONS_DIR"):
        monkeypatch.delenv(name, raising=False)
    world = World(tmp_path / "data", store_url, data_digest)
    monkeypatch.setenv("CALIBRATION_DATA", str(world.root))
    assert world.cli("update", "--underlying", "SPY", "--date", "2025-12-10", "--actor", "ana", *world.iv) == 0
    assert world.cli("weights", "suggest", "--actor", "ana") == 0
    propose_policy(
        CalibrationUpdatePolicy(min_delta_global=0.05),
        reason="tidy thresholds",
        context=Context.build(actor="ana", data_dir=world.root),
    )
    capsys.readouterr()
    return world


def cli_line(world: World, command: str, who: str) -> list[str]:
    weights = ["--wallet", "0.4", "--cluster", "0.2", "--token", "0.2", "--context", "0.2"]
    return {
        "update": ["update", "--underlying", "SPY", "--date", "2025-12-09", "--actor", who, *world.iv],
        "force": ["force", "--underlying", "SPY", "--actor", who, *world.iv],
        "weights suggest": ["weights", "suggest", "--actor", who],
        "weights auto": ["weights", "auto", "--actor", who],
        "weights approve": ["weights", "approve", "pending", "--by", who],
        "weights modify": ["weights", "modify", "pending", "--by", who, *weights],
        "weights reject": ["weights", "reject", "pending", "--by", who],
        "weights rollback": ["weights", "rollback", "original", "--by", who],
        "policy set": ["policy", "set", str(world.policy_file), "--actor", who, "--reason", "tidy thresholds"],
        "policy rollback": ["policy", "rollback", "20251201T000000.000000Z", "--actor", who, "--reason", "back"],
        "policy accept": ["policy", "accept", "--actor", who, "--reason", "the desk's edit"],
        "review approve": ["review", "approve", world.pending("vol_surface"), "--by", who, *world.iv],
        "review modify": ["review", "modify", world.pending("vol_surface"), "--set", "global=1.1", "--by", who]
        + world.iv,
        "review reject": ["review", "reject", world.pending("vol_surface"), "--by", who, *world.iv],
        "rollback": ["rollback", "original", "--underlying", "SPY", "--by", who, *world.iv],
    }[command]


def refused(role: str, action: str) -> bool:
    """What the table says: the role lacks the permission, or (the proposer) approving is four-eyes' to refuse."""
    return action not in GRANTS[role] or (role == "proposer" and action == "approve")


@pytest.mark.parametrize("role", list(ROLES))
def test_every_state_changing_command_refuses_a_role_without_the_permission(world, role, capsys):
    who = ROLES[role]
    checked = 0
    for command, action in GOVERNED.items():
        if not refused(role, action):
            continue
        before = world.digest()
        assert world.cli(*cli_line(world, command, who)) == 2, (role, command)
        err = capsys.readouterr().err
        assert "nothing was changed" in err, (role, command, err)
        assert (f"missing permission: {action}" in err) or ("four-eyes" in err), (role, command, err)
        assert world.digest() == before, (role, command)
        checked += 1
    assert checked == sum(refused(role, action) for action in GOVERNED.values()) > 0


def function_calls(world: World, who: str) -> dict[str, tuple[str, Callable[[], Any]]]:
    """Every public change function, called as a host would, by ``who``."""
    iv, weights, store = world.iv_target(), world.weights(), world.reviews()

    def here() -> Context:
        return Context.build(actor=who, data_dir=world.root)

    result = {"global_metrics": {"n": 412, "vega_sum": 12400.0, "recommended_iv_multiplier": 1.2}, "bands": {}}
    return {
        "run_update": (
            "propose",
            lambda: run_update(result, underlying="SPY", source="live", target=iv, context=Context.build(actor=who)),
        ),
        "force_apply": ("force_apply", lambda: force_apply("SPY", target=iv, context=Context.build(actor=who))),
        "approve_suggestion": (
            "approve",
            lambda: approve_suggestion(
                world.pending("vol_surface"), target=iv, context=Context.build(suggestions_dir=store, actor=who)
            ),
        ),
        "modify_suggestion": (
            "modify",
            lambda: modify_suggestion(
                world.pending("vol_surface"),
                {"global": 1.1},
                target=iv,
                context=Context.build(suggestions_dir=store, actor=who),
            ),
        ),
        "reject_suggestion": (
            "reject",
            lambda: reject_suggestion(
                world.pending("vol_surface"), context=Context.build(suggestions_dir=store, actor=who)
            ),
        ),
        "roll_back": ("roll_back", lambda: roll_back(iv, "original", context=Context.build(actor=who))),
        "approve_suggestion (weights)": (
            "approve",
            lambda: approve_suggestion(
                world.pending("scoring_weights"),
                target=weights,
                context=Context.build(suggestions_dir=store, actor=who),
            ),
        ),
        "suggest_weights": (
            "propose",
            lambda: suggest_weights(make_trades(400), weights, context=Context.build(actor=who)),
        ),
        "run_auto": (
            "propose",
            lambda: run_auto(make_trades(500), weights, AutoSettings(enabled=True), context=Context.build(actor=who)),
        ),
        "propose_policy": (
            "propose",
            lambda: propose_policy(CalibrationUpdatePolicy(min_delta_global=0.06), reason="calmer", context=here()),
        ),
        "review_policy": ("change_policy", lambda: review_policy(world.proposal(), approve=True, context=here())),
        "set_policy": ("change_policy", lambda: set_policy(CalibrationUpdatePolicy(), reason="reset", context=here())),
        "roll_back_policy": ("change_policy", lambda: roll_back_policy(world.version(), reason="back", context=here())),
    }


@pytest.mark.parametrize("role", list(ROLES))
def test_every_public_change_function_refuses_a_role_without_the_permission(world, role):
    checked = 0
    for name, (action, call) in function_calls(world, ROLES[role]).items():
        if not refused(role, action):
            continue
        before = world.digest()
        with pytest.raises(PermissionDeniedError, match="nothing was changed") as refusal:
            call()
        assert f"missing permission: {action}" in str(refusal.value) or "four-eyes" in str(refusal.value), name
        assert world.digest() == before, (role, name)
        checked += 1
    assert checked > 0


def test_every_public_change_function_is_in_the_table(world):
    """A public function that takes a context makes a change: a new one must say which permission it needs here."""
    import calibration_policy
    from calibration_policy.default_plugins.scoring_weights import flow

    public = {name: getattr(calibration_policy, name) for name in calibration_policy.__all__}
    public |= {"suggest_weights": flow.suggest_weights, "run_auto": flow.run_auto}
    changing = {name for name, value in public.items() if callable(value) and "context" in _parameters(value)}
    listed = {name.split(" (")[0] for name in function_calls(world, "vic")}
    assert changing - listed == set(), "say which permission these change functions need"
    assert listed - changing == set(), "these change functions are gone: take them out of the table"


def _parameters(value: Any) -> set[str]:
    try:
        return set(inspect.signature(value).parameters)
    except (TypeError, ValueError):
        return set()
