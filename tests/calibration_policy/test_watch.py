"""Watch after apply: the runs after a change score the new values against the old ones, and a change the runs
contradict is rolled back (or left to a person) through the governed path, once."""

from __future__ import annotations

import json
import math
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calibration_policy import CalibrationUpdatePolicy, Context, UpdateOptions
from calibration_policy.errors import PolicyError
from calibration_policy.hookspecs import hookimpl
from calibration_policy.pipeline import run_update
from calibration_policy.plugins import get_domain, get_plugin_manager
from calibration_policy.stores import open_archive
from calibration_policy.target import JsonFileTarget
from calibration_policy.watch import sign_p, signed_rank_p, verdicts

T0 = datetime(2025, 12, 10, 15, 30, tzinfo=UTC)
OLD = {"global": 1.0, "weekly": 1.0, "monthly": 1.0}
# Thresholds no daily run reaches: only the forced change moves the live values, so the watch sees one change.
QUIET = {"min_delta_global": 0.5, "min_delta_band": 0.5}


@pytest.fixture
def live(tmp_path: Path) -> JsonFileTarget:
    path = tmp_path / "live.json"
    path.write_text(json.dumps(OLD, indent=2))
    return JsonFileTarget(path)


@pytest.fixture
def events():
    seen = []

    class Listener:
        @hookimpl
        def change_made(self, event):
            seen.append(event)

    plugin = Listener()
    get_plugin_manager().register(plugin)
    yield seen
    get_plugin_manager().unregister(plugin)


@pytest.fixture
def flow(tmp_path: Path, live: JsonFileTarget, make_result):
    dirs = {"history_dir": tmp_path / "runs", "archive_dir": tmp_path / "archive", "suggestions_dir": tmp_path / "sugg"}

    def update(policy, day: int, value: float, target=None, force: bool = False, **kw):
        result = make_result(global_m=value, bands={"weekly": value, "monthly": value})
        return run_update(
            result,
            underlying="SPY",
            source="harvested",
            target=target or live,
            options=UpdateOptions(timestamp=T0 + timedelta(days=day), force=force),
            context=Context.build(policy=policy, **dirs, **kw),
        )

    update.dirs = dirs
    update.archive = lambda: open_archive(dirs["archive_dir"], live.name).entries()
    update.verdicts = lambda policy: verdicts(dirs["archive_dir"], dirs["history_dir"], live.name, policy)
    return update


def watching(**settings) -> CalibrationUpdatePolicy:
    return CalibrationUpdatePolicy(**QUIET, **{"watch_runs": 5, "watch_action": "roll_back", **settings})


def test_a_change_the_next_runs_contradict_is_rolled_back_by_the_watch(flow, live, events, store_url):
    policy = watching()
    changed = flow(policy, 0, 1.08, force=True).change
    for day, value in enumerate([1.001, 0.998, 1.002, 0.999], start=1):
        flow(policy, day, value)
        assert json.loads(live.path.read_text())["global"] == pytest.approx(1.08)  # still watching
    assert flow.verdicts(policy)[changed.change_id].words == (
        "Watching: 4 of 5 runs; the new values fit better in 0 of 4."
    )
    flow(policy, 5, 1.0)
    assert json.loads(live.path.read_text()) == pytest.approx(OLD)
    entries = flow.archive()
    assert [e.kind for e in entries] == ["force", "rollback"]
    undo = entries[-1]
    assert (undo.actor, undo.via, undo.by, undo.watch_of) == ("watch", "watch", "watch", changed.change_id)
    verdict = flow.verdicts(policy)[changed.change_id]
    assert verdict.state == "failed" and verdict.rolled_back_by == undo.change_id
    assert verdict.words.startswith(
        "Failed: 5 of 5 runs; the new values fit better in 0 of 5, worse by more than 2% in 5"
    )
    assert "sign test p = 0.0312 ≤ 0.05" in verdict.words
    [told] = [e for e in events if e.kind == "watch"]
    assert (told.status, told.actor, told.change_id, told.after) == ("rolled_back", "watch", changed.change_id, OLD)
    # Later runs neither roll back again nor tell again.
    flow(policy, 6, 1.0)
    assert [e.kind for e in flow.archive()] == ["force", "rollback"]
    assert len([e for e in events if e.kind == "watch"]) == 1


