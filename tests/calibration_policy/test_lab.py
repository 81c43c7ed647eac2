"""The policy lab: replay, compare, tune, the lab's rules and the policy's versions (issue 15)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calibration_policy import CalibrationUpdatePolicy, PolicyError, should_apply_update
from calibration_policy.cli import main
from calibration_policy.default_plugins.demo import run_demo
from calibration_policy.errors import HistoryError
from calibration_policy.lab import compare, pareto_front, tune
from calibration_policy.plugins import load_plugins_dir
from calibration_policy.policy_versions import PolicyVersions, policy_fingerprint, policy_to_toml
from calibration_policy.replay import load_history, replay

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST_PLUGINS = REPO_ROOT / "examples" / "options_agent" / "plugins"
LAB_RULES = [
    "min_sample_size",
    "min_vega_sum",
    "bounds",
    "max_step",
    "stabilization_window",
    "min_delta_directional",
    "cooldown_period",
]
LAB_POLICY = CalibrationUpdatePolicy(
    rules=LAB_RULES,
    max_step=0.06,
    rule_options={
        "stabilization_window": {"days": 3},
        "min_delta_directional": {"up": 0.02, "down": 0.04},
        "cooldown_period": {"days": 4},
    },
)


def _demo(root: Path, policy: CalibrationUpdatePolicy) -> Path:
    """A demo under ``policy`` on the package's own sample source: it decides on the values the host's gives for
    every bundled day (test_demo_anywhere.py checks that) at a third of the host's calibration time."""
    load_plugins_dir(HOST_PLUGINS)
    run_demo(root, policy=policy, progress=False, builtin=True)
    return root


@pytest.fixture(scope="module")
def demo(tmp_path_factory, demo_once) -> Path:
    """The test run's demo folder (tests/conftest.py: the default policy made it), copied for this module; the
    host's plugins loaded here, as the replays need them."""
    load_plugins_dir(HOST_PLUGINS)
    return shutil.copytree(demo_once.folder, tmp_path_factory.mktemp("lab") / "demo", symlinks=True)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".index" not in p.parts
    }


def assert_reproduces(root: Path, policy: CalibrationUpdatePolicy, **args) -> None:
    runs = load_history(root / "calibration_runs")
    result = replay(runs, policy, archive_dir=root / "config_archive", **args)
    assert result.differences == []
    replayed = result.decisions
    assert len(replayed) == sum(
        1 for r in runs if r.domain == "vol_surface" and (not args.get("since") or r.timestamp >= args["since"])
    )
    by_id = {r.run_id: r for r in runs}
    for sim in replayed:
        recorded = by_id[sim.run_id].decision
        assert sim.decision.apply == recorded["apply"]
        assert sim.reason == recorded["reason"]
        assert sim.decision.values == pytest.approx(recorded["values"], rel=0, abs=0)
        assert sim.smoothed == by_id[sim.run_id].smoothed
    for u in result.underlyings.values():
        assert u.start_from == "archive"


def test_replaying_the_policy_that_ran_reproduces_every_recorded_decision(demo):
    assert_reproduces(demo, CalibrationUpdatePolicy())


def test_replaying_from_a_date_keeps_the_earlier_runs_for_smoothing(demo):
    assert_reproduces(demo, CalibrationUpdatePolicy(), since=datetime(2025, 11, 1, tzinfo=UTC))


def test_the_lab_rules_decide_the_same_live_and_in_a_replay(tmp_path):
    root = _demo(tmp_path / "demo", LAB_POLICY)
    runs = load_history(root / "calibration_runs")
    reasons = " ".join(r.applied_reason or "" for r in runs)
    assert "cooling down" in reasons  # the cooldown rule did block something live
    assert_reproduces(root, LAB_POLICY)


