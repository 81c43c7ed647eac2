"""The governor (issue 22): every change runs through one sequence, so no entry point steps around a guarantee.

Each test here failed on main 56d7ba8: a viewer approved the weights, an update and a force put a
value the domain refuses live, ``decision_made`` fired only for updates, auto mode checked no
permission, a ``weights reject`` after a killed ``weights approve`` said "the live weights are
unchanged" while the suggested weights were live, and a plugin's change could not be governed at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from calibration_policy import CalibrationUpdatePolicy, UpdateOptions
from calibration_policy.apply import apply_values
from calibration_policy.archive import Archive
from calibration_policy.cli import main
from calibration_policy.context import Context
from calibration_policy.default_plugins.scoring_weights.analysis import weights_policy
from calibration_policy.default_plugins.scoring_weights.domain import weights_target
from calibration_policy.default_plugins.scoring_weights.flow import run_auto, suggest_weights
from calibration_policy.default_plugins.scoring_weights.settings import AutoSettings
from calibration_policy.domain import Domain, Extracted
from calibration_policy.errors import InvalidRunError, PermissionDeniedError
from calibration_policy.events import Event
from calibration_policy.governor import Change, Governor, Step
from calibration_policy.history import open_history
from calibration_policy.hookspecs import hookimpl
from calibration_policy.intents import intents_dir
from calibration_policy.pipeline import (
    approve_suggestion,
    force_apply,
    modify_suggestion,
    reject_suggestion,
    roll_back,
    run_update,
)
from calibration_policy.plugins import collect, get_plugin_manager
from calibration_policy.review import ReviewStore
from calibration_policy.specs import ChangeType
from calibration_policy.target import JsonFileTarget

from .test_weights_support import EQUAL, make_trades, read_weights, write_weights

T0 = datetime(2025, 12, 1, 21, 0, tzinfo=UTC)
ROLES = (
    "[permissions.roles]\n"
    'viewer = ["view"]\n'
    'operator = ["view", "propose", "force_apply"]\n'
    'approver = ["view", "approve", "reject", "modify", "roll_back"]\n'
    "[permissions]\n"
    'everyone = ["viewer"]\n'
    "[permissions.users]\n"
    'olga = ["operator"]\n'
    'bo = ["approver"]\n'
)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root as a host keeps it: the policy in force (README's roles table), live weights, trades."""
    root = tmp_path / "data"
    root.mkdir()
    for name in ("CALIBRATION_HISTORY_DIR", "CALIBRATION_ARCHIVE_DIR", "CALIBRATION_SUGGESTIONS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALIBRATION_DATA", str(root))
    (root / "calibration_policy.toml").write_text(ROLES)
    write_weights(root / "scoring_weights.json")
    make_trades(400).to_parquet(root / "trades.parquet")
    return root


# -- one permissions source: the policy in force, for every domain ------------------------------------


def test_a_viewer_cannot_approve_suggest_or_roll_back_the_weights(data_root, capsys):
    assert main(["weights", "suggest", "--actor", "olga", "--data", str(data_root)]) == 0
    capsys.readouterr()
    before = tree(data_root)
    for command in (
        ["weights", "approve", "pending", "--by", "vic"],
        ["weights", "modify", "pending", "--by", "vic", "--wallet", "0.4", "--cluster", "0.2", "--token", "0.2"]
        + ["--context", "0.2"],
        ["weights", "reject", "pending", "--by", "vic"],
        ["weights", "suggest", "--actor", "vic"],
        ["weights", "rollback", "original", "--by", "vic"],
    ):
        assert main([*command, "--data", str(data_root)]) == 2, command
        err = capsys.readouterr().err
        assert "vic may not" in err and "on scoring_weights" in err and "nothing was changed" in err
    assert tree(data_root) == before  # byte for byte
    assert main(["weights", "approve", "pending", "--by", "bo", "--data", str(data_root)]) == 0
    assert read_weights(data_root / "scoring_weights.json") != EQUAL