def test_a_change_the_next_runs_confirm_passes_and_stays_live(flow, live, events):
    policy = watching(watch_test="wilcoxon")
    changed = flow(policy, 0, 1.08, force=True).change
    for day, value in enumerate([1.079, 1.082, 1.078, 1.081, 1.08], start=1):
        flow(policy, day, value)
    verdict = flow.verdicts(policy)[changed.change_id]
    assert verdict.state == "passed", verdict.words
    assert verdict.words == (
        "Passed: 5 of 5 runs; the new values fit better in 5 of 5 (Wilcoxon signed-rank test p = 0.0312 ≤ 0.05)."
    )
    assert json.loads(live.path.read_text())["global"] == pytest.approx(1.08)
    assert [e.kind for e in flow.archive()] == ["force"]
    assert [e.status for e in events if e.kind == "watch"] == ["passed"]


def test_a_change_killed_before_its_watch_settled_is_settled_by_the_next_update(flow, monkeypatch, store_url):
    """The settle after a change is skipped once the newest change is recorded; a change killed before it was
    recorded leaves the one it replaced watching, and the next update settles both before it judges."""
    from calibration_policy import watch

    policy = watching()
    first = flow(policy, 0, 1.08, force=True).change
    flow(policy, 1, 1.0)
    with monkeypatch.context() as killed:
        killed.setattr(watch, "settle", lambda step: None)  # as if killed between its archive entry and settle
        second = flow(policy, 2, 1.2, force=True).change
    assert flow.verdicts(policy)[first.change_id].state == "watching"
    assert second.change_id not in flow.verdicts(policy)
    flow(policy, 3, 1.2)
    found = flow.verdicts(policy)
    assert found[first.change_id].state == "inconclusive", found[first.change_id].words
    assert found[first.change_id].runs == 1
    assert (found[second.change_id].state, found[second.change_id].runs) == ("watching", 1)


def test_the_per_scope_test_pairs_each_band_of_each_run_and_records_which_test_it_was(flow, live, events):
    policy = watching(watch_test="permutation_scopes")
    changed = flow(policy, 0, 1.08, force=True).change
    for day, value in enumerate([1.001, 0.998, 1.002, 0.999, 1.0], start=1):
        flow(policy, day, value)
    assert json.loads(live.path.read_text()) == pytest.approx(OLD)  # rolled back, as with a run's test
    verdict = flow.verdicts(policy)[changed.change_id]
    assert (verdict.state, verdict.test, verdict.pairs, verdict.runs) == ("failed", "permutation_scopes", 10, 5)
    assert "permutation test on 10 paired scope scores p = 0.000977 ≤ 0.05" in verdict.words  # weekly, monthly
    assert flow.archive()[0].watch["test"] == "permutation_scopes"  # in the durable record


def test_too_few_runs_before_the_next_change_is_inconclusive_never_a_roll_back(flow, live, store_url):
    policy = watching()
    first = flow(policy, 0, 1.08, force=True).change
    flow(policy, 1, 1.0)
    flow(policy, 2, 1.0)
    second = flow(policy, 3, 1.2, force=True).change
    found = flow.verdicts(policy)
    assert found[first.change_id].state == "inconclusive"
    assert found[first.change_id].words == (
        "Inconclusive: only 2 of 5 runs; the new values fit better in 0 of 2 before the next change replaced them."
    )
    assert found[second.change_id].state == "watching"
    assert [e.kind for e in flow.archive()] == ["force", "force"]
    # Recorded on the changes by the change that replaced the first one, and by the second as it went live.
    replaced, live_now = (entry.watch for entry in flow.archive())
    assert (replaced["state"], replaced["runs"], live_now["state"], live_now["runs"]) == (
        "inconclusive",
        2,
        "watching",
        0,
    )


