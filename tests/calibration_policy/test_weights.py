"""The weights analysis: statistics per factor, suggested weights, rationale, estimated improvement,
bad input, the ``scoring_weights`` domain and the bundled trades."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration_policy import CalibrationUpdatePolicy, Context, record_calibration_result
from calibration_policy.apply import apply_values
from calibration_policy.default_plugins.scoring_weights.analysis import (
    FactorStats,
    analyze_trades,
    estimate_improvement,
    factor_stats,
    load_trades,
    rationale,
    suggest_from,
)
from calibration_policy.default_plugins.scoring_weights.domain import (
    FACTORS,
    NotEnoughTradesError,
    WeightsError,
    round_weights,
    weights_target,
)
from calibration_policy.default_plugins.scoring_weights.flow import suggest_weights
from calibration_policy.durable import dumps
from calibration_policy.errors import InvalidRunError
from calibration_policy.plugins import get_domain

from .test_weights_support import EQUAL, make_trades, read_weights, write_weights

REPO = Path(__file__).resolve().parents[2]


def table(wallet, pnl, **columns) -> pd.DataFrame:
    """A small hand-written trades table; the other factors default to a spread of values."""
    n = len(wallet)
    frame = pd.DataFrame(
        {
            "wallet_score": wallet,
            **{f"{f}_score": columns.get(f, np.linspace(0.2, 0.8, n)) for f in FACTORS if f != "wallet"},
        }
    )
    frame["pnl"] = pnl
    frame["win"] = [p > 0 for p in pnl]
    return frame


def stats_of(frame: pd.DataFrame) -> dict[str, FactorStats]:
    return {s.factor: s for s in factor_stats(load_trades(frame))}


# -- per-factor statistics -------------------------------------------------------------------------


def test_correlation_matches_a_hand_computed_value():
    # x = 0.1, 0.4, 0.5, 0.9 (mean 0.475); pnl = -10, 5, 0, 20 (mean 3.75)
    # Σdx·dy = 11.875, Σdx² = 0.3275, Σdy² = 468.75  →  r = 11.875 / √(0.3275 × 468.75) = 0.95843…
    wallet = stats_of(table([0.1, 0.4, 0.5, 0.9], [-10.0, 5.0, 0.0, 20.0]))["wallet"]
    assert wallet.correlation == pytest.approx(11.875 / math.sqrt(0.3275 * 468.75), abs=1e-12)
    assert wallet.correlation == pytest.approx(0.95843, abs=1e-5)
    assert wallet.sample_size == 4


def test_winners_and_losers_averages():
    # wins are trades with pnl > 0: the 2nd and the 4th (a flat trade is not a win)
    wallet = stats_of(table([0.1, 0.4, 0.5, 0.9], [-10.0, 5.0, 0.0, 20.0]))["wallet"]
    assert wallet.winners_avg == pytest.approx((0.4 + 0.9) / 2)
    assert wallet.losers_avg == pytest.approx((0.1 + 0.5) / 2)
    assert (wallet.winners, wallet.losers) == (2, 2)


def test_the_win_flag_is_taken_from_the_table_not_from_pnl():
    frame = table([0.1, 0.4, 0.5, 0.9], [-10.0, 5.0, 0.0, 20.0])
    frame["win"] = [1, 1, 0, 0]
    wallet = stats_of(frame)["wallet"]
    assert wallet.winners_avg == pytest.approx(0.25) and wallet.losers_avg == pytest.approx(0.7)


@pytest.mark.parametrize(
    "winners, losers, correlation, expected",
    [
        (0.72, 0.41, 0.45, True),
        (0.56, 0.50, 0.20, True),
        (0.55, 0.50, 0.20, False),  # a spread of exactly 0.05 is not more than 0.05
        (0.72, 0.41, 0.10, False),  # a correlation of exactly 0.1 is not more than 0.1
        (0.72, 0.41, 0.05, False),
        (0.45, 0.50, 0.30, False),
        (None, 0.50, 0.30, False),
    ],
)
def test_is_predictive_needs_both_a_spread_and_a_correlation(winners, losers, correlation, expected):
    stats = FactorStats("wallet", correlation, winners, losers, 200, 100, 100)
    assert stats.is_predictive is expected


def test_a_constant_column_has_correlation_zero_with_a_note_never_nan():
    frame = make_trades(200)
    frame["token_score"] = 0.5
    analysis = analyze_trades(frame, EQUAL)
    token = next(s for s in analysis.factors if s.factor == "token")
    assert token.correlation == 0.0 and not math.isnan(token.correlation)
    assert token.note == "every trade has the same token score (0.5), so its correlation is taken as 0"
    row = next(r for r in analysis.rows() if r["factor"] == "token")
    assert row["rationale"].startswith("No signal: every trade has the same token score (0.5)")
    json.loads(dumps(analysis.to_dict()))  # strict JSON: no NaN anywhere
    assert math.isclose(sum(analysis.suggested.values()), 1.0, abs_tol=1e-9)


def test_constant_pnl_gives_zero_correlations_with_a_note():
    frame = make_trades(150)
    frame["pnl"] = 10.0
    frame["win"] = True
    analysis = analyze_trades(frame, EQUAL)
    assert all(s.correlation == 0.0 and "same PnL" in s.note for s in analysis.factors)
    assert all(s.losers_avg is None and not s.is_predictive for s in analysis.factors)
    json.loads(dumps(analysis.to_dict()))


# -- suggested weights -----------------------------------------------------------------------------


def test_suggested_weights_follow_the_formula():
    stats = tuple(FactorStats(f, r, 0.5, 0.5, 200, 100, 100) for f, r in zip(FACTORS, (0.6, 0.3, -0.2, 0.0)))
    current = {"wallet": 0.1, "cluster": 0.2, "token": 0.3, "context": 0.4}
    shares = {"wallet": 0.6 / 0.92, "cluster": 0.3 / 0.92, "token": 0.01 / 0.92, "context": 0.01 / 0.92}
    expected = {f: 0.7 * shares[f] + 0.3 * current[f] for f in FACTORS}
    suggested = suggest_from(stats, current)
    assert suggested == {f: round(expected[f], 4) for f in FACTORS}
    assert math.isclose(sum(suggested.values()), 1.0, abs_tol=1e-12)


def test_higher_correlation_gets_higher_weight():
    analysis = analyze_trades(
        make_trades(500, effects={"wallet": 400, "cluster": 200, "token": 100, "context": 40}), EQUAL
    )
    by_corr = sorted(analysis.factors, key=lambda s: s.correlation)
    assert by_corr[0].correlation > 0.01
    weights = [analysis.suggested[s.factor] for s in by_corr]
    assert weights == sorted(weights) and len(set(weights)) == 4
    assert analysis.suggested["wallet"] > EQUAL["wallet"] > analysis.suggested["context"]


def test_correlations_below_the_floor_share_the_smallest_weight():
    analysis = analyze_trades(
        make_trades(500, effects={"wallet": 400, "cluster": 0, "token": -300, "context": 0}), EQUAL
    )
    stats = {s.factor: s for s in analysis.factors}
    assert stats["token"].correlation < -0.1 and abs(stats["context"].correlation) < 0.1
    assert analysis.suggested["token"] == analysis.suggested["context"] == min(analysis.suggested.values())


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    raw=st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4).filter(lambda v: sum(v) > 0.01),
    effects=st.lists(st.floats(-400, 400), min_size=4, max_size=4),
)
def test_suggested_weights_are_always_a_valid_set(seed, raw, effects):
    current = round_weights(dict(zip(FACTORS, raw)))
    frame = make_trades(120, seed=seed, effects=dict(zip(FACTORS, effects)))
    suggested = analyze_trades(frame, current).suggested
    assert abs(math.fsum(suggested.values()) - 1.0) <= 1e-9
    assert all(0.0 <= v <= 1.0 and round(v, 4) == v for v in suggested.values())
    get_domain("scoring_weights").validate(suggested)


def test_round_weights_keeps_the_sum_by_largest_remainder():
    assert round_weights({"wallet": 1, "cluster": 1, "token": 1, "context": 0}) == {
        "wallet": 0.3334,
        "cluster": 0.3333,
        "token": 0.3333,
        "context": 0.0,
    }
    assert round_weights({"wallet": 2, "cluster": 2, "token": 2, "context": 2}) == EQUAL
    with pytest.raises(WeightsError, match="add up to 0"):
        round_weights(dict.fromkeys(FACTORS, 0.0))


def test_rationale_in_plain_english():
    strong = FactorStats("wallet", 0.45, 0.72, 0.41, 300, 150, 150)
    assert (
        rationale(strong, 0.25, 0.40)
        == "Strong predictor: winners avg 0.72 vs losers 0.41 (correlation 0.45), raising weight"
    )
    weak = FactorStats("token", 0.03, 0.51, 0.50, 300, 150, 150)
    assert rationale(weak, 0.25, 0.12) == "Weak correlation (0.03), reducing weight"
    tiny = FactorStats("token", -0.001, 0.50, 0.50, 300, 150, 150)
    assert rationale(tiny, 0.25, 0.12) == "Weak correlation (0.00), reducing weight"  # never "-0.00"
    against = FactorStats("context", -0.25, 0.40, 0.55, 300, 150, 150)
    assert rationale(against, 0.25, 0.10).startswith("Works against PnL: correlation -0.25")
    useful = FactorStats("cluster", 0.2, 0.56, 0.48, 300, 150, 150)
    assert (
        rationale(useful, 0.25, 0.24)
        == "Useful predictor: winners avg 0.56 vs losers 0.48 (correlation 0.20), reducing weight slightly"
    )
    flat = FactorStats("cluster", 0.2, 0.52, 0.50, 300, 150, 150)
    assert (
        rationale(flat, 0.25, 0.25)
        == "Some correlation (0.20) but winners avg 0.52 vs losers 0.50 barely differ, keeping weight"
    )


# -- estimated improvement -------------------------------------------------------------------------


def improvement_table() -> pd.DataFrame:
    #                 wallet cluster token context   pnl    equal weights    wallet-heavy
    rows = [
        (0.9, 0.9, 0.9, 0.9, 50.0),  # 0.90 taken     0.90 taken   (win)
        (1.0, 0.4, 0.4, 0.4, 40.0),  # 0.55 skipped   0.82 taken   (win)
        (0.2, 0.9, 0.9, 0.9, -30.0),  # 0.725 taken    0.41 skipped (loss)
        (0.1, 0.1, 0.1, 0.1, -5.0),
    ]  # 0.10 skipped   0.10 skipped (loss)
    frame = pd.DataFrame(rows, columns=[*(f"{f}_score" for f in FACTORS), "pnl"])
    frame["win"] = frame["pnl"] > 0
    return frame


def test_improvement_rescores_every_trade_at_the_threshold():
    heavy = {"wallet": 0.7, "cluster": 0.1, "token": 0.1, "context": 0.1}
    result = estimate_improvement(load_trades(improvement_table()), EQUAL, heavy)
    assert (result.current_taken, result.current_wins, result.suggested_taken, result.suggested_wins) == (2, 1, 2, 2)
    assert result.pct == pytest.approx(100.0)
    assert result.current_pnl == pytest.approx(20.0) and result.suggested_pnl == pytest.approx(90.0)
    assert result.text() == (
        "At threshold 0.6 the suggested weights take 2 winning trades instead of 1 (+100.0%), "
        "out of 2 trades taken instead of 2."
    )


def test_when_the_current_weights_take_no_winner_it_says_so_instead_of_zero():
    frame = improvement_table().iloc[[1, 3]]
    heavy = {"wallet": 0.7, "cluster": 0.1, "token": 0.1, "context": 0.1}
    result = estimate_improvement(load_trades(frame), EQUAL, heavy)
    assert result.pct is None and result.clears(2.0)
    assert result.text().startswith(
        "The current weights take no winning trade at threshold 0.6, so there is no percentage"
    )
    assert "would take 1 winning trade (of 1 taken)" in result.text()
    assert "0%" not in result.text()
    nobody = estimate_improvement(load_trades(frame.iloc[[1]]), EQUAL, EQUAL)
    assert nobody.text() == "Neither the current nor the suggested weights take a winning trade at threshold 0.6."
    assert not nobody.clears(2.0)


def test_a_score_exactly_at_the_threshold_is_taken():
    frame = pd.DataFrame([(0.6, 0.6, 0.6, 0.6, 1.0)], columns=[*(f"{f}_score" for f in FACTORS), "pnl"]).assign(
        win=True
    )
    odd = {
        "wallet": 0.1,
        "cluster": 0.2,
        "token": 0.3,
        "context": 0.4,
    }  # 0.6 × weights sums to 0.6000000000000001 or so
    assert estimate_improvement(load_trades(frame), odd, EQUAL).current_taken == 1


# -- too few trades and bad input ------------------------------------------------------------------


def test_too_few_trades_gives_a_clear_message_and_no_suggestion(tmp_path):
    analysis = analyze_trades(make_trades(42), EQUAL)
    assert analysis.message == "Only 42 trades: at least 100 are needed before weights are suggested."
    assert analysis.suggested is None and analysis.improvement is None and not analysis.enough_trades
    assert all(row["rationale"] is None for row in analysis.rows())
    target = weights_target(path=write_weights(tmp_path / "w.json"))
    with pytest.raises(NotEnoughTradesError, match="Only 42 trades: at least 100 are needed"):
        suggest_weights(
            make_trades(42),
            target,
            context=Context.build(history_dir=tmp_path / "runs", suggestions_dir=tmp_path / "s"),
        )
    assert not (tmp_path / "runs").exists() and not (tmp_path / "s").exists()
    assert analyze_trades(make_trades(42), EQUAL, min_trades=40).enough_trades


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_parquet(path)
    return path


BAD_TABLES = {
    "missing columns": (
        lambda f: f.drop(columns=["token_score", "pnl"]),
        "is missing the columns token_score, pnl; it needs wallet_score, cluster_score, token_score, context_score, pnl, win.",
    ),
    "nan score": (
        lambda f: f.assign(cluster_score=[np.nan] * 3 + list(f.cluster_score[3:])),
        "cluster_score is missing or not a finite number in 3 trades (first in row 1)",
    ),
    "score above 1": (
        lambda f: f.assign(token_score=[0.2, 1.4, 1.1] + list(f.token_score[3:])),
        "token_score is 1.4 in row 2, outside 0–1 (2 trades out of range).",
    ),
    "negative score": (
        lambda f: f.assign(context_score=[-0.1] + list(f.context_score[1:])),
        "context_score is -0.1 in row 1, outside 0–1 (1 trade out of range).",
    ),
    "infinite pnl": (
        lambda f: f.assign(pnl=[np.inf] + list(f.pnl[1:])),
        "pnl is missing or not a finite number in 1 trade",
    ),
    "text scores": (lambda f: f.assign(wallet_score=["high"] * len(f)), "wallet_score column must hold numbers"),
    "bad win flag": (
        lambda f: f.assign(win=[2] + [1] * (len(f) - 1)),
        "The win column must be true/false (or 1/0), but row 1 holds 2.",
    ),
    "text win flag": (lambda f: f.assign(win=["yes"] * len(f)), "but row 1 holds 'yes'."),
    "no trades": (lambda f: f.iloc[0:0], "has no trades."),
    "bad close time": (
        lambda f: f.assign(closed_at=["yesterday"] * len(f)),
        "closed_at column must hold dates and times between 1900-01-01 and 2199-12-31.",
    ),
    "close time out of range": (
        lambda f: f.assign(closed_at=["1800-01-01T00:00:00Z"] * len(f)),
        "closed_at in row 1 is 1800-01-01T00:00:00+00:00, outside the supported dates 1900-01-01 to 2199-12-31.",
    ),
}


@pytest.mark.parametrize("name", list(BAD_TABLES))
def test_bad_tables_give_one_clear_sentence(name, tmp_path):
    change, message = BAD_TABLES[name]
    frame = change(make_trades(150))
    for trades in (frame, write_parquet(tmp_path / "t.parquet", frame)):
        with pytest.raises(WeightsError) as caught:
            analyze_trades(trades, EQUAL)
        text = str(caught.value)
        assert message in text and "\n" not in text and text.endswith(".")


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "The trades file {p} does not exist."),
        (lambda p: (p.write_bytes(b""), p)[1], "The trades file {p} is empty."),
        (
            lambda p: (p.write_bytes(b"PAR1 this is not parquet at all"), p)[1],
            "The trades file {p} is not a readable Parquet file (",
        ),
        (lambda p: (p.write_text("wallet_score,pnl\n0.1,3\n"), p)[1], "is not a readable Parquet file"),
        (lambda p: (p.mkdir(), p)[1], "The trades file {p} is a folder, not a Parquet file."),
    ],
)
def test_bad_files_give_one_clear_sentence(tmp_path, make, message):
    path = make(tmp_path / "trades.parquet")
    with pytest.raises(WeightsError) as caught:
        analyze_trades(path, EQUAL)
    assert message.format(p=path) in str(caught.value) and "\n" not in str(caught.value)


def test_other_bad_arguments():
    with pytest.raises(WeightsError, match="Parquet file path or a DataFrame, not list"):
        analyze_trades([1, 2], EQUAL)
    with pytest.raises(WeightsError, match="The current weights are not a valid set: weights sum to 1.1, not 1."):
        analyze_trades(make_trades(100), {**EQUAL, "wallet": 0.35})
    with pytest.raises(WeightsError, match="min_trades must be a whole number"):
        analyze_trades(make_trades(100), EQUAL, min_trades=-1)
    with pytest.raises(WeightsError, match="trading threshold must be a number above 0"):
        analyze_trades(make_trades(100), EQUAL, threshold=1.5)


def test_nullable_and_integer_columns_are_accepted():
    frame = make_trades(120)
    frame["win"] = frame["win"].astype(int)
    frame["pnl"] = frame["pnl"].round().astype("Int64")
    assert analyze_trades(frame, EQUAL).enough_trades


# -- the domain, its target and the policy ---------------------------------------------------------


def test_an_analysis_is_recorded_as_a_scoring_weights_run(tmp_path):
    analysis = analyze_trades(make_trades(300), EQUAL)
    run = record_calibration_result(
        analysis.to_dict(), underlying="SCORING", source="trades", history_dir=tmp_path, domain="scoring_weights"
    )
    assert run.domain == "scoring_weights" and run.underlying == "SCORING" and run.sample_size == 300
    assert run.recommended == analysis.suggested and run.vega_sum is None
    stored = json.loads((tmp_path / f"{run.run_id}.json").read_text())
    assert stored["analysis"]["factors"][0]["factor"] == "wallet"
    with pytest.raises(InvalidRunError, match="'live' is not a source of Scoring weights; use one of: trades"):
        record_calibration_result(
            analysis.to_dict(), underlying="SCORING", source="live", history_dir=tmp_path, domain="scoring_weights"
        )
    with pytest.raises(InvalidRunError, match="Only 42 trades"):
        record_calibration_result(
            analyze_trades(make_trades(42), EQUAL).to_dict(),
            underlying="SCORING",
            source="trades",
            history_dir=tmp_path,
            domain="scoring_weights",
        )


def test_the_weights_file_takes_only_a_whole_valid_set(tmp_path):
    path = tmp_path / "scoring_weights.json"
    path.write_text(json.dumps({**EQUAL, "model_version": "v3"}))
    target = weights_target(path=path)
    assert target.name == "scoring_weights" and target.values(target.load()) == EQUAL
    before = path.read_bytes()
    with pytest.raises(InvalidRunError, match="The cluster, token and context weights are missing"):
        apply_values(
            target,
            {"wallet": 0.5},
            archive_dir=tmp_path / "a",
            kind="force",
            reason="partial",
            domain="scoring_weights",
        )
    assert path.read_bytes() == before and not (tmp_path / "a" / "scoring_weights").exists()
    new = {"wallet": 0.4, "cluster": 0.2, "token": 0.2, "context": 0.2}
    apply_values(target, new, archive_dir=tmp_path / "a", kind="force", reason="whole", domain="scoring_weights")
    assert read_weights(path) == {**new, "model_version": "v3"}  # the host's other keys stay


def test_explain_reads_sensibly_for_weights():
    policy = CalibrationUpdatePolicy(
        domain="scoring_weights",
        rules=("min_sample_size", "min_delta"),
        min_sample_size=100,
        min_delta_global=0.02,
        require_approval=True,
    )
    text = policy.explain()
    assert "only updates weights when the change is large enough (at least 0.02 for any weight)" in text
    assert "at least 100 trades in the sample" in text
    assert not any(word in text for word in ("vega", "global", "band", "multiplier", "options"))
    assert policy.threshold_for("wallet") == 0.02  # what explain says is what the rule uses
    assert CalibrationUpdatePolicy(min_delta_band=0.05).threshold_for("weekly") == 0.05  # the vol surface is unchanged


# -- the bundled trades ----------------------------------------------------------------------------


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_trades", REPO / "data" / "generate_trades.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bundled_trades_shift_weight_toward_the_real_predictor():
    analysis = analyze_trades(REPO / "data" / "trades.parquet", read_weights(REPO / "data" / "scoring_weights.json"))
    assert analysis.n_trades >= 500 and analysis.current == EQUAL
    stats = {s.factor: s for s in analysis.factors}
    assert stats["wallet"].is_predictive and not stats["token"].is_predictive
    assert abs(stats["token"].correlation) < 0.1 < stats["wallet"].correlation
    assert max(analysis.suggested, key=analysis.suggested.get) == "wallet"
    assert analysis.suggested["wallet"] > 0.45 and analysis.suggested["token"] < 0.15
    assert analysis.improvement.pct > 10


def test_the_generator_is_deterministic_and_matches_the_bundled_file(tmp_path):
    generator = load_generator()
    assert generator.main(["--out", str(tmp_path / "a.parquet")]) == 0
    assert generator.main(["--out", str(tmp_path / "b.parquet")]) == 0
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    bundled = pd.read_parquet(REPO / "data" / "trades.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a.parquet"), bundled)
    assert len(bundled) >= 500 and bundled["closed_at"].is_monotonic_increasing