def test_a_candidate_shows_its_figures_and_every_differing_decision_in_words(demo):
    before = tree_digest(demo)
    result = replay(
        demo / "calibration_runs",
        CalibrationUpdatePolicy(min_delta_global=0.01, min_delta_band=0.01),
        archive_dir=demo / "config_archive",
    )
    current = replay(demo / "calibration_runs", CalibrationUpdatePolicy(), archive_dir=demo / "config_archive")
    assert result.applies > current.applies and result.mean_lag < current.mean_lag
    assert result.movement > 0 and result.flip_flops >= 0
    assert result.differences
    first = result.differences[0]
    assert first.why and first.simulated.startswith(("Applied", "Not applied")) and first.recorded
    assert json.loads(json.dumps(result.to_dict()))["differences"][0]["date"] == first.timestamp.date().isoformat()
    assert tree_digest(demo) == before  # nothing written


def test_under_require_approval_a_replay_says_the_run_would_wait_for_a_person_not_that_it_applies(demo):
    waiting = CalibrationUpdatePolicy(min_delta_global=0.01, min_delta_band=0.01, require_approval=True)
    result = replay(demo / "calibration_runs", waiting, archive_dir=demo / "config_archive")
    assert result.applies == 0 and result.differences  # the figures count no apply …
    for difference in result.differences:  # … and so do the words
        assert "would apply" not in difference.why and "Applied" not in difference.why
    first = result.differences[0]
    assert first.why.startswith("recorded not applied, the replayed policy would wait for a person to approve it — ")
    assert first.simulated.startswith("Waiting for approval: Global 1.00 → 1.05 (change 0.05, threshold 0.01)")
    # the live values the replay started from, by the domain's scope labels and as the panel shows a value
    assert "(the simulated live value differed by then: Global 1.000 (recorded 1.047), Weekly (3–10d) 1.000 " in (
        first.why
    )


def test_start_values_override_the_archive(demo):
    result = replay(
        demo / "calibration_runs",
        CalibrationUpdatePolicy(),
        {"global": 1.5, "weekly": 1.5, "monthly": 1.5},
        underlying="SPY",
        archive_dir=demo / "config_archive",
    )
    assert result.underlyings["SPY"].start_from == "given"
    assert result.decisions[0].live_before["global"] == 1.5


