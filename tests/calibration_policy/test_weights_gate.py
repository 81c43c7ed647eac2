"""Issue 25: the auto gate judges exactly what it applies, spends a per-stream budget across looks,
refuses settings that cannot test for signal, and refuses repeated trades by name.

The rates themselves (noise per decision and per stream, power) are measured by
``benchmarks/bench_weights_gate.py``, not here: a unit test cannot run 150 streams of 13 looks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from calibration_policy import Context
from calibration_policy.archive import Archive
from calibration_policy.default_plugins.scoring_weights.analysis import analyze_trades, weights_policy
from calibration_policy.default_plugins.scoring_weights.budget import budget_for
from calibration_policy.default_plugins.scoring_weights.domain import weights_target
from calibration_policy.default_plugins.scoring_weights.evidence import evaluate, evaluate_with_options
from calibration_policy.default_plugins.scoring_weights.flow import run_auto, suggest_weights
from calibration_policy.default_plugins.scoring_weights.live import go_live, live_step
from calibration_policy.default_plugins.scoring_weights.settings import AutoSettings, load_weights_settings
from calibration_policy.errors import PolicyError
from calibration_policy.stores import open_store

from .test_weights_support import EQUAL, make_trades, read_weights, write_weights

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "trades.parquet"
ON = AutoSettings(enabled=True)
DAY = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path]:
    return {name: tmp_path / name for name in ("history_dir", "suggestions_dir", "archive_dir")}


@pytest.fixture
def target(tmp_path: Path):
    return weights_target(path=write_weights(tmp_path / "scoring_weights.json"))


# -- 1. the evidence is of exactly the values that would go live ------------------------------------------


def test_on_the_bundled_trades_auto_mode_judges_the_bounded_step_it_would_apply(target, env):
    """On main the gate measured the full suggestion (+2,765, p = 0.005) and applied the bounded step,
    whose own figures (+780, interval −345 to +1,875) fail."""
    before = target.path.read_bytes()
    outcome = run_auto(BUNDLED, target, ON, context=Context.build(**env))
    assert outcome.action == "suggested" and target.path.read_bytes() == before
    reason = outcome.suggestion.reason
    assert "not shown to help on 480 later trades it never saw: +780 PnL taking as many trades" in reason
    assert "its 90% interval (-345 to +1,875) does not lie above zero" in reason
    assert "+2,765" not in reason
    assert Archive(env["archive_dir"], target.name).entries() == []


def test_the_values_measured_are_the_smoothed_and_bounded_values_that_go_live(target, env):
    """With an earlier suggestion in the window, what goes live is smoothed, then bounded: the evidence fits
    exactly that, and a fold smooths only with suggestions whose trades closed before it is scored."""
    earlier = make_trades(400, seed=11)
    suggest_weights(
        earlier,
        target,
        timestamp=DAY,
        context=Context.build(**{k: env[k] for k in ("history_dir", "suggestions_dir", "archive_dir")}),
    )
    trades = pd.concat(
        [earlier, make_trades(200, seed=12, start=earlier["closed_at"].max() + timedelta(hours=1))], ignore_index=True
    )
    outcome = run_auto(trades, target, ON, timestamp=DAY + timedelta(days=1), context=Context.build(**env))
    assert outcome.action == "applied", outcome.message
    run = open_store(env["history_dir"]).get(outcome.run.run_id)
    step = live_step(weights_policy(), env["history_dir"], run, ON.max_weight_change)
    assert len(step.earlier) == 1 and step.describe().startswith("smoothed (ewma) with 1 earlier suggestion")
    evidence = evaluate_with_options(trades, EQUAL, ON.out_of_sample, step=step)
    assert evidence.suggested == outcome.change.new_values == read_weights(target.path)
    assert evidence.suggested == go_live(analyze_trades(trades, EQUAL), step).suggested
    assert f"+{evidence.walk.gain():,.0f} more PnL" in outcome.change.reason
    # The earlier suggestion saw the first 400 trades: only the fold scored on trades 480 on may use it.
    known = [len(step.known(evidence.walk.folds[i].test_from)) for i in range(4)]
    assert known == [0, 0, 0, 1]
    assert all(fold.train_to < fold.test_from for fold in evidence.walk.folds)


def test_the_rule_judges_the_values_it_decides_on(target, env):
    policy = weights_policy(rules=["min_sample_size", "min_delta", "out_of_sample"])
    dirs = {k: env[k] for k in ("history_dir", "suggestions_dir")}
    outcome = suggest_weights(BUNDLED, target, max_change=0.1, context=Context.build(policy=policy, **dirs))
    (verdict,) = [v for v in outcome.decision.verdicts if v.code == "out_of_sample"]
    bounded = evaluate(BUNDLED, EQUAL, max_change=0.1)
    assert not verdict.passed and verdict.numbers["gain"] == pytest.approx(bounded.walk.gain())
    assert outcome.action == "not suggested"


# -- 2. a budget per stream, spent across looks and kept with the runs ---------------------------------------


def test_each_look_spends_an_equal_share_of_the_budget_and_a_restart_does_not_reset_it(target, env):
    settings = AutoSettings(enabled=True, max_looks=3, min_improvement_pct=0)
    noise = make_trades(700, seed=4, effects={"wallet": 40.0})
    texts = []
    for look in range(4):
        outcome = run_auto(
            noise.iloc[: 300 + 100 * look],
            target,
            settings,
            timestamp=DAY + timedelta(days=look),
            context=Context.build(**env),
        )
        texts.append(outcome.message)
        # What a fresh process reads: the looks are in the stored runs, nothing is kept in memory.
        budget = budget_for(settings, env["history_dir"], "SCORING", target.name)
        assert budget.looks == min(look + 1, 3)
    assert "look 1 of 3, at p ≤ 0.0167 (1 of 3 looks used; 3.3 % of the 5 % budget left)" in texts[0]
    assert "look 3 of 3, at p ≤ 0.0167 (3 of 3 looks used; 0.0 % of the 5 % budget left)" in texts[2]
    assert "its budget for applying on its own is spent (3 of 3 looks used; 0.0 % of the 5 % budget left)" in texts[3]
    assert budget.spent_out and budget.spent == pytest.approx(0.05)
    runs = open_store(env["history_dir"]).between("SCORING", DAY - timedelta(days=1), DAY + timedelta(days=9))
    assert [r.model_extra["analysis"].get("auto_look", {}).get("number") for r in runs] == [1, 2, 3, None]


def test_a_look_that_cannot_apply_spends_nothing(target, env):
    settings = AutoSettings(enabled=True, require_approval=True)
    run_auto(make_trades(400), target, settings, context=Context.build(**env))
    assert budget_for(ON, env["history_dir"], "SCORING", target.name).looks == 0


def test_the_budget_is_per_weights_file(tmp_path, env):
    one = weights_target(path=write_weights(tmp_path / "one.json"))
    other = weights_target(path=write_weights(tmp_path / "other.json"))
    run_auto(make_trades(400, effects={}), one, ON, context=Context.build(**env))
    assert budget_for(ON, env["history_dir"], "SCORING", one.name).looks == 1
    assert budget_for(ON, env["history_dir"], "SCORING", other.name).looks == 0


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "[auto.out_of_sample]\npermutations = 200\n",
            "with 200 permutations the smallest p-value is 0.00498, above one look's share of the budget "
            "(0.05 / 13 = 0.00385), so auto mode could never apply; use at least 259 permutations",
        ),
        (
            '[auto.out_of_sample]\nrequire = "interval"\n',
            'auto mode keeps noise under its budget with the permutation p-value, which require = "interval" '
            "leaves out",
        ),
        ("[auto]\nmax_looks = 0\n", "max_looks must be greater than or equal to 1"),
    ],
)
def test_settings_that_break_the_budget_are_refused_at_load(tmp_path, text, message):
    path = tmp_path / "scoring_weights.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        load_weights_settings(path)
    assert message in str(caught.value)


def test_auto_mode_takes_enough_shuffles_for_a_look_by_default(tmp_path):
    path = tmp_path / "scoring_weights.toml"
    path.write_text('[auto.out_of_sample]\nrequire = "both"\n')
    auto = load_weights_settings(path).auto
    assert auto.out_of_sample.permutations == 1000 and auto.look_level == pytest.approx(0.05 / 13)


# -- 3. settings that cannot test for signal --------------------------------------------------------------


@pytest.mark.parametrize("table", ["auto.out_of_sample", "policy.rule_options.out_of_sample"])
def test_interval_at_threshold_is_refused_at_load_with_a_sentence(tmp_path, table):
    path = tmp_path / "scoring_weights.toml"
    path.write_text(f'[{table}]\nrequire = "interval"\nmeasure = "at_threshold"\n')
    if table.startswith("policy"):
        path.write_text('[policy]\nrules = ["min_sample_size", "out_of_sample"]\n' + path.read_text())
    with pytest.raises(PolicyError) as caught:
        load_weights_settings(path)
    assert 'require = "interval" with measure = "at_threshold" does not test for signal' in str(caught.value)
    assert "weights that take more trades make more PnL and pass it" in str(caught.value)


# -- 4. repeated trades are refused by name, the suggestion left for a person --------------------------------


def _with_ids(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["trade_id"] = [f"T-{i:03d}" for i in range(len(frame))]
    return frame


def test_repeated_trade_ids_are_named_and_counted_and_nothing_is_applied(target, env):
    trades = _with_ids(make_trades(400))
    for row, repeats in ((104, 4), (221, 5), (390, 6)):
        trades.loc[row, "trade_id"] = f"T-{repeats:03d}"
    before = target.path.read_bytes()
    outcome = run_auto(trades, target, ON, context=Context.build(**env))
    assert outcome.action == "suggested" and target.path.read_bytes() == before
    assert "its out-of-sample check could not run (3 trades repeat an earlier trade_id: T-004, T-005, T-006;" in (
        outcome.suggestion.reason
    )


def test_a_trade_recorded_twice_a_millisecond_apart_is_refused_by_name(target, env):
    trades = _with_ids(make_trades(400))
    copy = trades.iloc[[50]].copy()
    copy["trade_id"], copy["closed_at"] = "T-050b", copy["closed_at"] + pd.Timedelta(milliseconds=1)
    trades = pd.concat([trades.iloc[:51], copy, trades.iloc[51:]], ignore_index=True)
    outcome = run_auto(trades, target, ON, context=Context.build(**env))
    assert outcome.action == "suggested"
    assert "1 trade repeats an earlier trade's four scores and PnL within a second: T-050b (like T-050)" in (
        outcome.suggestion.reason
    )
    with pytest.raises(ValueError, match=r"1 trade repeats an earlier trade's four scores and PnL within a second"):
        evaluate(trades, EQUAL, permutations=20, resamples=100)
