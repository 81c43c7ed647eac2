"""The watch after apply on the scoring weights: old and new weights scored on the PnL of the same trades, the
ones closed in each run's window, at equal volume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibration_policy import CalibrationUpdatePolicy, Context
from calibration_policy.archive import ArchiveEntry
from calibration_policy.default_plugins.scoring_weights.analysis import weights_policy
from calibration_policy.default_plugins.scoring_weights.domain import FACTORS, weights_target
from calibration_policy.default_plugins.scoring_weights.flow import suggest_weights
from calibration_policy.plugins import get_domain
from calibration_policy.stores import open_store
from calibration_policy.watch import judge, score_run, verdicts

from .test_weights_support import EQUAL, START, make_trades, write_weights

T0 = datetime(2025, 12, 1, 9, 30, tzinfo=UTC)
# The trades' PnL follows the wallet score (EFFECTS): weights leaning on it pick the winners, on token (no effect)
# they pick at random.
WALLET = {"wallet": 0.7, "cluster": 0.1, "token": 0.1, "context": 0.1}
TOKEN = {"wallet": 0.1, "cluster": 0.1, "token": 0.7, "context": 0.1}


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    return {"history_dir": tmp_path / "runs", "suggestions_dir": tmp_path / "suggestions"}


@pytest.fixture
def target(tmp_path: Path):
    return weights_target(path=write_weights(tmp_path / "scoring_weights.json"))


def batches(count: int, size: int = 200) -> list[pd.DataFrame]:
    """``count`` growing trades tables, each ``size`` trades (an hour apart) longer than the last."""
    parts = [make_trades(size, seed=10 + i, start=START + timedelta(hours=size * i)) for i in range(count)]
    return [pd.concat(parts[: i + 1], ignore_index=True) for i in range(count)]


def runs_of(target, dirs, count: int) -> list:
    context = Context.build(policy=weights_policy(min_sample_size=100), **dirs)
    return [
        suggest_weights(frame, target, timestamp=T0 + timedelta(days=i), context=context).run
        for i, frame in enumerate(batches(count))
    ]


def test_each_run_carries_the_trades_closed_since_the_previous_one(target, dirs):
    first, second = runs_of(target, dirs, 2)
    stored = [open_store(dirs["history_dir"]).get(run.run_id) for run in (first, second)]
    windows = [run.model_extra["window_trades"] for run in stored]
    assert [len(w["pnl"]) for w in windows] == [200, 200]  # the second run: only the 200 trades after the first's
    frame = batches(2)[1]
    assert windows[1]["pnl"] == frame["pnl"].iloc[200:].tolist()
    assert windows[1]["scores"][0] == [frame[f"{f}_score"].iloc[200] for f in FACTORS]
    taken = frame.iloc[200:][[f"{f}_score" for f in FACTORS]].to_numpy() @ np.full(4, 0.25) >= 0.6 - 1e-9
    assert windows[1]["volume"] == max(1, int(taken.sum()))  # what the live (equal) weights took
    assert "window_trades" not in stored[1].model_extra["analysis"]  # kept beside the analysis, not in it


def test_weights_that_rank_winners_higher_score_better_on_the_same_trades_at_equal_volume(target, dirs):
    domain = get_domain("scoring_weights")
    [run] = runs_of(target, dirs, 1)
    window = run.model_extra["window_trades"]
    scores, pnl, volume = np.array(window["scores"]), np.array(window["pnl"]), window["volume"]

    def by_hand(weights):  # the PnL left behind at the same volume, per trade, × √trades
        picked = np.argsort(-(scores @ np.array([weights[f] for f in FACTORS])), kind="stable")[:volume]
        return (np.sort(pnl)[::-1][:volume].sum() - pnl[picked].sum()) / volume * np.sqrt(len(pnl))

    assert domain.score(WALLET, run) == pytest.approx(by_hand(WALLET))
    assert domain.score(TOKEN, run) == pytest.approx(by_hand(TOKEN))
    assert domain.score(WALLET, run) < domain.score(EQUAL, run) < domain.score(TOKEN, run)
    # An oracle that ranks by the PnL itself leaves nothing behind.
    ranked = dict(window, scores=[[p, 0, 0, 0] for p in window["pnl"]])
    oracle = run.model_copy(update={"window_trades": ranked})
    assert domain.score(WALLET, oracle) == 0.0


@pytest.mark.parametrize(("new", "old", "state"), [(WALLET, TOKEN, "passed"), (TOKEN, WALLET, "failed")])
def test_the_watch_on_the_weights_judges_old_and_new_on_the_trades_after_the_change(target, dirs, new, old, state):
    runs = runs_of(target, dirs, 6)
    change = ArchiveEntry.model_construct(change_id="c1", domain="scoring_weights", previous_values=old, new_values=new)
    policy = CalibrationUpdatePolicy(domain="scoring_weights", watch_runs=5, rules=("min_sample_size",))
    verdict = judge(change, runs[1:], policy)
    assert verdict.state == state, verdict.words
    assert verdict.runs == 5 and (verdict.new_better if state == "passed" else verdict.new_worse) == 5


def test_a_run_without_trades_falls_back_and_broken_trades_cannot_be_scored(target, dirs):
    domain = get_domain("scoring_weights")
    [run] = runs_of(target, dirs, 1)
    bare = run.model_copy(update={"window_trades": None})
    recommended = run.recommended_iv_multiplier
    expected = sum(abs(WALLET[f] - recommended[f]) for f in FACTORS) / 4 * np.sqrt(run.sample_size)
    assert domain.score(WALLET, bare) == pytest.approx(expected)
    window = run.model_extra["window_trades"]
    for broken in (
        dict(window, pnl=window["pnl"][:-1]),
        dict(window, volume=0),
        dict(window, scores="many"),
        dict(window, factors=["wallet"]),
        "trades",
    ):
        assert score_run(domain, WALLET, run.model_copy(update={"window_trades": broken})) is None


def test_suggest_runs_the_watch_and_rolls_back_weights_the_trades_after_them_contradict(tmp_path, target, dirs):
    """The weights' own flow runs the watch on each run it records, before its decision: weights that pick worse
    trades than the ones they replaced are rolled back on the 5th run, and that run is analysed against the
    weights live again."""
    from calibration_policy.apply import apply_values
    from calibration_policy.stores import open_archive

    archive_dir = tmp_path / "archive"
    policy = weights_policy(min_sample_size=100, watch_runs=5, watch_action="roll_back")
    context = Context.build(policy=policy, archive_dir=archive_dir, **dirs)
    frames = batches(7)
    suggest_weights(frames[0], target, timestamp=T0, context=context)  # a first run: the windows start after it
    changed = apply_values(
        target,
        TOKEN,
        archive_dir=archive_dir,
        kind="update",
        reason="test",
        domain="scoring_weights",
        underlying="SCORING",
        calibration_timestamp=T0 + timedelta(hours=1),
    )
    outcomes = [
        suggest_weights(frame, target, timestamp=T0 + timedelta(days=i), context=context)
        for i, frame in enumerate(frames[1:6], start=1)
    ]
    entries = open_archive(archive_dir, target.name).entries()
    assert [e.kind for e in entries] == ["update", "rollback"]
    assert entries[-1].watch_of == changed.change_id and entries[-1].actor == "watch"
    assert target.values(target.load()) == pytest.approx(EQUAL)
    verdict = verdicts(archive_dir, dirs["history_dir"], target.name)[changed.change_id]
    assert verdict.state == "failed" and verdict.new_worse == 5, verdict.words
    assert outcomes[-1].analysis.current == pytest.approx(EQUAL)  # analysed against the weights live again
    assert outcomes[-2].analysis.current == pytest.approx(TOKEN)
