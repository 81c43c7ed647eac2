"""Out-of-sample evidence for scoring weights: walk-forward, bootstrap, shuffled-outcome baseline, the gate.

Fixtures are the bundled trades (600, a planted wallet effect) and tables built the way the
bundled generator builds them, with and without a planted signal. The statistical claims are
checked on many seeds: on shuffled outcomes the gate passes in at most 5 % of them while the
in-sample estimate reads high; on real signal it passes.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration_policy.default_plugins.scoring_weights import evidence as ev
from calibration_policy.default_plugins.scoring_weights import live
from calibration_policy.default_plugins.scoring_weights.analysis import analyze_trades, bounded_weights, load_trades
from calibration_policy.default_plugins.scoring_weights.domain import (
    FACTORS,
    NotEnoughTradesError,
    WeightsError,
    round_weights,
)
from calibration_policy.default_plugins.scoring_weights.evidence import (
    IN_SAMPLE_LABEL,
    OUT_OF_SAMPLE_LABEL,
    OutOfSampleOptions,
    bootstrap_interval,
    evaluate,
    evaluate_with_options,
    no_signal_baseline,
    out_of_sample_verdict,
    top_k,
    walk_forward,
)
from calibration_policy.errors import PolicyError

from .test_weights_support import EQUAL, make_trades

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "data" / "trades.parquet"
NO_SIGNAL = {f: 0.0 for f in FACTORS}


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    return load_trades(BUNDLED)


@pytest.fixture(scope="module")
def evidence(bundled: pd.DataFrame) -> ev.Evidence:
    return evaluate(bundled, EQUAL)


def shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The same trades with their outcomes (PnL and win flag together) shuffled: no signal left."""
    order = np.random.default_rng(seed).permutation(len(frame))
    out = frame.copy()
    out["pnl"] = frame["pnl"].to_numpy()[order]
    out["win"] = frame["win"].to_numpy()[order]
    return out


# -- the bundled trades: the method reproduced, and the evidence it lacked ---------------------------


def test_the_in_sample_estimate_is_the_analysis_own(evidence, bundled):
    analysis = analyze_trades(bundled, EQUAL)
    assert evidence.suggested == analysis.suggested
    assert evidence.in_sample == analysis.improvement
    assert evidence.in_sample.pct == pytest.approx(34.83, abs=0.01)  # docs/scoring-weights.md's +34.8 %


def test_the_bundled_trades_pass_on_later_trades_they_never_saw(evidence):
    walk = evidence.walk
    assert [f.result.trades for f in walk.folds] == [120, 120, 120, 120]
    assert [f.train_trades for f in walk.folds] == [120, 240, 360, 480]  # expanding: every earlier trade
    assert walk.gain("equal_volume") > 0 and walk.gain("at_threshold") > 0
    assert walk.better_folds("equal_volume") == 4
    interval = evidence.interval("equal_volume")
    assert interval.low > 0 and interval.low < interval.estimate < interval.high
    assert evidence.baseline.p_value("equal_volume") <= 0.05
    assert evidence.passes()
    passed, text, measured = out_of_sample_verdict(evidence, OutOfSampleOptions())
    assert passed and measured["passed"]
    assert text.startswith("on 480 later trades it never saw the suggested weights made +")
    assert "90% interval +" in text and "better in 4 of 4 folds" in text


def test_the_in_sample_estimate_reads_high_on_shuffled_outcomes(evidence):
    """The point of the baseline: with no signal at all the old figure still reads well above the +2 % bar."""
    base = evidence.baseline
    assert base.permutations == 200
    assert 8.0 < base.in_sample_mean_pct < 25.0  # the issue measured +16.7 %
    assert base.in_sample_clear_share > 0.5  # the issue measured 76 %
    assert base.real_in_sample_pct == pytest.approx(34.83, abs=0.01)
    # …while the out-of-sample gain of the shuffles centres near zero, far below the real one.
    real = evidence.walk.gain("equal_volume")
    assert abs(base.shuffled_mean_gain("equal_volume")) < 0.2 * real
    assert "On shuffled outcomes (no signal, 200 shuffles) this estimate reads +" in base.text()
    assert "yours reads +34.8%" in base.text()