def test_the_weights_settings_narrow_the_policy_in_force_but_never_widen_it(data_root):
    target = weights_target(path=data_root / "scoring_weights.json")
    widening = weights_policy(
        permissions={"roles": {"all": ["*"]}, "everyone": ["all"]},  # a settings file that tries to let everyone in
    )
    with pytest.raises(PermissionDeniedError, match="vic may not propose changes to the weights"):
        suggest_weights(make_trades(400), target, context=Context.build(policy=widening, actor="vic"))
    narrowing = weights_policy(require_distinct_approver=True)  # four-eyes for the weights only
    outcome = suggest_weights(
        make_trades(400), target, timestamp=T0, context=Context.build(policy=narrowing, actor="olga")
    )
    assert outcome.suggestion.distinct_approver  # the narrowing four-eyes rule is kept with the suggestion


def test_run_auto_needs_the_propose_permission(data_root):
    target = weights_target(path=data_root / "scoring_weights.json")
    before = tree(data_root)
    with pytest.raises(PermissionDeniedError, match="auto mode may not propose changes to the weights"):
        run_auto(make_trades(400), target, AutoSettings(enabled=True, out_of_sample_gate=False))
    assert tree(data_root) == before
    (data_root / "calibration_policy.toml").write_text(ROLES + '"auto mode" = ["operator"]\n')
    outcome = run_auto(make_trades(400), target, AutoSettings(enabled=True, out_of_sample_gate=False))
    assert outcome.action == "applied" and read_weights(data_root / "scoring_weights.json") != EQUAL


# -- the domain validates exactly what would go live ------------------------------------------------------


class MarkupDomain(Domain):
    """A host's own domain whose markups can never be negative."""

    name = "markup"
    title = "price markups"
    parameter_label_plural = "markups"
    sources = ("live",)

    def extract(self, result: Mapping[str, Any]) -> Extracted:
        return Extracted(recommended=dict(result["markups"]), sample_size=result["n"], vega_sum=result["vega"])

    def validate(self, values: Mapping[str, Any]) -> dict[str, float]:
        checked = super().validate(values)
        for scope, value in checked.items():
            if value < 0:
                raise InvalidRunError(f"The {scope} markup must not be negative, not {value:g}.")
        return checked


class MarkupPlugin:
    @hookimpl
    def register_domains(self, register):
        register(MarkupDomain())


@pytest.fixture
def markup(tmp_path: Path, fresh_plugins):
    get_plugin_manager().register(MarkupPlugin(), name="markup")
    live = tmp_path / "markup.json"
    live.write_text(json.dumps({"global": 0.5}))
    policy = CalibrationUpdatePolicy(domain="markup", min_sample_size=1, min_vega_sum=0)
    dirs = {"history_dir": tmp_path / "runs", "archive_dir": tmp_path / "archive"}
    return JsonFileTarget(live, name="markup"), policy, dirs


def test_an_update_or_force_never_puts_a_value_the_domain_refuses_live(markup):
    target, policy, dirs = markup
    result = {"markups": {"global": -0.25}, "n": 500, "vega": 10.0}
    with pytest.raises(InvalidRunError, match="The global markup must not be negative, not -0.25"):
        run_update(
            result,
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=T0),
            context=Context.build(policy=policy, **dirs),
        )
    assert json.loads(target.path.read_text()) == {"global": 0.5}
    assert Archive(dirs["archive_dir"], "markup").entries() == []
    (run,) = open_history(dirs["history_dir"]).latest("SPY", 5)
    assert not run.applied and "must not be negative" in run.applied_reason  # the run says why, nothing half done
    with pytest.raises(InvalidRunError, match="must not be negative"):
        force_apply("SPY", target=target, use="recommended", context=Context.build(policy=policy, **dirs))
    assert json.loads(target.path.read_text()) == {"global": 0.5}
    assert not intents_dir(dirs["archive_dir"], "markup").exists() or not any(
        intents_dir(dirs["archive_dir"], "markup").iterdir()
    )


