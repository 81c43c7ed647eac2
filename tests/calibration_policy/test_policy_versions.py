"""Policy changes: the diff a reviewer reads, the write that keeps every key of the file it replaces, and the
permission and four-eyes checks every policy change meets through the governor (on both stores)."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from calibration_policy import (
    CalibrationUpdatePolicy,
    Context,
    propose_policy,
    review_policy,
    roll_back_policy,
    set_policy,
)
from calibration_policy.cli import main
from calibration_policy.errors import PermissionDeniedError, StaleChangeError
from calibration_policy.permissions import PermissionsTable
from calibration_policy.policy_versions import PolicyProposals, PolicyVersions, policy_diff

SECRET_STORE = "postgresql://calib:s3cret-pw@db.internal:5432/calibration"
ROLES = """
[permissions.roles]
viewer = ["view"]
operator = ["view", "propose"]
admin = ["*"]

[permissions.users]
vic = ["viewer"]
mallory = ["operator"]
ana = ["admin"]
bo = ["admin"]
"""
ADMINS = PermissionsTable(**tomllib.loads(ROLES)["permissions"])
LIVE_FILE = f"""store = "{SECRET_STORE}"
min_delta_global = 0.03
force_requires_approval = true
require_distinct_approver = true
{ROLES}"""


@pytest.fixture
def data(tmp_path: Path, store_url, monkeypatch) -> Path:
    """A data root whose policy file names a store, a permissions table and four-eyes settings, on either store.
    The environment's store setting wins over the file's (as on a machine told where its store is)."""
    from calibration_policy.stores import STORE_ENV

    monkeypatch.setenv(STORE_ENV, store_url)
    monkeypatch.setattr("calibration_policy.stores._followed", None)
    monkeypatch.delenv("CALIBRATION_POLICY", raising=False)
    root = tmp_path / "data"
    root.mkdir()
    (root / "calibration_policy.toml").write_text(LIVE_FILE)
    return root


def _file(root: Path) -> dict:
    return tomllib.loads((root / "calibration_policy.toml").read_text())


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _made_admin(root: Path) -> CalibrationUpdatePolicy:
    """What mallory proposes: calmer thresholds, and, quietly, mallory an admin and no four-eyes."""
    live = PolicyVersions(root).in_force().model_dump(mode="json")
    live["permissions"]["users"]["mallory"] = ["admin"]
    return CalibrationUpdatePolicy.from_dict(
        {**live, "min_delta_global": 0.05, "require_distinct_approver": False, "store": None}
    )


# -- 1. the diff ------------------------------------------------------------------------------------------------


def test_the_diff_lists_every_changed_setting_and_marks_permissions_four_eyes_and_store():
    old = CalibrationUpdatePolicy(
        min_delta_global=0.03, store=SECRET_STORE, permissions={"roles": {"op": ["view"]}, "users": {"m": ["op"]}}
    )
    new = CalibrationUpdatePolicy(
        min_delta_global=0.05,
        required_approvals=2,
        max_step=0.1,
        store="postgresql://calib:other-pw@db2/calibration",
        permissions={"roles": {"op": ["view"], "admin": ["*"]}, "users": {"m": ["admin"]}},
    )
    changes = {c.setting: c for c in policy_diff(old, new)}
    assert set(changes) == {
        "min_delta_global",
        "max_step",
        "required_approvals",
        "store",
        "permissions.roles.admin",
        "permissions.users.m",
    }
    assert (changes["min_delta_global"].before, changes["min_delta_global"].after) == (0.03, 0.05)
    assert changes["min_delta_global"].sensitive is None and changes["max_step"].before is None
    assert changes["permissions.users.m"].sensitive == "who may do what"
    assert changes["required_approvals"].sensitive == "four-eyes"
    assert changes["store"].sensitive == "where the records are kept"
    assert "s3cret-pw" not in json.dumps([c.to_dict() for c in changes.values()])  # a password never shows
    assert changes["permissions.users.m"].text == (
        'permissions.users.m: ["op"] → ["admin"] (sensitive: who may do what)'
    )
    assert changes["max_step"].text == "max_step: not set → 0.1"
    assert policy_diff(old, old) == []


def test_policy_show_and_diff_name_every_setting_a_proposal_changes(data: Path, capsys):
    proposal = PolicyProposals(data).propose(_made_admin(data), actor="mallory", reason="tidy thresholds")
    assert main(["policy", "show", proposal.proposal_id, "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"Policy proposal {proposal.proposal_id} by mallory (pending): tidy thresholds" in out
    assert "Approving it changes 3 settings, 2 of them sensitive (marked !):" in out
    assert '! permissions.users.mallory: ["operator"] → ["admin"] (sensitive: who may do what)' in out
    assert "! require_distinct_approver: true → false (sensitive: four-eyes)" in out
    assert "min_delta_global: 0.03 → 0.05" in out
    assert "store" not in out  # approving keeps the store: no change to show
    assert main(["policy", "diff", proposal.proposal_id, "--data", str(data), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["from"] == "the policy in force" and shown["to"] == f"proposal {proposal.proposal_id}"
    assert {c["setting"]: c["sensitive"] for c in shown["changes"]} == {
        "min_delta_global": None,
        "require_distinct_approver": "four-eyes",
        "permissions.users.mallory": "who may do what",
    }
    PolicyProposals(data).approve(proposal.proposal_id, actor="ana")
    version = PolicyVersions(data).current()
    assert main(["policy", "show", version.version_id, "--data", str(data), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["actor"] == "ana" and shown["via"] == "python"
    assert "permissions.users.mallory" in {c["setting"] for c in shown["changes"]}
    assert main(["policy", "show", "nope", "--data", str(data)]) == 2
    assert "There is no policy version 'nope'" in capsys.readouterr().err


# -- 2. the write never drops a key -------------------------------------------------------------------------------


def test_approving_keeps_the_store_the_permissions_and_a_setting_the_proposal_never_had(data: Path):
    proposals = PolicyProposals(data)
    # An older proposal: its record names thresholds only (no [permissions], no force_requires_approval).
    older = {"min_delta_global": 0.02, "min_sample_size": 120}
    at = datetime.now(UTC)
    proposal_id = proposals.box.create(
        at, {"at": at.isoformat(), "proposer": "mallory", "reason": "calmer", "policy": older, "status": "pending"}
    )
    assert {c.setting for c in proposals.diff(proposal_id)} == {"min_delta_global", "min_sample_size"}
    proposals.approve(proposal_id, actor="ana")
    written = _file(data)
    assert written["store"] == SECRET_STORE  # later runs still write to the database
    assert PermissionsTable(**written["permissions"]) == ADMINS
    assert written["force_requires_approval"] is True and written["require_distinct_approver"] is True
    assert (written["min_delta_global"], written["min_sample_size"]) == (0.02, 120)
    version = PolicyVersions(data).current()
    assert version.policy["force_requires_approval"] is True and version.policy["permissions"] is not None
    assert "s3cret-pw" not in json.dumps(version.to_dict())  # never the store's password in a record
    assert "s3cret-pw" not in json.dumps(proposals.get(proposal_id).to_dict())


def test_policy_set_and_rollback_keep_the_store(data: Path, tmp_path: Path, capsys):
    candidate = tmp_path / "calmer.toml"
    candidate.write_text("min_delta_global = 0.04\n")
    assert main(["policy", "set", str(candidate), "--actor", "ana", "--reason", "calmer", "--data", str(data)]) == 0
    capsys.readouterr()
    assert _file(data)["store"] == SECRET_STORE and _file(data)["min_delta_global"] == 0.04
    assert PermissionsTable(**_file(data)["permissions"]) == ADMINS
    first = PolicyVersions(data).current()
    PolicyVersions(data).record(
        CalibrationUpdatePolicy.from_dict({**first.policy, "min_delta_global": 0.06}), actor="bo", reason="x"
    )
    PolicyVersions(data).rollback(first.version_id, actor="bo", reason="too calm")
    assert _file(data)["store"] == SECRET_STORE and _file(data)["min_delta_global"] == 0.04


def test_the_panels_candidate_never_carries_the_store_address(data: Path):
    from calibration_policy_ui.tabs.lab import candidate_policy

    live = PolicyVersions(data).in_force()
    assert live.store == SECRET_STORE
    candidate = candidate_policy(live, {"min_delta_global": "0.02"})
    PolicyProposals(data).propose(candidate, actor="mallory", reason="faster")
    (proposal,) = PolicyProposals(data).pending()
    assert "store" not in proposal.policy


# -- 3. permissions and four-eyes: the governor's, for every entry point ------------------------------------------


def _as(data: Path, actor: str, permissions=None) -> Context:
    return Context.build(actor=actor, data_dir=data, permissions=permissions)


def test_policy_changes_check_change_policy_in_the_library_and_refusals_write_nothing(data: Path):
    """From Python as from the CLI and the panel: each policy change is checked once, by the governor."""
    baseline = set_policy(PolicyVersions(data).in_force(), reason="baseline", context=_as(data, "ana"))
    before = _snapshot(data)
    with pytest.raises(PermissionDeniedError, match=r"mallory may not change the policy .*change_policy"):
        set_policy(_made_admin(data), reason="tidy thresholds", context=_as(data, "mallory"))
    with pytest.raises(PermissionDeniedError, match="missing permission: change_policy"):
        roll_back_policy(baseline.version_id, reason="back", context=_as(data, "mallory"))
    with pytest.raises(PermissionDeniedError, match="missing permission: propose"):
        propose_policy(_made_admin(data), reason="tidy", context=_as(data, "vic"))
    proposals = PolicyProposals(data)
    assert _snapshot(data) == before and proposals.all() == []

    proposal = propose_policy(_made_admin(data), reason="tidy thresholds", context=_as(data, "mallory"))
    before = _snapshot(data)
    for approve in (True, False):
        with pytest.raises(PermissionDeniedError, match="missing permission: change_policy"):
            review_policy(proposal.proposal_id, approve=approve, context=_as(data, "mallory"))
    assert _snapshot(data) == before

    # the host's own check answers instead of the table when given
    with pytest.raises(PermissionDeniedError):
        review_policy(proposal.proposal_id, approve=True, context=_as(data, "ana", lambda user, action, domain: False))
    assert _snapshot(data) == before
    done = review_policy(proposal.proposal_id, approve=False, notes="makes mallory an admin", context=_as(data, "bo"))
    assert done.status == "rejected" and done.reviewer == "bo"
    with pytest.raises(StaleChangeError, match="already rejected by bo"):
        review_policy(proposal.proposal_id, approve=True, context=_as(data, "ana"))
    assert PolicyVersions(data).settle_interrupted() == []  # no change left half done behind a refusal


def test_four_eyes_on_a_policy_proposal_is_the_one_four_eyes_rule(data: Path):
    proposal = propose_policy(_made_admin(data), reason="mine", context=_as(data, "ana"))
    before = _snapshot(data)
    everyone_may = lambda user, action, domain: True  # noqa: E731 (a host's check that lets everyone change the policy)
    for who in ("ana", "Ana "):
        with pytest.raises(PermissionDeniedError, match=rf"{who.strip()} proposed policy proposal .*four-eyes"):
            review_policy(proposal.proposal_id, approve=True, context=_as(data, who, everyone_may))
    assert _snapshot(data) == before
    done = review_policy(proposal.proposal_id, approve=True, context=_as(data, "bo"))
    assert done.status == "approved" and PolicyVersions(data).current().actor == "bo"


def test_the_cli_policy_set_and_rollback_are_refused_without_change_policy(data: Path, tmp_path: Path, capsys):
    candidate = tmp_path / "admin.toml"
    candidate.write_text('[permissions.roles]\nadmin = ["*"]\n[permissions]\neveryone = ["admin"]\n')
    before = _snapshot(data)
    code = main(["policy", "set", str(candidate), "--actor", "mallory", "--reason", "x", "--data", str(data)])
    assert code == 2 and "mallory may not change the policy" in capsys.readouterr().err
    assert main(["policy", "rollback", "20250101T000000Z", "--actor", "vic", "--reason", "x", "--data", str(data)]) == 2
    assert _snapshot(data) == before


def test_a_policy_approval_killed_after_its_version_is_finished_by_the_next_change(data: Path, store_url, monkeypatch):
    """Killed between archiving the version and writing the file: the next policy change writes the file and
    records the proposal approved (on the database, the version's transaction never committed: nothing to do),
    so the archive, the file and the proposal agree."""
    from calibration_policy import policy_versions

    proposals = PolicyProposals(data)
    proposal = proposals.propose(_made_admin(data), actor="mallory", reason="tidy")

    def killed(self, effective, version):
        raise KeyboardInterrupt  # the process dies here: the version is archived, nothing else

    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(policy_versions.PolicyVersions, "_write", killed)
        proposals.approve(proposal.proposal_id, actor="ana")
    assert proposals.get(proposal.proposal_id).status == "pending" and _file(data)["min_delta_global"] == 0.03
    settled = PolicyVersions(data).settle_interrupted()
    current = PolicyVersions(data).current()
    if store_url == "files":
        assert settled == [f"policy version {current.version_id} had been archived: it is now the policy file too."]
        assert proposals.get(proposal.proposal_id).status == "approved"
        assert _file(data)["min_delta_global"] == 0.05 and _file(data)["store"] == SECRET_STORE
    else:
        assert current is None and proposals.get(proposal.proposal_id).status == "pending"
        assert _file(data)["min_delta_global"] == 0.03
    assert PolicyVersions(data).settle_interrupted() == []  # nothing left to settle


@pytest.mark.parametrize("evidence", [-1, "applies 12", [1, 2]])
def test_a_proposal_whose_evidence_is_not_named_figures_is_refused_and_writes_nothing(data: Path, evidence):
    """The panel's form takes any JSON: a number or a list as evidence is a sentence, not a crash."""
    from calibration_policy import propose_policy
    from calibration_policy.errors import CalibrationPolicyError

    before = _snapshot(data)
    with pytest.raises(CalibrationPolicyError, match="The evidence must be a JSON object of named figures"):
        propose_policy(
            _made_admin(data), reason="tidy", evidence=evidence, context=Context.build(data_dir=data, actor="mallory")
        )
    assert _snapshot(data) == before
    proposal = propose_policy(
        _made_admin(data),
        reason="tidy",
        evidence={"applies": 12},
        context=Context.build(data_dir=data, actor="mallory"),
    )
    assert PolicyProposals(data).get(proposal.proposal_id).evidence == {"applies": 12}