def test_a_score_that_is_nan_makes_the_watch_inconclusive_and_names_the_run(flow, live, events, monkeypatch):
    policy = watching()
    changed = flow(policy, 0, 1.08, force=True).change
    flow(policy, 1, 1.0)
    broken = flow(policy, 2, 1.0).run
    default_score = type(get_domain("vol_surface")).score

    def score(self, values, run):  # a domain whose score cannot handle one run
        return math.nan if run.run_id == broken.run_id else default_score(self, values, run)

    monkeypatch.setattr(type(get_domain("vol_surface")), "score", score)
    for day in range(3, 7):
        flow(policy, day, 1.0)
    verdict = flow.verdicts(policy)[changed.change_id]
    assert verdict.state == "inconclusive" and verdict.cannot_score == broken.run_id
    assert verdict.words.startswith(f"Cannot score: run {broken.run_id} gives no score")
    assert json.loads(live.path.read_text())["global"] == pytest.approx(1.08)
    assert [e.kind for e in flow.archive()] == ["force"]


def test_a_watch_the_permissions_refuse_waits_for_a_person(flow, live, events):
    table = {"roles": {"admin": ["*"], "viewer": ["propose"]}, "users": {"ana": ["admin"], "watch": ["viewer"]}}
    policy = watching(permissions=table)
    changed = flow(policy, 0, 1.08, force=True, actor="ana").change
    for day in range(1, 6):
        flow(policy, day, 1.0, actor="ana")
    assert json.loads(live.path.read_text())["global"] == pytest.approx(1.08)
    assert [e.kind for e in flow.archive()] == ["force"]
    [told] = [e for e in events if e.kind == "watch"]
    assert told.status == "roll_back_waiting"
    assert "watch may not roll back the IV multipliers (missing permission: roll_back" in told.reason
    assert told.reason.endswith(
        f"A person must roll {live.name} back to original (the panel's Undo on change {changed.change_id}, "
        "or: calibration-policy rollback original --underlying SPY)."
    )
    assert flow.verdicts(policy)[changed.change_id].state == "failed"


def test_propose_roll_back_tells_a_person_and_changes_nothing(flow, live, events):
    policy = watching(watch_action="propose_roll_back")
    flow(policy, 0, 1.08, force=True)
    for day in range(1, 6):
        flow(policy, day, 1.0)
    assert [e.kind for e in flow.archive()] == ["force"]
    assert [e.status for e in events if e.kind == "watch"] == ["roll_back_proposed"]


@pytest.mark.parametrize("kill", ["before the roll back", "after the roll back"])
def test_a_watch_killed_around_its_roll_back_rolls_back_exactly_once(flow, live, monkeypatch, kill, store_url):
    from calibration_policy import watch

    policy = watching()
    changed = flow(policy, 0, 1.08, force=True).change
    for day in range(1, 5):
        flow(policy, day, 1.0)
    real = watch.apply_values

    def killed(*args, **kwargs):
        if kill == "after the roll back":
            real(*args, **kwargs)
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(watch, "apply_values", killed)
    with pytest.raises(KeyboardInterrupt):
        flow(policy, 5, 1.0)
    monkeypatch.setattr(watch, "apply_values", real)
    flow(policy, 6, 1.0)  # the next update settles
    flow(policy, 7, 1.0)
    undone = [e for e in flow.archive() if getattr(e, "watch_of", None) == changed.change_id]
    assert len(undone) == 1
    assert json.loads(live.path.read_text()) == pytest.approx(OLD)


def test_the_hard_limit_fails_a_change_before_the_test_could(flow, live):
    policy = watching(watch_runs=8, watch_hard_limit={"runs": 3, "worse_by": 0.25})
    changed = flow(policy, 0, 1.08, force=True).change
    for day in range(1, 4):
        flow(policy, day, 1.0)
    verdict = flow.verdicts(policy)[changed.change_id]
    assert verdict.words.startswith(
        "Failed: the new values fit worse by more than 25% in 3 runs in a row (the hard limit), after 3 of 8 runs."
    )
    assert json.loads(live.path.read_text()) == pytest.approx(OLD)


def test_a_watch_too_short_to_ever_conclude_is_refused():
    with pytest.raises(PolicyError, match=r"watch_runs 3 can never reach watch_alpha 0.05: .* 0.125; watch at least 5"):
        CalibrationUpdatePolicy(watch_runs=3)