def test_a_text_number_is_refused_not_coerced(markup):
    target, policy, dirs = markup
    result = {"markups": {"global": "12.5"}, "n": 500, "vega": 10.0}
    with pytest.raises(InvalidRunError, match="The Global value must be a number, not '12.5'"):
        run_update(
            result,
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=T0),
            context=Context.build(policy=policy, **dirs),
        )
    assert json.loads(target.path.read_text()) == {"global": 0.5}
    assert not dirs["history_dir"].exists() or open_history(dirs["history_dir"]).latest("SPY", 5) == []


# -- events: decision_made for every decision, change_made for every change --------------------------------


class Listener:
    def __init__(self) -> None:
        self.decisions: list[tuple[str, bool, str]] = []
        self.changes: list[Event] = []

    @hookimpl
    def decision_made(self, run, decision, policy):
        self.decisions.append((run.run_id, decision.apply, decision.reason))

    @hookimpl
    def change_made(self, event):
        self.changes.append(event)


@pytest.fixture
def listener():
    heard = Listener()
    get_plugin_manager().register(heard, name="listener")
    yield heard
    get_plugin_manager().unregister(name="listener")


def iv_result(global_m: float) -> dict[str, Any]:
    return {
        "global_metrics": {"n": 412, "vega_sum": 12400.0, "recommended_iv_multiplier": global_m},
        "bands": {},
    }


def test_every_change_kind_fires_its_event_and_every_decision_its_hook(tmp_path, listener):
    live = tmp_path / "vol.json"
    live.write_text(json.dumps({"global": 1.0}))
    target = JsonFileTarget(live, name="spy")
    dirs = {"history_dir": tmp_path / "runs", "archive_dir": tmp_path / "archive"}
    store = ReviewStore(tmp_path / "suggestions")
    what = {"underlying": "SPY", "source": "live", "target": target}
    common = {**dirs, "suggestions_dir": store.directory}
    auto = CalibrationUpdatePolicy(smoothing_window_days=1)
    waits = CalibrationUpdatePolicy(smoothing_window_days=1, require_approval=True)

    applied = run_update(
        iv_result(1.2),
        **what,
        options=UpdateOptions(timestamp=T0),
        context=Context.build(policy=auto, actor="olga", via="cli", **common),
    )
    run_update(
        iv_result(1.2),
        **what,
        options=UpdateOptions(timestamp=T0 + timedelta(days=2)),
        context=Context.build(policy=auto, **common),
    )  # too small: not applied
    first = run_update(
        iv_result(1.4),
        **what,
        options=UpdateOptions(timestamp=T0 + timedelta(days=4)),
        context=Context.build(policy=waits, **common),
    )
    approve_suggestion(
        first.run.pending_suggestion,
        target=target,
        context=Context.build(suggestions_dir=store, actor="bo", policy=waits, **dirs),
    )
    second = run_update(
        iv_result(1.1),
        **what,
        options=UpdateOptions(timestamp=T0 + timedelta(days=6)),
        context=Context.build(policy=waits, **common),
    )
    modify_suggestion(
        second.run.pending_suggestion,
        {"global": 1.3},
        target=target,
        context=Context.build(suggestions_dir=store, actor="bo", **dirs),
    )
    third = run_update(
        iv_result(1.6),
        **what,
        options=UpdateOptions(timestamp=T0 + timedelta(days=8)),
        context=Context.build(policy=waits, **common),
    )
    reject_suggestion(
        third.run.pending_suggestion,
        target=target,
        notes="too far",
        context=Context.build(suggestions_dir=store, actor="bo", **dirs),
    )
    force_apply("SPY", target=target, context=Context.build(policy=auto, actor="olga", **dirs))
    roll_back(target, applied.change.change_id, context=Context.build(actor="bo", **dirs))

    got = [(e.kind, e.status) for e in listener.changes]
    assert got == [
        ("update", "applied"),
        ("update", "not_applied"),
        ("update", "waiting"),
        ("approve", "applied"),
        ("update", "waiting"),
        ("modify", "applied"),
        ("update", "waiting"),
        ("reject", "rejected"),
        ("force", "applied"),
        ("roll_back", "rolled_back"),
    ]
    first_event = listener.changes[0].to_dict()
    assert json.loads(json.dumps(first_event)) == first_event  # JSON-safe as it is
    assert first_event["actor"] == "olga" and first_event["via"] == "cli" and first_event["domain"] == "vol_surface"
    assert first_event["before"] == {"global": 1.0} and first_event["after"]["global"] == pytest.approx(1.2)
    assert first_event["run_id"] == applied.run.run_id and first_event["change_id"] == applied.change.change_id
    assert first_event["reason"].startswith("Applied: Global 1.00 → 1.20")
    approve = listener.changes[3]
    assert approve.actor == "bo" and approve.suggestion_id == first.run.pending_suggestion
    assert approve.before["global"] == pytest.approx(1.2) and approve.after["global"] == pytest.approx(1.4)
    reject = listener.changes[7]
    assert reject.after is None and "rejected by bo (too far)" in reject.reason
    rolled = listener.changes[9]
    assert rolled.after["global"] == pytest.approx(1.2) and rolled.actor == "bo"
    assert len({e.event_id for e in listener.changes}) == 10  # each event has its own stable id
    # decision_made: every decision about a run — the rules' (5 updates, the force) and the reviewers' (3)
    applies = [applied for _, applied, _ in listener.decisions]
    assert applies == [True, False, False, True, False, True, False, False, True]
    assert listener.decisions[7][2].startswith(f"Not applied: suggestion {third.run.pending_suggestion} was rejected")