def test_on_shuffled_outcomes_auto_mode_applies_in_at_most_5_percent_of_seeds(bundled):
    """100 shuffles of the bundled outcomes (seeds 0–99), each evaluated in full with the default options."""
    old_gate, new_gate, both = [], [], []
    for seed in range(100):
        evidence = evaluate(shuffled(bundled, seed), EQUAL)
        old = evidence.in_sample.clears(2.0)  # auto mode's existing bar: +2 % winning trades in sample
        new = evidence.passes(OutOfSampleOptions())
        old_gate.append(old)
        new_gate.append(new)
        both.append(old and new)
    assert np.mean(old_gate) > 0.5  # the old gate alone would apply on noise more often than not
    assert np.mean(new_gate) <= 0.05
    assert np.mean(both) <= 0.05


def test_generated_trades_without_signal_rarely_pass_and_still_read_high_in_sample():
    passes, in_sample = [], []
    for seed in range(40):
        evidence = evaluate(make_trades(600, seed=seed, effects=NO_SIGNAL), EQUAL, permutations=100, resamples=500)
        passes.append(evidence.passes())
        in_sample.append(evidence.in_sample.pct)
    assert np.mean(passes) <= 0.05
    assert np.mean(in_sample) > 5.0  # in-sample "improvement" on trades that hold no signal


def test_generated_trades_with_a_planted_signal_pass():
    results = [
        evaluate(make_trades(600, seed=seed), EQUAL, permutations=100, resamples=500).passes() for seed in range(20)
    ]
    assert np.mean(results) >= 0.9


def test_the_bounded_step_can_be_evaluated_and_says_why_it_does_not_pass(bundled):
    """Auto mode's bounded step (0.1) is a small move: 600 trades cannot show its gain at 95 %."""
    evidence = evaluate(bundled, EQUAL, max_change=0.1)
    assert evidence.suggested == bounded_weights(analyze_trades(bundled, EQUAL).suggested, EQUAL, 0.1)
    assert evidence.in_sample.pct == pytest.approx(3.37, abs=0.01)  # docs/scoring-weights.md: +3.4 % at 0.6
    passed, text, measured = evidence.verdict()
    assert not passed and measured["interval_low"] < 0 < measured["gain"]
    assert text.startswith("not shown to help on 480 later trades it never saw: +")
    assert "does not lie above zero" in text and "is above 0.05" in text
    assert evidence.text().startswith(
        "Evaluated: the weights that would go live (no weight moving more than 0.1 from the live one): wallet\n"
        "  0.3500, cluster 0.2898, token 0.1526, context 0.2076."
    )  # context is 0.20767: rounded alone it read 0.2077, and the four shown weights added up to 1.0001


# -- walk-forward -------------------------------------------------------------------------------------


def test_each_fold_is_fitted_with_the_library_on_earlier_trades_only(bundled):
    walk = walk_forward(bundled, EQUAL)
    for fold in walk.folds:
        earlier = bundled.iloc[: fold.train_trades]
        assert fold.weights == analyze_trades(earlier, EQUAL, min_trades=0).suggested
        assert fold.train_to < fold.test_from  # every trade it is scored on closed after every trade it saw


def test_a_rolling_window_fits_on_the_last_blocks_only(bundled):
    walk = walk_forward(bundled, EQUAL, window="rolling", train_blocks=2)
    assert [f.train_trades for f in walk.folds] == [120, 240, 240, 240]
    third = walk.folds[2]
    assert third.train_from == bundled["closed_at"].iloc[120].to_pydatetime()
    assert third.weights == analyze_trades(bundled.iloc[120:360], EQUAL, min_trades=0).suggested
    text = evaluate(bundled, EQUAL, window="rolling", train_blocks=2, permutations=20, resamples=100).text()
    assert "fitted on the 2 blocks of trades just before it" in " ".join(text.split())


def test_equal_volume_takes_exactly_as_many_trades_as_the_current_weights(bundled):
    for frame, threshold in ((bundled, 0.6), (make_trades(900, seed=5), 0.55), (make_trades(900, seed=6), 0.7)):
        walk = walk_forward(frame, EQUAL, threshold=threshold, folds=5)
        for fold in walk.folds:
            r = fold.result
            assert r.equal_volume.taken == r.current.taken
            assert r.equal_volume.wins <= r.equal_volume.taken
        assert walk.pooled.equal_volume.taken == walk.pooled.current.taken
        assert walk.pooled.current.taken == sum(f.result.current.taken for f in walk.folds)