def test_the_exact_tests_match_their_textbook_values():
    assert sign_p(5, 5) == pytest.approx(1 / 32)
    assert sign_p(6, 8) == pytest.approx((28 + 8 + 1) / 256)
    # Ranks 1, 2, 3.5, 3.5, 5 with only rank 2 negative: 3 of the 32 sign patterns have a negative sum ≤ 2.
    assert signed_rank_p([1, -2, 3, 3, 5]) == pytest.approx(3 / 32)
    assert signed_rank_p([0, 0]) == 1.0


def test_the_default_score_is_the_evidence_weighted_tracking_error(make_result):
    from calibration_policy.history import build_run

    result = make_result(global_m=1.1, bands={"weekly": 1.2, "monthly": 1.0}, n=400)
    for band in result["bands"].values():  # a run without band vega: the vol surface falls back to the default
        del band["vega_sum"]
    run = build_run(result, "SPY", "live", T0)
    domain = get_domain("vol_surface")
    assert domain.score(OLD, run) == pytest.approx((0.1 + 0.2 + 0.0) / 3 * 20)
    assert domain.score({"other": 1.0}, run) is None


def _bands_result(make_result, weekly: float, monthly: float, vega=(100.0, 12300.0), **kw):
    """A run whose weekly band holds little vega and whose monthly band holds the rest."""
    result = make_result(global_m=1.0, bands={"weekly": weekly, "monthly": monthly}, vega_sum=sum(vega), **kw)
    result["bands"]["weekly"]["vega_sum"], result["bands"]["monthly"]["vega_sum"] = vega
    return result


def test_the_vol_surface_scores_values_on_the_runs_own_bands_weighted_by_vega(make_result):
    from calibration_policy.history import build_run

    run = build_run(_bands_result(make_result, 1.10, 1.00, n=400), "SPY", "live", T0)
    domain = get_domain("vol_surface")
    # |multiplier / recommended − 1| per band (= |model IV × multiplier − market IV| / market IV), vega-weighted.
    assert domain.score(OLD, run) == pytest.approx(100 * (0.10 / 1.10) / 12400 * 20)
    assert domain.score({"global": 1.0, "weekly": 1.10, "monthly": 1.03}, run) == pytest.approx(
        12300 * 0.03 / 12400 * 20
    )
    assert domain.score({"global": 1.10}, run) == pytest.approx(12300 * 0.10 / 12400 * 20)  # the global prices both
    # A band that gives its vega-weighted mean IVs is scored on them; options no band covers use the global value.
    result = _bands_result(make_result, 1.10, 1.00, vega=(100.0, 9900.0), n=400)
    result["global_metrics"]["vega_sum"] = 12400.0
    result["bands"]["monthly"].update(market_iv=0.20, synthetic_iv=0.25)
    run = build_run(result, "SPY", "live", T0)
    expected = (100 * (0.10 / 1.10) + 9900 * abs(0.25 - 0.20) / 0.20 + 2400 * 0.0) / 12400 * 20
    assert domain.score(OLD, run) == pytest.approx(expected)


@pytest.mark.parametrize(("monthly", "state"), [(1.03, "failed"), (1.00, "passed")])
def test_the_watch_on_a_vol_surface_judges_the_fit_on_the_runs_buckets(flow, live, make_result, monthly, state):
    """A forced change moves weekly to its recommendation (a band with little vega) and monthly to ``monthly``
    while the runs recommend 1.00 for it (most of the vega): 3 % off fits the buckets worse although the
    unweighted tracking error over scopes calls it better; on the mark, it fits them better."""
    from calibration_policy.domain import tracking_error_parts

    def tracking_error(values, run):  # the default score's view, scope by scope, unweighted by vega
        parts = tracking_error_parts(values, run)
        return sum(parts.values()) / len(parts)

    policy = watching()
    context = Context.build(policy=policy, **flow.dirs)

    def update(day: int, weekly: float, monthly: float, force: bool = False):
        return run_update(
            _bands_result(make_result, weekly, monthly),
            underlying="SPY",
            source="harvested",
            target=live,
            options=UpdateOptions(timestamp=T0 + timedelta(days=day), force=force),
            context=context,
        )

    changed = update(0, 1.10, monthly, force=True).change
    assert changed.new_values == pytest.approx({"global": 1.0, "weekly": 1.10, "monthly": monthly})
    runs = [update(day, 1.10, 1.00).run for day in range(1, 6)]
    verdict = flow.verdicts(policy)[changed.change_id]
    assert verdict.state == state, verdict.words
    domain = get_domain("vol_surface")
    new, old = changed.new_values, changed.previous_values
    assert all(tracking_error(new, run) < tracking_error(old, run) for run in runs)
    assert all((domain.score(new, run) > domain.score(old, run)) == (state == "failed") for run in runs)