def test_the_weights_suggestion_and_auto_mode_fire_their_events(tmp_path, listener):
    target = weights_target(path=write_weights(tmp_path / "w.json"))
    dirs = {"history_dir": tmp_path / "runs", "suggestions_dir": tmp_path / "suggestions"}
    outcome = suggest_weights(make_trades(400), target, timestamp=T0, context=Context.build(actor="olga", **dirs))
    auto = run_auto(
        make_trades(600, seed=3),
        target,
        AutoSettings(enabled=True, out_of_sample_gate=False, min_trades_between=50),
        timestamp=T0 + timedelta(days=1),
        context=Context.build(archive_dir=tmp_path / "archive", **dirs),
    )
    assert auto.action == "applied"
    (suggested, applied) = listener.changes
    assert (suggested.kind, suggested.status, suggested.suggestion_id) == (
        "weights_suggest",
        "waiting",
        outcome.suggestion.suggestion_id,
    )
    assert suggested.domain == "scoring_weights" and suggested.actor == "olga" and suggested.before == EQUAL
    assert (applied.kind, applied.status, applied.actor, applied.via) == (
        "weights_auto",
        "applied",
        "auto mode",
        "auto",
    )
    assert applied.after == auto.change.new_values and applied.change_id == auto.change.change_id
    assert [a for _, a, _ in listener.decisions] == [False, True]


def test_events_are_not_fired_for_a_change_that_failed(markup, listener):
    target, policy, dirs = markup
    with pytest.raises(InvalidRunError):
        run_update(
            {"markups": {"global": -1.0}, "n": 500, "vega": 10.0},
            underlying="SPY",
            source="live",
            target=target,
            options=UpdateOptions(timestamp=T0),
            context=Context.build(policy=policy, **dirs),
        )
    assert listener.changes == [] and listener.decisions == []


# -- settling: the truth first, whatever change comes next ---------------------------------------------

KILLED_APPROVE = textwrap.dedent("""
    import os, sys
    from calibration_policy import Context
    from calibration_policy.changes import reviews
    from calibration_policy.default_plugins.scoring_weights.domain import weights_target
    from calibration_policy.pipeline import approve_suggestion
    from calibration_policy.review import ReviewStore
    real = reviews.apply_values
    def dying(*args, **kwargs):
        real(*args, **kwargs)
        os._exit(9)  # killed right after the weights file was written
    reviews.apply_values = dying
    root = sys.argv[1]
    store = ReviewStore(os.path.join(root, "suggestions"))
    pending = store.all(status="pending")[-1]
    approve_suggestion(pending.suggestion_id, target=weights_target(path=os.path.join(root, 'scoring_weights.json')), context=Context.build(suggestions_dir=store, actor='bo', via='cli'))
""")