def test_fold_and_pooled_figures_add_up(bundled):
    walk = walk_forward(bundled, EQUAL)
    pooled = walk.pooled
    for side in ("current", "suggested", "equal_volume"):
        takes = [getattr(f.result, side) for f in walk.folds]
        assert getattr(pooled, side).taken == sum(t.taken for t in takes)
        assert getattr(pooled, side).wins == sum(t.wins for t in takes)
        assert getattr(pooled, side).pnl == pytest.approx(sum(t.pnl for t in takes))
        assert getattr(pooled, side).mean_pnl == pytest.approx(getattr(pooled, side).pnl / getattr(pooled, side).taken)
    for measure in ev.MEASURES:  # the per-trade contributions the bootstrap resamples sum to the same gain
        assert sum(part.sum() for part in walk.contributions[measure]) == pytest.approx(walk.gain(measure))


def test_top_k_breaks_ties_toward_the_earlier_trade():
    scores = np.array([0.5, 0.7, 0.7, 0.7, 0.2])
    assert top_k(scores, 2).tolist() == [False, True, True, False, False]
    assert top_k(scores, 0).sum() == 0 and top_k(scores, 9).all()


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.sampled_from([0.1, 0.3, 0.5, 0.7]), min_size=1, max_size=40), data=st.data())
def test_top_k_is_the_head_of_a_stable_sort(values, data):
    k = data.draw(st.integers(0, len(values)))
    scores = np.array(values)
    expected = np.zeros(len(values), dtype=bool)
    expected[np.argsort(-scores, kind="stable")[:k]] = True
    assert top_k(scores, k).tolist() == expected.tolist()
    rows = np.stack([scores, scores[::-1]])  # per row of a 2-D array, the same as row by row
    assert top_k(rows, k).tolist() == [top_k(scores, k).tolist(), top_k(scores[::-1], k).tolist()]


# -- bootstrap and shuffles -----------------------------------------------------------------------


def test_the_same_seed_gives_the_same_figures_and_another_seed_other_ones(bundled):
    a = evaluate(bundled, EQUAL, seed=7, permutations=60, resamples=400).to_dict()
    b = evaluate(bundled, EQUAL, seed=7, permutations=60, resamples=400).to_dict()
    c = evaluate(bundled, EQUAL, seed=8, permutations=60, resamples=400).to_dict()
    assert a == b
    assert a["out_of_sample"]["folds"] == c["out_of_sample"]["folds"]  # no randomness in the walk-forward
    assert a["out_of_sample"]["intervals"] != c["out_of_sample"]["intervals"]
    assert a["baseline"]["in_sample"] != c["baseline"]["in_sample"]


def test_the_standalone_functions_agree_with_evaluate(evidence, bundled):
    walk = walk_forward(bundled, EQUAL)
    interval = bootstrap_interval(walk, resamples=1000, seed=0)
    assert (interval.low, interval.high) == (evidence.interval().low, evidence.interval().high)
    wider = interval.at(0.99)
    assert wider.low < interval.low and wider.high > interval.high
    base = no_signal_baseline(bundled, EQUAL, permutations=200, seed=0)
    assert base.p_value() == evidence.baseline.p_value()
    assert base.in_sample_mean_pct == evidence.baseline.in_sample_mean_pct


def test_the_vectorised_shuffles_refit_exactly_as_the_library(bundled):
    """The identity shuffle through the vectorised engine gives the library's own figures."""
    for kwargs in ({}, {"max_change": 0.1}, {"window": "rolling", "train_blocks": 1, "folds": 5}):
        options = {
            "folds": 4,
            "window": "expanding",
            "train_blocks": 1,
            "threshold": 0.6,
            "max_change": None,
            "min_trades_per_fold": 50,
            **kwargs,
        }
        data = ev._prepare(bundled, EQUAL, **options)
        walk = ev._walk_forward(data)
        same = ev.shuffled_statistics(data, iter([np.arange(len(bundled))[None, :]]))
        for measure in ev.MEASURES:
            assert same.gains[measure][0] == pytest.approx(walk.gain(measure), abs=1e-6)
        assert same.in_sample_pct[0] == pytest.approx(ev._in_sample(data)[1].pct)