def test_a_broken_band_entry_makes_the_watch_say_it_cannot_score(flow, live, make_result, store_url):
    policy = watching()
    changed = flow(policy, 0, 1.08, force=True).change
    flow(policy, 1, 1.0)
    result = make_result(global_m=1.0, bands={"weekly": 1.0, "monthly": 1.0})
    result["bands"]["weekly"]["vega_sum"] = "lots"
    broken = run_update(
        result,
        underlying="SPY",
        source="harvested",
        target=live,
        options=UpdateOptions(timestamp=T0 + timedelta(days=2)),
        context=Context.build(policy=policy, **flow.dirs),
    ).run
    for day in range(3, 7):
        flow(policy, day, 1.0)
    verdict = flow.verdicts(policy)[changed.change_id]
    assert verdict.state == "inconclusive" and verdict.cannot_score == broken.run_id, verdict.words
    assert json.loads(live.path.read_text())["global"] == pytest.approx(1.08)
    assert [e.kind for e in flow.archive()] == ["force"]


def test_status_history_and_the_panel_say_how_the_watch_stands(flow, capsys, tmp_path, fresh_plugins):
    from calibration_policy.cli import main
    from calibration_policy.plugins import get_target_factory, load_plugins_dir

    host = Path(__file__).parents[2] / "examples" / "options_agent"
    load_plugins_dir(host / "plugins")  # the host's live config (its vol surface file)
    config = tmp_path / "vol_surface.json"
    shutil.copyfile(host / "config" / "vol_surface.json", config)
    live = get_target_factory("vol_surface")("SPY", str(config))

    (tmp_path / "policy.toml").write_text(
        'min_delta_global = 0.5\nmin_delta_band = 0.5\nwatch_runs = 5\nwatch_action = "roll_back"\n'
    )
    policy = CalibrationUpdatePolicy.load(tmp_path / "policy.toml")
    changed = flow(policy, 0, 1.08, force=True, target=live).change
    for day in range(1, 4):
        flow(policy, day, 1.0, target=live)
    dirs = ["--history-dir", str(flow.dirs["history_dir"]), "--archive-dir", str(flow.dirs["archive_dir"])]
    common = ["--policy", str(tmp_path / "policy.toml"), "--plugins-dir", str(host / "plugins"), *dirs]
    watching = "Watching: 3 of 5 runs; the new values fit better in 0 of 3."

    assert main(["status", "SPY", "--config", str(config), *common]) == 0
    assert f"Watch after apply of change {changed.change_id}: {watching}" in capsys.readouterr().out
    assert main(["status", "SPY", "--config", str(config), *common, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["watch"]["state"] == "watching" and report["watch"]["words"] == watching
    assert (report["watch"]["runs"], report["watch"]["wanted"], report["watch"]["new_better"]) == (3, 5, 0)

    for day in (4, 5):
        flow(policy, day, 1.0, target=live)
    assert main(["history", "--changes", *common, "--json"]) == 0
    force, undo = json.loads(capsys.readouterr().out)
    assert force["watch"].startswith("Failed: 5 of 5 runs") and force["watch"].endswith(
        f"Rolled back by the watch ({undo['change_id']})."
    )
    assert (undo["who"], undo["via"], undo["watch"]) == ("watch", "watch", None)
    assert main(["history", "--changes", *common, "--full"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[2].split()[-1] == "Watch" and "Failed: 5 of 5" in out


@pytest.mark.parametrize(("later", "wrong"), [(1.0, 0), (1.08, 1)])
def test_replay_counts_the_roll_backs_the_watch_would_make_and_the_wrong_ones(make_result, later, wrong):
    from calibration_policy.history import build_run
    from calibration_policy.replay import replay

    def run(day, value, n):
        result = make_result(global_m=value, bands={"weekly": value, "monthly": value}, n=n)
        return build_run(result, "SPY", "live", T0 + timedelta(days=day))

    # Day 0 applies 1.08; the thin runs after it (never applied themselves) recommend 1.0, then `later`.
    runs = [run(0, 1.08, 412)] + [run(d, 1.0, 100) for d in range(1, 6)] + [run(d, later, 100) for d in range(6, 11)]
    result = replay(runs, CalibrationUpdatePolicy(watch_runs=5, watch_action="roll_back"), start_values=OLD)
    assert result.applies == 1 and result.watch == (1, wrong)
    assert result.to_dict(decisions=False)["watch_rolled_back"] == 1
    assert result.summary().endswith(
        f"The watch after apply would roll back 1 changes, {wrong} of them wrongly (the old values then fit worse)."
    )
    assert replay(runs, CalibrationUpdatePolicy(), start_values=OLD).watch is None


def test_each_verdict_is_recorded_on_the_change_by_the_update_that_reached_it(flow, live, monkeypatch, store_url):
    from calibration_policy import watch

    policy = watching()
    changed = flow(policy, 0, 1.08, force=True).change
    [entry] = flow.archive()
    assert entry.watch["state"] == "watching" and entry.watch["runs"] == 0  # recorded with the change itself
    for day, value in enumerate([1.001, 0.998, 1.002], start=1):
        flow(policy, day, value)
        assert (flow.archive()[0].watch["state"], flow.archive()[0].watch["runs"]) == ("watching", day)
    flow(policy, 4, 0.999)
    flow(policy, 5, 1.0)
    force, undo = flow.archive()
    record = force.watch
    assert (record["state"], record["runs"], record["new_worse"], record["action"]) == ("failed", 5, 5, "roll_back")
    assert record["p_worse"] == pytest.approx(1 / 32) and record["p_better"] == pytest.approx(1.0)
    assert record["rolled_back_by"] == undo.change_id and record["rolled_back_who"] == "the watch"
    # Readers read the record: nothing is judged again, and a later policy does not rewrite what the watch did.
    monkeypatch.setattr(watch, "judge", lambda *a, **k: pytest.fail("a reader recomputed the verdict"))
    read = flow.verdicts(watching(watch_runs=20, watch_test="wilcoxon"))[changed.change_id]
    assert read.words.startswith("Failed: 5 of 5 runs; the new values fit better in 0 of 5")
    assert read.words.endswith(f"Rolled back by the watch ({undo.change_id}).")


@pytest.mark.parametrize("kill", ["recording the verdict", "noting the roll back"])
def test_a_watch_killed_at_its_record_settles_on_the_next_change_and_rolls_back_once(
    flow, live, monkeypatch, kill, store_url
):
    from calibration_policy import watch

    policy = watching()
    changed = flow(policy, 0, 1.08, force=True).change
    for day in range(1, 5):
        flow(policy, day, 1.0)
    real = watch._record

    def killed(archive, change, verdict):
        if verdict.state == "failed" and (kill == "recording the verdict" or verdict.rolled_back_by):
            raise KeyboardInterrupt  # the process dies before this record is durable
        return real(archive, change, verdict)

    monkeypatch.setattr(watch, "_record", killed)
    with pytest.raises(KeyboardInterrupt):
        flow(policy, 5, 1.0)
    monkeypatch.setattr(watch, "_record", real)
    flow(policy, 6, 1.0)  # the next update settles what the killed one left
    flow(policy, 7, 1.0)
    entries = flow.archive()
    undone = [e for e in entries if getattr(e, "watch_of", None) == changed.change_id]
    assert len(undone) == 1
    assert entries[0].watch["state"] == "failed" and entries[0].watch["rolled_back_by"] == undone[0].change_id
    assert json.loads(live.path.read_text()) == pytest.approx(OLD)


def _proposed(flow):
    from calibration_policy.stores import open_reviews

    return open_reviews(flow.dirs["suggestions_dir"])


def test_propose_roll_back_makes_a_pending_suggestion_a_person_approves(flow, live, events, store_url):
    from calibration_policy.pipeline import approve_suggestion

    table = {"roles": {"admin": ["*"]}, "users": {"ana": ["admin"]}}
    policy = watching(watch_action="propose_roll_back", permissions=table)
    changed = flow(policy, 0, 1.08, force=True, actor="ana").change
    for day in range(1, 6):
        flow(policy, day, 1.0, actor="ana")
    [item] = _proposed(flow).all(status="pending")
    assert (item.values, item.current_values) == (OLD, {"global": 1.08, "weekly": 1.08, "monthly": 1.08})
    assert (item.proposed_by, item.proposed_via, item.details["watch_of"]) == ("watch", "watch", changed.change_id)
    assert item.reason == (
        "The watch failed: the new values fit worse on 5 of 5 runs since the change of 10 Dec at 15:30 UTC "
        f"({changed.change_id}) (p = 0.031); approving puts back Global 1.00, Monthly 1.00, Weekly 1.00."
    )
    [told] = [e for e in events if e.kind == "watch"]
    assert (told.status, told.suggestion_id) == ("roll_back_proposed", item.suggestion_id)
    assert flow.archive()[0].watch["suggestion_id"] == item.suggestion_id
    flow(policy, 6, 1.0, actor="ana")  # a later run proposes nothing more
    assert len(_proposed(flow).all()) == 1
    assert json.loads(live.path.read_text())["global"] == pytest.approx(1.08)  # nothing moved without a person

    context = Context.build(policy=policy, actor="ana", **flow.dirs)
    assert approve_suggestion(item.suggestion_id, target=live, context=context).status == "approved"
    assert json.loads(live.path.read_text()) == pytest.approx(OLD)
    force, approval = flow.archive()
    assert (approval.kind, approval.by, approval.watch_of) == ("approve", "ana", changed.change_id)
    assert force.watch["rolled_back_by"] == approval.change_id
    assert flow.verdicts(policy)[changed.change_id].words.endswith(
        f"Rolled back by ana, approving the watch's proposal ({approval.change_id})."
    )


def test_a_proposed_roll_back_obeys_permissions_and_four_eyes(flow, live):
    from calibration_policy.errors import PermissionDeniedError
    from calibration_policy.pipeline import approve_suggestion

    table = {"roles": {"admin": ["*"], "viewer": ["propose"]}, "users": {"ana": ["admin"], "bob": ["admin"]}}
    table["users"]["vic"] = ["viewer"]
    policy = watching(watch_action="propose_roll_back", permissions=table, required_approvals=2)
    flow(policy, 0, 1.08, force=True, actor="ana")
    for day in range(1, 6):
        flow(policy, day, 1.0, actor="ana")
    [item] = _proposed(flow).all(status="pending")

    def approve(who):
        return approve_suggestion(
            item.suggestion_id, target=live, context=Context.build(policy=policy, actor=who, **flow.dirs)
        )

    with pytest.raises(PermissionDeniedError, match="vic may not approve"):
        approve("vic")
    assert approve("ana").status == "pending"  # approval 1 of 2: still the bad values
    assert json.loads(live.path.read_text())["global"] == pytest.approx(1.08)
    assert approve("bob").status == "approved"
    assert json.loads(live.path.read_text()) == pytest.approx(OLD)


def test_a_proposed_roll_back_expires_when_a_newer_change_replaces_the_one_it_would_undo(flow, live):
    policy = watching(watch_action="propose_roll_back")
    changed = flow(policy, 0, 1.08, force=True).change
    for day in range(1, 6):
        flow(policy, day, 1.0)
    [item] = _proposed(flow).all(status="pending")
    newer = flow(policy, 6, 1.03, force=True).change
    done = _proposed(flow).get(item.suggestion_id)
    assert done.status == "expired"
    assert done.expired_reason == (
        f"the change it would roll back ({changed.change_id}) is no longer live: {newer.change_id} replaced it"
    )