def test_weights_reject_after_a_killed_approve_settles_first_and_tells_the_truth(data_root, tmp_path, capsys):
    assert main(["weights", "suggest", "--actor", "olga", "--data", str(data_root)]) == 0
    capsys.readouterr()
    script = tmp_path / "approve.py"
    script.write_text(KILLED_APPROVE)
    child = subprocess.run([sys.executable, str(script), str(data_root)], env=dict(os.environ), capture_output=True)
    assert child.returncode == 9, child.stderr.decode()[-2000:]
    live = read_weights(data_root / "scoring_weights.json")
    assert live != EQUAL  # the suggested weights went live before the kill
    (pending,) = ReviewStore(data_root / "suggestions").all(status="pending")  # …and the suggestion still waits
    assert main(["weights", "reject", pending.suggestion_id, "--by", "bo", "--data", str(data_root)]) == 2
    err = capsys.readouterr().err
    assert f"Suggestion {pending.suggestion_id} was already approved" in err and "nothing was changed" in err
    assert ReviewStore(data_root / "suggestions").get(pending.suggestion_id).status == "approved"
    assert read_weights(data_root / "scoring_weights.json") == live


# -- a plugin's own change kind ------------------------------------------------------------------------


class HalfDone(Change):
    """A plugin's bulk change that writes the live config, then fails before recording the rest."""

    kind = "bulk_markup"
    action = "propose"

    def __init__(self, target: JsonFileTarget) -> None:
        self.target = target

    def live(self) -> JsonFileTarget:
        return self.target

    def perform(self, step: Step) -> None:
        apply_values(
            step.target,
            {"global": 0.9},
            archive_dir=step.ctx.archive_dir,
            kind="update",
            reason="Applied: bulk markup",
            domain="markup",
            actor=step.actor,
        )
        raise OSError(28, "No space left on device")


class HalfDonePlugin:
    @hookimpl
    def register_change_kinds(self, register):
        register(ChangeType("bulk_markup", HalfDone, "Bulk markup"))


def test_a_plugin_change_kind_that_raises_leaves_nothing_half_done(markup, listener):
    target, policy, dirs = markup
    get_plugin_manager().register(HalfDonePlugin(), name="half_done")
    assert collect("change_kinds").get("bulk_markup").change is HalfDone
    ctx = Context.build(policy=policy, actor="olga", **dirs)
    with pytest.raises(OSError, match="No space left"):
        Governor(ctx).execute(HalfDone(target))
    # The intent settled it at once: the archive agrees with the live config, and no intent is left.
    (entry,) = Archive(dirs["archive_dir"], "markup").entries()
    assert entry.new_values == {"global": 0.9} and json.loads(target.path.read_text()) == {"global": 0.9}
    assert not any(intents_dir(dirs["archive_dir"], "markup").glob("*.json"))
    assert listener.changes == []  # a change that raised announces nothing
    # … in process; the outbox still tells of the value that went live, once, as settling found it.
    from calibration_policy.stores import open_outbox

    (told,) = [r["event"] for r in open_outbox(Path(dirs["history_dir"]).parent).records()]
    assert (told["change_id"], told["status"], told["after"]) == (entry.change_id, "applied", {"global": 0.9})
    viewer = Context.build(policy=CalibrationUpdatePolicy.from_dict({"domain": "markup", **_viewers()}), actor="vic")
    with pytest.raises(PermissionDeniedError, match="vic may not propose changes to the markups"):
        Governor(viewer).execute(HalfDone(target))


def _viewers() -> dict[str, Any]:
    return {"permissions": {"roles": {"viewer": ["view"]}, "everyone": ["viewer"]}}