weight_rows = st.lists(st.floats(0.001, 1.0), min_size=4, max_size=4).map(lambda v: [x / math.fsum(v) for x in v])


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(weight_rows, min_size=1, max_size=6), bound=st.floats(0.01, 0.5))
def test_the_vectorised_rounding_and_bounds_match_the_library(rows, bound):
    matrix = np.array(rows)
    rounded = live._round_many(matrix)
    bounded = live._bounded_many(rounded, np.array([EQUAL[f] for f in FACTORS]), bound)
    for row, r, b in zip(rows, rounded, bounded):
        expected = round_weights(dict(zip(FACTORS, row)))
        assert dict(zip(FACTORS, r.tolist())) == expected
        assert dict(zip(FACTORS, b.tolist())) == bounded_weights(expected, EQUAL, bound)


def _benchmark_module():
    spec = importlib.util.spec_from_file_location(
        "bench_weights_evidence", REPO / "benchmarks" / "bench_weights_evidence.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_vectorised_evaluation_gives_the_plain_loop_result():
    bench = _benchmark_module()
    current = {"wallet": 0.4, "cluster": 0.3, "token": 0.2, "context": 0.1}
    for kwargs in ({"max_change": 0.1}, {"window": "rolling", "train_blocks": 2, "folds": 5, "threshold": 0.55}):
        trades = bench.synthetic_trades(700, seed=3)
        fast = evaluate(trades, current, resamples=300, permutations=40, seed=5, **kwargs)
        loop = bench.evaluate_loop(trades, current, resamples=300, permutations=40, seed=5, **kwargs)
        assert bench.agreement(fast, loop) == []


# -- what is shown --------------------------------------------------------------------------------


def test_the_text_labels_both_estimates_in_plain_words_with_trades_taken_beside_wins(evidence):
    text = evidence.text()
    words = " ".join(text.split())
    assert (
        "Measured on the trades it was fitted to (all 600 trades), at threshold 0.6: 145 trades taken "
        "(120 winning) instead of 113 (89 winning): +34.8% winning trades." in words
    )
    assert "\nMeasured on later trades it never saw (480 trades in 4 folds" in text
    assert "Taking more trades raises this figure, so it is not evidence on its own." in words
    # Each figure with one sentence saying what it means (issue 25).
    assert "Equal volume: taking exactly as many trades as the current weights (86)" in words
    assert "A gain at equal volume cannot come from simply trading more." in words
    assert "Interval: 90% interval +1,244 to +4,478 (1,000 resamples); the gain ranges this much" in words
    assert "Folds: better in 4 of 4; a fold fits the weights on earlier trades only" in words
    assert "p-value 0.005: noise alone looked this good in 0 of 200 reshuffles of the outcomes" in words
    assert "Current" not in text  # the fold table waits for details
    detailed = evidence.text(details=True)
    assert "Fold  Fitted on Scored on   Current wins     PnL  Suggested wins     PnL  Equal volume" in detailed
    assert max(len(line) for line in detailed.splitlines()) <= 100
    assert IN_SAMPLE_LABEL == "measured on the trades it was fitted to"
    assert OUT_OF_SAMPLE_LABEL == "measured on later trades it never saw"


def test_to_dict_is_json_with_finite_numbers_only(evidence, bundled):
    high_bar = evaluate(bundled, EQUAL, threshold=0.75, permutations=30, resamples=200)  # some folds take no trade
    assert any(f.result.current.taken == 0 for f in high_bar.walk.folds)
    for case in (evidence, high_bar):
        data = case.to_dict()
        text = json.dumps(data, allow_nan=False)  # raises on NaN or infinity
        assert json.loads(text) == data
    data = evidence.to_dict()
    assert data["in_sample"]["label"] == IN_SAMPLE_LABEL and data["out_of_sample"]["label"] == OUT_OF_SAMPLE_LABEL
    assert (
        data["out_of_sample"]["pooled"]["equal_volume"]["taken"] == data["out_of_sample"]["pooled"]["current"]["taken"]
    )
    assert data["baseline"]["out_of_sample"]["equal_volume"]["p_value"] == pytest.approx(1 / 201)


# -- the gate's options ----------------------------------------------------------------------------


def test_the_gate_reads_the_tests_the_options_require(evidence, bundled):
    assert evidence.passes(OutOfSampleOptions(require="interval"))
    assert evidence.passes(OutOfSampleOptions(require="p_value"))
    step = evaluate(bundled, EQUAL, max_change=0.1)  # interval below zero, p-value about 0.12
    p = step.baseline.p_value()
    assert 0.05 < p < 0.2 and step.interval().low < 0
    assert step.passes(OutOfSampleOptions(require="p_value", max_p_value=p))
    assert not step.passes(OutOfSampleOptions(require="p_value", max_p_value=p * 0.99))
    assert not step.passes(OutOfSampleOptions(require="both", max_p_value=p))  # the interval still fails
    assert not step.passes(OutOfSampleOptions(require="interval"))
    low = evidence.interval(confidence=0.9999)
    assert evidence.passes(OutOfSampleOptions(require="interval", confidence=0.9999)) == (low.low > 0)
    _, _, measured = out_of_sample_verdict(evidence, OutOfSampleOptions(measure="at_threshold"))
    assert measured["gain"] == pytest.approx(evidence.walk.gain("at_threshold"))
    json.dumps(measured, allow_nan=False)


def test_options_are_checked_in_plain_words(evidence):
    with pytest.raises(PolicyError, match="confidnce is not a setting"):
        OutOfSampleOptions(confidnce=0.9)
    with pytest.raises(
        PolicyError,
        match="with 10 permutations the smallest possible p-value is 0.0909, above "
        "max_p_value 0.05, so the gate could never pass; use at least 19",
    ):
        OutOfSampleOptions(permutations=10)
    assert OutOfSampleOptions(permutations=10, require="interval").permutations == 10
    with pytest.raises(WeightsError, match=r"not computed with these options: folds 5 \(this evidence has 4\)"):
        evidence.passes(OutOfSampleOptions(folds=5))


def test_evaluate_with_options_uses_the_rule_settings(bundled):
    options = OutOfSampleOptions(folds=3, resamples=200, permutations=40, seed=2, window="rolling")
    evidence = evaluate_with_options(bundled, EQUAL, options)
    assert (evidence.folds, evidence.resamples, evidence.permutations, evidence.seed) == (3, 200, 40, 2)
    assert evidence.verdict(options)[2]["permutations"] == 40  # the same options are accepted


# -- bad input ---------------------------------------------------------------------------------------


def test_too_few_trades_for_a_fold_says_how_many_it_needs_and_has():
    with pytest.raises(NotEnoughTradesError, match=r"^Walk-forward needs at least 50 trades per fold; you have 31 "):
        evaluate(make_trades(155), EQUAL)  # 155 trades in 5 blocks
    with pytest.raises(NotEnoughTradesError, match="needs at least 80 trades per fold; you have 60"):
        walk_forward(make_trades(300), EQUAL, min_trades_per_fold=80)


def test_a_factor_that_never_varies_carries_no_information_but_does_not_stop_the_check():
    frame = make_trades(400)
    frame["token_score"] = 0.5
    evidence = evaluate(frame, EQUAL, permutations=40, resamples=200)
    for fold in evidence.walk.folds:  # fitted as the analysis fits it: token's correlation taken as 0
        assert fold.weights == analyze_trades(frame.iloc[: fold.train_trades], EQUAL, min_trades=0).suggested
    assert np.isfinite(evidence.baseline.shuffled_gains["equal_volume"]).all()


def test_a_factor_constant_only_early_on_counts_as_no_information_in_that_fold_only():
    """Issue 25: a factor constant in the first block used to switch the check off for good."""
    frame = make_trades(400)
    frame.loc[:79, "cluster_score"] = 0.25
    fast = evaluate(frame, EQUAL, permutations=40, resamples=300, seed=5)
    first, later = fast.walk.folds[0], fast.walk.folds[1]
    assert first.weights == analyze_trades(frame.iloc[:80], EQUAL, min_trades=0).suggested
    assert first.weights["cluster"] < later.weights["cluster"]  # only the first fit lacks it
    bench = _benchmark_module()
    loop = bench.evaluate_loop(frame, EQUAL, resamples=300, permutations=40, seed=5)
    assert bench.agreement(fast, loop) == []  # the shuffles treat the constant block as the library does


def test_constant_pnl_is_refused():
    frame = make_trades(400)
    frame["pnl"] = 0.0
    with pytest.raises(WeightsError, match="needs PnL that varies, but pnl is 0 in all the 80 trades"):
        evaluate(frame, EQUAL)


@pytest.mark.parametrize("bad", [np.nan, np.inf, None])
def test_missing_or_non_finite_pnl_is_refused(bad):
    frame = make_trades(400)
    frame["pnl"] = frame["pnl"].astype(object)
    frame.loc[7, "pnl"] = bad
    frame["pnl"] = pd.to_numeric(frame["pnl"])
    with pytest.raises(WeightsError, match=r"pnl is missing or not a finite number in 1 trade \(first in row 8\)"):
        evaluate(frame, EQUAL)


def test_close_times_out_of_order_are_refused():
    frame = make_trades(400)
    frame.loc[[10, 11], "closed_at"] = frame.loc[[11, 10], "closed_at"].to_numpy()
    with pytest.raises(
        WeightsError,
        match="needs the trades in the order they closed, but row 12 closed at "
        "2025-09-02 00:00:00 UTC, before row 11 .2025-09-02 01:00:00 UTC.; "
        "1 trade out of order. Sort the table by closed_at first.",
    ):
        evaluate(frame, EQUAL)


def test_trades_closed_in_the_same_second_are_ordered_by_trade_id():
    """Issue 25: a shared close time used to switch the check off; now trade_id orders the tie."""
    frame = make_trades(400)
    frame["trade_id"] = [f"T{i:05d}" for i in range(400)]
    frame.loc[5, "closed_at"] = frame.loc[4, "closed_at"]
    frame.loc[[4, 5]] = frame.loc[[5, 4]].to_numpy()  # the table lists the tie the other way round
    tied = walk_forward(frame, EQUAL)
    ordered = walk_forward(frame.sort_values(["closed_at", "trade_id"]).reset_index(drop=True), EQUAL)
    assert tied.folds == ordered.folds


def test_no_close_times_at_all_is_refused():
    with pytest.raises(WeightsError, match="Walk-forward needs a closed_at column"):
        evaluate(make_trades(400, with_time=False), EQUAL)


def test_bad_settings_are_refused():
    frame = make_trades(400)
    with pytest.raises(WeightsError, match="The current weights are not a valid set: weights sum to 1.1"):
        evaluate(frame, {**EQUAL, "wallet": 0.35})
    with pytest.raises(WeightsError, match="folds must be a whole number ≥ 1"):
        evaluate(frame, EQUAL, folds=0)
    with pytest.raises(WeightsError, match="window must be expanding or rolling"):
        walk_forward(frame, EQUAL, window="sliding")
    with pytest.raises(WeightsError, match="trading threshold must be a number above 0"):
        evaluate(frame, EQUAL, threshold=1.5)
    with pytest.raises(WeightsError, match="confidence of an interval must be a number between 0 and 1"):
        evaluate(frame, EQUAL, confidence=90)
    with pytest.raises(WeightsError, match="max_change must be a number above 0"):
        evaluate(frame, EQUAL, max_change=0)


def test_refusing_bad_input_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = make_trades(155)
    with pytest.raises(NotEnoughTradesError):
        evaluate(frame, EQUAL)
    assert list(tmp_path.iterdir()) == []


def test_an_exact_duplicate_row_is_named_as_a_repeated_trade_not_a_repeated_close_time():
    frame = make_trades(400)
    frame = pd.concat([frame.iloc[:6], frame.iloc[[5]], frame.iloc[6:]], ignore_index=True)
    with pytest.raises(
        WeightsError,
        match=r"^1 trade repeats an earlier trade's four scores and PnL within a second: row 7 \(like row 6\); "
        "these look like one trade recorded twice",
    ):
        evaluate(frame, EQUAL, permutations=20, resamples=100)