def test_bad_history_says_what_is_wrong(demo):
    with pytest.raises(HistoryError, match="empty"):
        replay([], CalibrationUpdatePolicy())
    with pytest.raises(HistoryError, match="No calibration runs in the range"):
        replay(demo / "calibration_runs", CalibrationUpdatePolicy(), since=datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(HistoryError, match="no runs of IWM"):
        replay(demo / "calibration_runs", CalibrationUpdatePolicy(), underlying="IWM")


@pytest.mark.parametrize(
    "text, message",
    [
        ("min_delta_globl = 0.02", "min_delta_globl"),
        ('rules = ["min_delta", "no_such_rule"]', "no_such_rule"),
        ("min_delta_global = -0.01", "min_delta_global"),
        ("min_delta_global = nan", "min_delta_global"),
        ('rules = ["cooldown_period"]\nrule_options = { cooldown_period = { days = -1 } }', "cooldown"),
        ('rules = ["min_delta_directional"]\nrule_options = { min_delta_directional = { up = nan } }', "up"),
    ],
)
def test_a_bad_candidate_fails_naming_the_problem_and_writes_nothing(capsys, demo, tmp_path, text, message):
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(text)
    with pytest.raises(PolicyError, match=message):
        CalibrationUpdatePolicy.from_toml(candidate)
    out = tmp_path / "tuned.toml"
    code = main(
        [
            "tune",
            "--policy",
            str(candidate),
            "--history-dir",
            str(demo / "calibration_runs"),
            "--param",
            "min_delta_global=0.01:0.05",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_compare_draws_the_live_value_under_each_policy(demo):
    comparison = compare(
        demo / "calibration_runs",
        {
            "current": CalibrationUpdatePolicy(),
            "loose": CalibrationUpdatePolicy(min_delta_global=0.01, min_delta_band=0.01),
        },
        archive_dir=demo / "config_archive",
    )
    assert [row["policy"] for row in comparison.rows()] == ["current", "loose"]
    svg = comparison.svg("SPY")
    assert svg.startswith("<svg") and svg.count("<path") == 2 and "loose" in svg and "recommended" in svg


def test_tune_is_deterministic_and_writes_the_chosen_candidate(demo, tmp_path):
    space = {"min_delta_global": (0.005, 0.06), "rule_options.cooldown_period.days": (1, 5)}
    base = CalibrationUpdatePolicy(rules=[*CalibrationUpdatePolicy().rules, "cooldown_period"])
    args = dict(method="random", n=12, seed=7, archive_dir=demo / "config_archive")
    first, again = (
        tune(demo / "calibration_runs", base, space, **args),
        tune(demo / "calibration_runs", base, space, **args),
    )
    assert first.to_dict() == again.to_dict()
    assert tune(demo / "calibration_runs", base, space, **{**args, "seed": 8}).to_dict() != first.to_dict()
    front = first.front
    assert front == pareto_front(first.candidates) and first.chosen in front
    for c in first.candidates:  # nothing off the front beats a front member on both
        assert not any(
            c.figures.movement < f.figures.movement and c.figures.mean_lag < f.figures.mean_lag for f in front
        )
    path = first.write(tmp_path / "tuned.toml")
    loaded = CalibrationUpdatePolicy.from_toml(path)
    assert loaded == first.chosen.policy
    grid = tune(demo / "calibration_runs", CalibrationUpdatePolicy(), {"min_delta_global": (0.01, 0.05)}, n=5)
    assert sorted(c.params["min_delta_global"] for c in grid.candidates) == [0.01, 0.02, 0.03, 0.04, 0.05]


@pytest.mark.parametrize(
    "space, message",
    [
        ({"min_delta_global": (0.05, 0.01)}, "low ≤ high"),
        ({"min_delta_global": (-1, 0.01)}, "low ≤ high"),
        ({"min_delta_global": (math.nan, 0.01)}, "finite"),
        ({"colour": (0, 1)}, "Cannot tune"),
        ({}, "at least one"),
    ],
)
def test_tune_refuses_bad_bounds(demo, space, message):
    with pytest.raises(PolicyError, match=message):
        tune(demo / "calibration_runs", CalibrationUpdatePolicy(), space, n=3)


# -- the lab's rules -----------------------------------------------------------------------------------------

T = datetime(2025, 12, 10, 21, tzinfo=UTC)


def _policy(rules, **options):
    return CalibrationUpdatePolicy(rules=rules, rule_options=options)


def test_direction_aware_thresholds():
    policy = _policy(["min_delta_directional"], min_delta_directional={"up": 0.02, "down": 0.05})
    assert should_apply_update({"global": 1.0}, {"global": 1.025}, policy).apply
    decision = should_apply_update({"global": 1.0}, {"global": 0.97}, policy)
    assert not decision.apply and "Global down 0.03 < 0.05" in decision.reason
    assert should_apply_update({"global": 1.0}, {"global": 0.95}, policy).apply


def test_cooldown_waits_days_after_the_last_change():
    policy = _policy(["cooldown_period", "min_delta"], cooldown_period={"days": 3})
    recent = {"run_time": T, "last_applied_at": T - timedelta(days=1)}
    decision = should_apply_update({"global": 1.0}, {"global": 1.2}, policy, recent)
    assert not decision.apply and "cooling down (last change 1.0 days ago, 3 days between changes)" in decision.reason
    assert decision.verdicts[0].needs == "wait 2.0 more days"
    assert should_apply_update(
        {"global": 1.0}, {"global": 1.2}, policy, {**recent, "last_applied_at": T - timedelta(days=3)}
    ).apply
    assert should_apply_update({"global": 1.0}, {"global": 1.2}, policy, {"run_time": T, "last_applied_at": None}).apply


def test_stabilization_window_takes_the_most_conservative_recent_value():
    policy = _policy(["stabilization_window", "min_delta"], stabilization_window={"days": 3})
    rising = [(T - timedelta(days=2), {"global": 1.06}), (T - timedelta(days=1), {"global": 1.10})]
    decision = should_apply_update(
        {"global": 1.0}, {"global": 1.12}, policy, {"run_time": T, "recent_smoothed": rising}
    )
    assert decision.apply and decision.values == {"global": 1.06}
    both_ways = [(T - timedelta(days=1), {"global": 0.95})]
    decision = should_apply_update(
        {"global": 1.0}, {"global": 1.12}, policy, {"run_time": T, "recent_smoothed": both_ways}
    )
    assert not decision.apply and "held at 1" in " ".join(v.text for v in decision.verdicts)
    old = [(T - timedelta(days=5), {"global": 0.95})]  # outside the window
    assert should_apply_update(
        {"global": 1.0}, {"global": 1.12}, policy, {"run_time": T, "recent_smoothed": old}
    ).values == {"global": 1.12}


def test_the_lab_rules_explain_themselves():
    text = LAB_POLICY.explain()
    assert "Cooldown" in text and "Stabilization window" in text and "by direction" in text


# -- the policy's versions ---------------------------------------------------------------------------------------


def test_policy_versions_record_who_why_as_of_and_roll_back(tmp_path):
    versions = PolicyVersions(tmp_path)
    t1, t2 = datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
    first = versions.record(CalibrationUpdatePolicy(), actor="ana", reason="baseline", at=t1)
    second = versions.record(CalibrationUpdatePolicy(min_delta_global=0.02), actor="bo", reason="react faster", at=t2)
    assert CalibrationUpdatePolicy.load(data_dir=tmp_path).min_delta_global == 0.02
    assert versions.as_of(t1 + timedelta(days=3)).version_id == first.version_id
    assert versions.as_of(t2).actor == "bo"
    assert versions.as_of(t1 - timedelta(days=1)) is None
    back = versions.rollback(first.version_id, actor="ana", reason="too jumpy")
    assert back.kind == "rollback" and back.rolled_back_to == first.version_id and back.fingerprint == first.fingerprint
    assert CalibrationUpdatePolicy.load(data_dir=tmp_path) == CalibrationUpdatePolicy()
    assert [v.reason for v in versions.versions()] == ["baseline", "react faster", "too jumpy"]
    with pytest.raises(ValueError, match="needs a reason"):
        versions.record(CalibrationUpdatePolicy(), actor="x", reason=" ")
    assert second.fingerprint == policy_fingerprint(CalibrationUpdatePolicy(min_delta_global=0.02))


def test_every_policy_round_trips_through_toml():
    for policy in (
        CalibrationUpdatePolicy(),
        LAB_POLICY,
        CalibrationUpdatePolicy(band_min_delta={"weekly": 0.05}, bounds={"min": 0.5, "max": 2.0}),
    ):
        assert CalibrationUpdatePolicy.from_dict(tomllib.loads(policy_to_toml(policy, "a\nheader"))) == policy


def test_each_run_records_the_policy_version_that_decided_it(demo):
    runs = [r for r in load_history(demo / "calibration_runs") if r.domain == "vol_surface"]
    assert {getattr(r, "policy_version", None) for r in runs} == {policy_fingerprint(CalibrationUpdatePolicy())}


# -- the commands ------------------------------------------------------------------------------------------------


def cli(capsys, *args):
    code = main([*map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_replay_compare_and_tune_commands(capsys, demo, tmp_path):
    where = ["--history-dir", demo / "calibration_runs", "--archive-dir", demo / "config_archive"]
    code, out, _ = cli(capsys, "replay", *where, "--json")
    assert code == 0 and json.loads(out)["differences"] == [] and json.loads(out)["runs"] == 130
    candidate = tmp_path / "loose.toml"
    candidate.write_text("min_delta_global = 0.01\nmin_delta_band = 0.01\n")
    code, out, _ = cli(capsys, "replay", "--policy", candidate, *where, "--underlying", "SPY", "--since", "2025-11-01")
    assert code == 0 and "Decided otherwise than recorded" in out and "SPY" in out
    code, out, err = cli(capsys, "replay", *where, "--since", "2031-01-01")
    assert code == 2 and "no calibration runs" in err
    svg = tmp_path / "chart.svg"
    code, out, _ = cli(capsys, "compare", candidate, *where, "--svg", svg)
    assert code == 0 and "live" in out and "loose" in out and svg.read_text().startswith("<svg")
    tuned = tmp_path / "tuned.toml"
    code, out, _ = cli(capsys, "tune", *where, "--param", "min_delta_global=0.01:0.05", "--n", "5", "--out", tuned)
    assert code == 0 and "Pareto front" in out and tuned.exists()
    CalibrationUpdatePolicy.from_toml(tuned)


def test_policy_commands(capsys, tmp_path):
    candidate = tmp_path / "candidate.toml"
    candidate.write_text("min_delta_global = 0.02\n")
    data = ["--data", tmp_path / "data"]
    code, out, _ = cli(capsys, "policy", "set", candidate, "--actor", "ana", "--reason", "react faster", *data)
    assert code == 0 and "is live" in out
    code, out, _ = cli(capsys, "policy", "log", "--json", *data)
    versions = json.loads(out)
    assert [v["actor"] for v in versions] == ["ana"]
    code, out, _ = cli(capsys, "policy", "as-of", "2999-01-01", *data)
    assert code == 0 and "react faster" in out and "0.02" in out
    code, out, _ = cli(
        capsys, "policy", "rollback", versions[0]["version_id"], "--actor", "bo", "--reason", "again", *data
    )
    assert code == 0 and "Rolled back" in out
    code, _, err = cli(capsys, "policy", "rollback", "nope", "--actor", "bo", "--reason", "x", *data)
    assert code == 2 and "no policy version" in err


def test_replay_is_in_the_public_api_even_after_its_module_was_imported(demo):
    import calibration_policy
    import calibration_policy.lab
    from calibration_policy import ReplayResult
    from calibration_policy import replay as public_replay

    result = public_replay(
        load_history(demo / "calibration_runs"), CalibrationUpdatePolicy(), archive_dir=demo / "config_archive"
    )
    assert isinstance(result, ReplayResult) and result.differences == []
    assert "replay" in calibration_policy.__all__ and "ReplayResult" in calibration_policy.__all__


def test_replay_reads_the_store_in_use(capsys, store_url, tmp_path, request):
    """On PostgreSQL as on files: the runs and the archive the replay starts from come from the store."""
    if store_url == "files":  # the module's demo folder, copied (the same policy made it)
        root = shutil.copytree(request.getfixturevalue("demo"), tmp_path / "demo")
    else:
        root = _demo(tmp_path / "demo", CalibrationUpdatePolicy())
    where = ["--history-dir", root / "calibration_runs", "--archive-dir", root / "config_archive"]
    if store_url != "files":
        assert not (root / "calibration_runs").exists()  # nothing to read there: all of it is in the database
    code, out, _ = cli(capsys, "replay", *where, "--json")
    report = json.loads(out)
    assert code == 0 and report["differences"] == [] and report["runs"] == 130
    assert {u["start_from"] for u in report["underlyings"].values()} == {"archive"}
    code, _, err = cli(capsys, "replay", *where, "--since", "2031-01-01")
    assert code == 2 and "no calibration runs" in err
    if store_url != "files":
        assert "calibration_runs" not in err and "database" in err