def test_policy_changes_run_through_the_governor_with_one_four_eyes_and_their_events(tmp_path, listener):
    from calibration_policy.changes import PolicyPropose, PolicyReview, PolicyRollBack, PolicySet

    data = tmp_path / "data"
    data.mkdir()

    def governor(actor: str) -> Governor:
        return Governor(Context.build(actor=actor, history_dir=data / "calibration_runs"))

    first = governor("rita").execute(
        PolicySet(CalibrationUpdatePolicy(min_delta_global=0.05, require_distinct_approver=True), "wider", data)
    )
    proposal = governor("ana").execute(
        PolicyPropose(
            CalibrationUpdatePolicy(min_delta_global=0.02, require_distinct_approver=True), "tighter", None, data
        )
    )
    with pytest.raises(PermissionDeniedError, match=f"ana proposed policy proposal {proposal.proposal_id}, so another"):
        governor("ana").execute(PolicyReview(proposal.proposal_id, True, "", data))
    approved = governor("bo").execute(PolicyReview(proposal.proposal_id, True, "fine", data))
    governor("bo").execute(PolicyRollBack(first.version_id, "too tight", data))
    assert [(e.kind, e.status, e.actor) for e in listener.changes] == [
        ("policy_set", "applied", "rita"),
        ("policy_propose", "waiting", "ana"),
        ("policy_approve", "applied", "bo"),
        ("policy_roll_back", "rolled_back", "bo"),
    ]
    assert listener.changes[2].after["min_delta_global"] == 0.02 and approved.status == "approved"
    assert listener.changes[3].before["min_delta_global"] == 0.02  # the policy in force when it was rolled back
    assert CalibrationUpdatePolicy.load(data_dir=data).min_delta_global == 0.05


def test_a_policy_given_in_the_context_decides_and_narrows_but_never_widens(tmp_path):
    """A host's own policy object decides its updates; its [permissions] may refuse more than the policy in force,
    never allow what the policy in force refuses."""
    from calibration_policy.policy_versions import PolicyVersions

    data = tmp_path / "data"
    data.mkdir()
    viewers = {"permissions": {"roles": {"viewer": ["view"], "operator": ["view", "propose", "force_apply"]}}}
    in_force = CalibrationUpdatePolicy.from_dict(
        {**viewers, "permissions": {**viewers["permissions"], "everyone": ["viewer"]}}
    )
    PolicyVersions(data)._change(in_force, actor="setup", reason="viewers only", via="python")
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"global": 1.0}))
    target = JsonFileTarget(live, name="spy")
    wide = CalibrationUpdatePolicy.from_dict(
        {**viewers, "permissions": {**viewers["permissions"], "everyone": ["operator"]}}
    )
    before = live.read_bytes()
    with pytest.raises(PermissionDeniedError, match="may not"):
        run_update(
            iv_result(1.2),
            underlying="SPY",
            source="live",
            target=target,
            context=Context.build(policy=wide, actor="intern", data_dir=data),
        )
    assert live.read_bytes() == before and not (data / "calibration_runs").exists()

    # with an allowing policy in force, the given policy's own refusal still counts
    data = tmp_path / "open"  # no policy file: the built-in defaults, which let everyone act
    narrow = CalibrationUpdatePolicy.from_dict(
        {**viewers, "permissions": {**viewers["permissions"], "everyone": ["viewer"]}}
    )
    with pytest.raises(PermissionDeniedError, match="may not"):
        run_update(
            iv_result(1.2),
            underlying="SPY",
            source="live",
            target=target,
            context=Context.build(policy=narrow, actor="intern", data_dir=data),
        )
    assert live.read_bytes() == before
    decided = run_update(
        iv_result(1.2),
        underlying="SPY",
        source="live",
        target=target,
        context=Context.build(policy=CalibrationUpdatePolicy(min_delta_global=0.5), actor="intern", data_dir=data),
    )
    assert not decided.applied and "(Global 0.20 < 0.50)" in decided.decision.reason  # the given policy decided
