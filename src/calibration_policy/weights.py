"""Scoring-model weights: learn from trade results which factors predict PnL, and suggest weights.

The scoring model rates a trade as ``Σ weight × factor score`` over wallet, cluster, token and
context and takes it when the score reaches the trading threshold (0.6). This module reads the
trades table, measures how well each factor's score predicted PnL, and suggests weights that
lean toward the factors that did — blended with the current weights, because one batch of
trades is evidence, not the truth. A suggestion then goes through the same governance as every
other domain: it is recorded as a run, smoothed and checked by the policy's rules, and either
waits for a person (``suggest_weights``) or, in auto mode, goes live within bounds
(``run_auto``) through the one locked, archived apply path.

The trades table (a Parquet file or a DataFrame) has one row per closed trade:

=================  ====================================================================
``wallet_score``   the factor scores the model saw when it took the decision, each in [0, 1]
``cluster_score``
``token_score``
``context_score``
``pnl``            the trade's profit or loss (any currency; only its ordering matters)
``win``            true (or 1) when the trade was a winner
``closed_at``      optional: when the trade closed; lets auto mode count trades since the
                   last suggestion even when the table is a rolling window
=================  ====================================================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .apply import apply_values, locked
from .archive import ArchiveEntry, now_utc
from .decide import should_apply_update
from .default_plugins.scoring_weights import (
    DOMAIN_NAME,
    FACTORS,
    ScoringWeightsDomain,
    show,
)
from .errors import CalibrationPolicyError, PolicyError
from .history import open_store, record_calibration_result
from .models import CalibrationRun, Decision
from .moments import to_utc
from .policy import CalibrationUpdatePolicy, read_toml
from .review import ReviewStore, Suggestion
from .smoothing import get_smoothed_multipliers, window_runs
from .target import Target

SCORE_COLUMNS: dict[str, str] = {factor: f"{factor}_score" for factor in FACTORS}
PNL_COLUMN, WIN_COLUMN, TIME_COLUMN = "pnl", "win", "closed_at"
REQUIRED_COLUMNS = (*SCORE_COLUMNS.values(), PNL_COLUMN, WIN_COLUMN)
MODEL_NAME = "SCORING"  # the "underlying" weight runs are recorded under
SOURCE = "trades"
DEFAULT_TRADES_FILE = Path("data") / "trades.parquet"
SETTINGS_ENV = "CALIBRATION_WEIGHTS_SETTINGS"
DEFAULT_SETTINGS_FILE = Path("data") / "scoring_weights.toml"

DEFAULT_MIN_TRADES = 100
TRADING_THRESHOLD = 0.6
BLEND = 0.7  # share of the data-driven weights in a suggestion; the rest stays with the current ones
MIN_CORRELATION = 0.01  # every factor keeps a sliver of weight, so it can earn it back later
PREDICTIVE_SPREAD = 0.05  # winners' average score must beat losers' by more than this…
PREDICTIVE_CORRELATION = 0.1  # …and the correlation with PnL must exceed this
STRONG_CORRELATION = 0.3  # a predictive factor this correlated is called strong in the rationale
DECIMALS = 4
FLOAT_NOISE = 1e-9

TradesInput = Union[str, "os.PathLike[str]", pd.DataFrame]


class WeightsError(CalibrationPolicyError):
    """The trades table, the live weights or a weights setting cannot be used as given."""


class NotEnoughTradesError(WeightsError):
    """Fewer trades than the minimum: no suggestion is made."""


# -- the trades table ------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa

    if path.is_dir():
        raise WeightsError(f"The trades file {path} is a folder, not a Parquet file.")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise WeightsError(f"The trades file {path} does not exist.") from None
    except OSError as error:
        raise WeightsError(f"The trades file {path} cannot be read: {error.strerror}.") from None
    if size == 0:
        raise WeightsError(f"The trades file {path} is empty.")
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as error:
        detail = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise WeightsError(f"The trades file {path} is not a readable Parquet file ({detail}).") from None


def _numbers(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    series = frame[column]
    if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
        raise WeightsError(f"{where}'s {column} column must hold numbers, not {series.dtype} values.")
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        raise WeightsError(
            f"{column} is missing or not a finite number in {_plural(int(bad.sum()), 'trade')} "
            f"(first in row {int(np.argmax(bad)) + 1}); fill those in or drop those trades."
        )
    return values


def _win_flags(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    if pd.api.types.is_numeric_dtype(series):
        values: np.ndarray = series.to_numpy(dtype="float64", na_value=np.nan)
        ok = (values == 0) | (values == 1)
    else:
        values = series.to_numpy(dtype=object)
        ok = np.array([isinstance(v, (bool, np.bool_)) for v in values], dtype=bool)
    if not ok.all():
        first = int(np.argmin(ok))
        held = values[first]
        shown = show(float(held)) if isinstance(held, (float, np.floating)) else f"{held!r:.40}"
        raise WeightsError(f"The win column must be true/false (or 1/0), but row {first + 1} holds {shown}.")
    return values.astype(bool)


def load_trades(trades: TradesInput) -> pd.DataFrame:
    """The trades table, checked: every problem is reported as one sentence naming the column and row.

    Returns a new frame with the score columns and ``pnl`` as floats, ``win`` as bool and, when
    present, ``closed_at`` as UTC timestamps. Rows are numbered from 1 in messages.
    """
    if isinstance(trades, pd.DataFrame):
        frame, where = trades, "The trades table"
    elif isinstance(trades, (str, os.PathLike)):
        frame, where = _read_parquet(Path(trades)), f"The trades file {trades}"
    else:
        raise WeightsError(f"Trades must be a Parquet file path or a DataFrame, not {type(trades).__name__}.")
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise WeightsError(
            f"{where} is missing the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            f"it needs {', '.join(REQUIRED_COLUMNS)}."
        )
    if len(frame) == 0:
        raise WeightsError(f"{where} has no trades.")
    clean = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for column in SCORE_COLUMNS.values():
        values = _numbers(frame, column, where)
        outside = (values < 0) | (values > 1)
        if outside.any():
            first = int(np.argmax(outside))
            raise WeightsError(
                f"{column} is {show(values[first])} in row {first + 1}, outside 0–1 "
                f"({_plural(int(outside.sum()), 'trade')} out of range)."
            )
        clean[column] = values
    clean[PNL_COLUMN] = _numbers(frame, PNL_COLUMN, where)
    clean[WIN_COLUMN] = _win_flags(frame[WIN_COLUMN])
    if TIME_COLUMN in frame.columns:
        try:
            times = pd.to_datetime(frame[TIME_COLUMN], utc=True).reset_index(drop=True)
        except (ValueError, TypeError, OverflowError):
            raise WeightsError(f"{where}'s {TIME_COLUMN} column must hold dates and times.") from None
        if times.isna().any():
            raise WeightsError(f"{TIME_COLUMN} is missing in row {int(np.argmax(times.isna().to_numpy())) + 1}.")
        clean[TIME_COLUMN] = times
    return clean


# -- per-factor statistics -------------------------------------------------------------------------


@dataclass(frozen=True)
class FactorStats:
    """How one factor's score related to the trades' results."""

    factor: str
    correlation: float  # Pearson, score vs PnL; 0 (with a note) when it is undefined
    winners_avg: float | None  # None when there is no winning trade
    losers_avg: float | None
    sample_size: int
    winners: int
    losers: int
    note: str | None = None

    @property
    def is_predictive(self) -> bool:
        """Winners scored clearly higher than losers, and the score moved with PnL."""
        if self.winners_avg is None or self.losers_avg is None:
            return False
        # "More than" beyond float noise: averages 0.55 vs 0.50 are a spread of 0.05, not 0.05000000000000004.
        return (self.winners_avg - self.losers_avg > PREDICTIVE_SPREAD + FLOAT_NOISE
                and self.correlation > PREDICTIVE_CORRELATION + FLOAT_NOISE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor, "column": SCORE_COLUMNS[self.factor], "correlation": self.correlation,
            "winners_avg": self.winners_avg, "losers_avg": self.losers_avg, "sample_size": self.sample_size,
            "winners": self.winners, "losers": self.losers, "is_predictive": self.is_predictive, "note": self.note,
        }


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson's r, or None when it is undefined (fewer than two trades, or a constant column)."""
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    if not denominator > 0 or not math.isfinite(denominator):
        return None
    return float(np.clip(float(dx @ dy) / denominator, -1.0, 1.0))


def factor_stats(trades: pd.DataFrame) -> tuple[FactorStats, ...]:
    """Correlation with PnL and winners' vs losers' average score, per factor."""
    pnl = trades[PNL_COLUMN].to_numpy(dtype="float64")
    win = trades[WIN_COLUMN].to_numpy(dtype=bool)
    stats = []
    for factor, column in SCORE_COLUMNS.items():
        scores = trades[column].to_numpy(dtype="float64")
        r = pearson(scores, pnl)
        note = None
        if r is None:
            if len(scores) < 2:
                note = "one trade cannot show a correlation, taken as 0"
            elif np.all(scores == scores[0]):
                note = f"every trade has the same {factor} score ({show(scores[0])}), so its correlation is taken as 0"
            else:
                note = "every trade has the same PnL, so the correlation is taken as 0"
        stats.append(FactorStats(
            factor=factor, correlation=0.0 if r is None else r,
            winners_avg=float(scores[win].mean()) if win.any() else None,
            losers_avg=float(scores[~win].mean()) if (~win).any() else None,
            sample_size=len(scores), winners=int(win.sum()), losers=int((~win).sum()), note=note,
        ))
    return tuple(stats)


# -- suggested weights -----------------------------------------------------------------------------


def round_weights(weights: Mapping[str, float], decimals: int = DECIMALS) -> dict[str, float]:
    """Normalise to a sum of 1 and round to ``decimals`` places without breaking the sum.

    Largest remainder: floor every weight to the grid, then give the leftover units to the
    weights that lost most. A reviewer reads 0.4123, not 0.41229999999999994.
    """
    total = math.fsum(weights[f] for f in FACTORS)
    if not total > 0:
        raise WeightsError("The weights to round add up to 0; at least one must be positive.")
    unit = 10**decimals
    exact = {f: weights[f] / total * unit for f in FACTORS}
    grid = {f: math.floor(exact[f]) for f in FACTORS}
    for factor in sorted(FACTORS, key=lambda f: (grid[f] - exact[f], FACTORS.index(f)))[: unit - sum(grid.values())]:
        grid[factor] += 1
    return {f: grid[f] / unit for f in FACTORS}


def suggest_from(stats: tuple[FactorStats, ...], current: Mapping[str, float], blend: float = BLEND) -> dict[str, float]:
    """Weights proportional to each factor's correlation (at least 0.01), blended with the current ones.

    A factor that did not correlate still keeps a small share, and 30% of every weight stays
    where it was, so one batch of trades cannot swing the model all the way.
    """
    share = {s.factor: max(s.correlation, MIN_CORRELATION) for s in stats}
    total = math.fsum(share.values())
    return round_weights({f: blend * share[f] / total + (1 - blend) * current[f] for f in FACTORS})


def bounded_weights(suggested: Mapping[str, float], current: Mapping[str, float], max_change: float) -> dict[str, float]:
    """The valid weight set closest to ``suggested`` that moves no weight more than ``max_change``.

    Clipping each weight to ±max_change on its own breaks the sum of 1. Instead this is the
    Euclidean projection onto {every w in [max(0, c − b), min(1, c + b)], Σw = 1}, which has
    the form w = clip(s + λ, lo, hi) for one shift λ; the sum is monotone in λ, so bisection
    finds it. A set is always found: the current weights themselves lie inside those bounds.
    Being the closest point, it may move a weight the analysis wanted slightly lower a little
    higher instead (the share the bound holds back from another weight has to go somewhere);
    the rationale is recomputed from the bounded weights, so it says what really happens.
    """
    if not max_change > 0 or not math.isfinite(max_change):
        raise WeightsError(f"max_weight_change must be a positive number, not {max_change!r:.40}.")
    s = np.array([suggested[f] for f in FACTORS], dtype="float64")
    c = np.array([current[f] for f in FACTORS], dtype="float64")
    lo, hi = np.maximum(0.0, c - max_change), np.minimum(1.0, c + max_change)
    if np.all((lo <= s) & (s <= hi)):
        return {f: float(v) for f, v in zip(FACTORS, s)}
    low, high = float((lo - s).min()), float((hi - s).max())  # all weights at lo … all at hi
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        if np.clip(s + middle, lo, hi).sum() < 1.0:
            low = middle
        else:
            high = middle
    w = np.clip(s + (low + high) / 2, lo, hi)
    return {f: float(v) for f, v in zip(FACTORS, w)}


# -- estimated improvement -------------------------------------------------------------------------


@dataclass(frozen=True)
class Improvement:
    """Every trade re-scored with the current and the suggested weights, taken at the threshold."""

    threshold: float
    current_taken: int
    current_wins: int
    current_pnl: float
    suggested_taken: int
    suggested_wins: int
    suggested_pnl: float

    @property
    def pct(self) -> float | None:
        """Change in winning trades taken, in percent; None when the current weights take none."""
        if self.current_wins == 0:
            return None
        return (self.suggested_wins - self.current_wins) / self.current_wins * 100.0

    def clears(self, bar_pct: float) -> bool:
        """Good enough to apply automatically? From no winning trade to some always is."""
        return self.suggested_wins > 0 if self.pct is None else self.pct >= bar_pct

    def short(self) -> str:
        if self.pct is None:
            return (f"the current weights take no winning trade at threshold {self.threshold:g}, "
                    f"the suggested ones {self.suggested_wins:,}")
        return f"{self.pct:+.1f}% winning trades taken at threshold {self.threshold:g}"

    def text(self) -> str:
        t = f"{self.threshold:g}"
        if self.current_wins == 0 and self.suggested_wins == 0:
            return f"Neither the current nor the suggested weights take a winning trade at threshold {t}."
        if self.current_wins == 0:
            return (f"The current weights take no winning trade at threshold {t}, so there is no percentage to "
                    f"compare; the suggested weights would take {_plural(self.suggested_wins, 'winning trade')} "
                    f"(of {self.suggested_taken:,} taken).")
        return (f"At threshold {t} the suggested weights take {_plural(self.suggested_wins, 'winning trade')} "
                f"instead of {self.current_wins:,} ({self.pct:+.1f}%), out of {self.suggested_taken:,} trades taken "
                f"instead of {self.current_taken:,}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold, "pct": self.pct, "text": self.text(),
            "current": {"taken": self.current_taken, "wins": self.current_wins, "pnl": self.current_pnl},
            "suggested": {"taken": self.suggested_taken, "wins": self.suggested_wins, "pnl": self.suggested_pnl},
        }


def estimate_improvement(trades: pd.DataFrame, current: Mapping[str, float], suggested: Mapping[str, float],
                         threshold: float = TRADING_THRESHOLD) -> Improvement:
    """Re-score every trade with both weight sets and count the winning trades each would take."""
    scores = trades[list(SCORE_COLUMNS.values())].to_numpy(dtype="float64")
    win = trades[WIN_COLUMN].to_numpy(dtype=bool)
    pnl = trades[PNL_COLUMN].to_numpy(dtype="float64")

    def taken(weights: Mapping[str, float]) -> np.ndarray:
        # A score of exactly the threshold counts, whatever float rounding did to it.
        return scores @ np.array([weights[f] for f in FACTORS]) >= threshold - FLOAT_NOISE

    now, new = taken(current), taken(suggested)
    return Improvement(
        threshold=threshold,
        current_taken=int(now.sum()), current_wins=int((now & win).sum()), current_pnl=float(pnl[now].sum()),
        suggested_taken=int(new.sum()), suggested_wins=int((new & win).sum()), suggested_pnl=float(pnl[new].sum()),
    )


# -- the analysis ----------------------------------------------------------------------------------


def two_places(value: float) -> str:
    """``-0.001`` → ``0.00``: a correlation that rounds to zero is shown without a minus sign."""
    return f"{round(value, 2) + 0.0:.2f}"


def _direction(current: float, suggested: float) -> str:
    change = suggested - current
    if abs(change) < 0.0005:
        return "keeping weight"
    return ("raising weight" if change > 0 else "reducing weight") + (" slightly" if abs(change) < 0.03 else "")


def rationale(stats: FactorStats, current: float, suggested: float) -> str:
    """One plain-English line: what the trades said about the factor, and what happens to its weight."""
    direction = _direction(current, suggested)
    r = two_places(stats.correlation)
    if stats.note:
        return f"No signal: {stats.note}; {direction}"
    averages = (f"winners avg {stats.winners_avg:.2f} vs losers {stats.losers_avg:.2f}"
                if stats.winners_avg is not None and stats.losers_avg is not None else None)
    if stats.is_predictive:
        strength = "Strong" if stats.correlation >= STRONG_CORRELATION else "Useful"
        return f"{strength} predictor: {averages} (correlation {r}), {direction}"
    if stats.correlation < -PREDICTIVE_CORRELATION:
        return f"Works against PnL: correlation {r}" + (f", {averages}" if averages else "") + f", {direction}"
    if stats.correlation <= PREDICTIVE_CORRELATION:
        return f"Weak correlation ({r}), {direction}"
    if averages is None:
        side = "winning" if stats.winners_avg is None else "losing"
        return f"Some correlation ({r}) but no {side} trade to compare with, {direction}"
    return f"Some correlation ({r}) but {averages} barely differ, {direction}"


@dataclass(frozen=True)
class WeightsAnalysis:
    """What the trades say about each factor, the suggested weights and what they would change."""

    n_trades: int
    min_trades: int
    threshold: float
    current: dict[str, float]
    factors: tuple[FactorStats, ...]
    suggested: dict[str, float] | None  # None: too few trades
    improvement: Improvement | None
    message: str
    last_trade_at: datetime | None = None
    unadjusted: dict[str, float] | None = None  # the analysis' own suggestion, before smoothing/bounds
    adjustments: tuple[str, ...] = ()
    trades: pd.DataFrame | None = field(default=None, repr=False, compare=False)

    @property
    def enough_trades(self) -> bool:
        return self.suggested is not None

    def with_values(self, values: Mapping[str, float], why: str) -> WeightsAnalysis:
        """The same analysis putting ``values`` forward instead (smoothed or bounded), re-estimated."""
        if self.suggested is None or self.trades is None:
            raise WeightsError("This analysis made no suggestion to adjust.")
        values = ScoringWeightsDomain().validate(values)
        return replace(
            self, suggested=values, unadjusted=self.unadjusted or self.suggested, adjustments=(*self.adjustments, why),
            improvement=estimate_improvement(self.trades, self.current, values, self.threshold),
        )

    def rows(self) -> list[dict[str, Any]]:
        """Per factor: its statistics, current and suggested weight, the change and the rationale."""
        rows = []
        for stats in self.factors:
            current = self.current[stats.factor]
            suggested = self.suggested[stats.factor] if self.suggested else None
            rows.append({
                **stats.to_dict(), "current_weight": current, "suggested_weight": suggested,
                "change": None if suggested is None else suggested - current,
                "rationale": None if suggested is None else rationale(stats, current, suggested),
            })
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: what a run records (``ScoringWeightsDomain.extract`` reads it) and the API returns."""
        return {
            "model": DOMAIN_NAME, "n_trades": self.n_trades, "min_trades": self.min_trades,
            "enough_trades": self.enough_trades, "message": self.message, "threshold": self.threshold,
            "current_weights": dict(self.current), "suggested_weights": dict(self.suggested) if self.suggested else None,
            "unadjusted_weights": dict(self.unadjusted) if self.unadjusted else None,
            "adjustments": list(self.adjustments), "factors": self.rows(),
            "estimated_improvement": self.improvement.to_dict() if self.improvement else None,
            "last_trade_at": self.last_trade_at.isoformat() if self.last_trade_at else None,
        }

    def text(self) -> str:
        return analysis_text(self.to_dict())


def analysis_text(analysis: Mapping[str, Any]) -> str:
    """An analysis (``WeightsAnalysis.to_dict()``, as stored in runs and suggestions) as a terminal table."""
    suggested = analysis.get("suggested_weights")
    lines = [str(analysis.get("message", "")), ""]
    header = f"{'Factor':<8} {'Corr':>6} {'Win avg':>8} {'Loss avg':>8} {'Predictive':>10} {'Current':>8}"
    if suggested:
        header += f" {'Suggested':>9} {'Change':>8}  Rationale"
    lines.append(header)
    avg = lambda v: "–" if v is None else f"{v:.2f}"
    for row in analysis.get("factors", []):
        line = (f"{row['factor']:<8} {two_places(row['correlation']):>6} {avg(row['winners_avg']):>8} {avg(row['losers_avg']):>8} "
                f"{'yes' if row['is_predictive'] else 'no':>10} {row['current_weight']:>8.4f}")
        if suggested:
            line += f" {row['suggested_weight']:>9.4f} {row['change']:>+8.4f}  {row['rationale']}"
        lines.append(line)
    lines += [f"Note: {row['note']}." for row in analysis.get("factors", []) if row.get("note")]
    if analysis.get("adjustments"):
        lines.append("Adjusted: " + "; ".join(analysis["adjustments"]) + ".")
    if analysis.get("estimated_improvement"):
        lines += ["", "Estimated improvement: " + analysis["estimated_improvement"]["text"]]
    return "\n".join(lines)


def analyze_trades(trades: TradesInput, current_weights: Mapping[str, float], *, min_trades: int = DEFAULT_MIN_TRADES,
                   threshold: float = TRADING_THRESHOLD) -> WeightsAnalysis:
    """Analyse a trades table against the current weights; suggest new ones if there are enough trades."""
    if isinstance(min_trades, bool) or not isinstance(min_trades, int) or min_trades < 0:
        raise WeightsError(f"min_trades must be a whole number ≥ 0, not {min_trades!r:.40}.")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise WeightsError(f"The trading threshold must be a number above 0 and at most 1, not {threshold!r:.40}.")
    try:
        current = ScoringWeightsDomain().validate(current_weights)
    except ValueError as error:
        raise WeightsError(f"The current weights are not a valid set: {error}") from None
    frame = load_trades(trades)
    stats = factor_stats(frame)
    n = len(frame)
    last = frame[TIME_COLUMN].max().to_pydatetime() if TIME_COLUMN in frame.columns else None
    if n < min_trades:
        return WeightsAnalysis(n, min_trades, float(threshold), current, stats, None, None,
                               f"Only {_plural(n, 'trade')}: at least {min_trades:,} are needed before weights are suggested.",
                               last, trades=frame)
    suggested = suggest_from(stats, current)
    return WeightsAnalysis(n, min_trades, float(threshold), current, stats, suggested,
                           estimate_improvement(frame, current, suggested, threshold),
                           f"Analysed {_plural(n, 'trade')} (minimum {min_trades:,}).", last, trades=frame)


# -- settings --------------------------------------------------------------------------------------

WEIGHTS_POLICY_DEFAULTS: dict[str, Any] = {
    "domain": DOMAIN_NAME,
    "rules": ("min_sample_size", "min_delta"),
    "min_sample_size": DEFAULT_MIN_TRADES,
    "min_delta_global": 0.02,
    "require_approval": True,
}


def weights_policy(**settings: Any) -> CalibrationUpdatePolicy:
    """The weights policy: at least 100 trades, a weight must move by 0.02, a person approves."""
    return CalibrationUpdatePolicy(**{**WEIGHTS_POLICY_DEFAULTS, **settings})


def _friendly(error: ValidationError, what: str) -> str:
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or what
        message = "is not a setting (check the spelling)" if item["type"] == "extra_forbidden" else (
            item["msg"].replace("Input should be", "must be"))
        problems.append(f"{name} {message} (got {item.get('input')!r:.40})")
    return f"Invalid {what}: " + "; ".join(problems) + "."


class AutoSettings(BaseModel):
    """Auto mode: suggest when enough new trades arrived; apply within bounds when it clearly helps."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    enabled: bool = Field(default=False, description="Off by default: weights change only when a person approves.")
    min_trades_between: int = Field(default=100, ge=1, description="New trades needed since the last suggestion.")
    max_weight_change: float = Field(default=0.1, gt=0, le=1, description="Largest move of one weight in one automatic change.")
    min_improvement_pct: float = Field(default=2.0, ge=0, description="Least estimated gain in winning trades taken, in %.")
    require_approval: bool = Field(default=False, description="Only suggest; a person approves every change.")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise PolicyError(_friendly(error, "auto-mode settings")) from None


@dataclass(frozen=True)
class WeightsSettings:
    policy: CalibrationUpdatePolicy
    auto: AutoSettings


def load_weights_settings(path: str | os.PathLike[str] | None = None) -> WeightsSettings:
    """The ``[policy]`` and ``[auto]`` tables of a TOML file, over the built-in defaults.

    The file is ``path``, else ``$CALIBRATION_WEIGHTS_SETTINGS``, else ``data/scoring_weights.toml``
    when it exists; without any, the defaults apply (auto mode off).
    """
    chosen = path or os.environ.get(SETTINGS_ENV) or (DEFAULT_SETTINGS_FILE if DEFAULT_SETTINGS_FILE.is_file() else None)
    if chosen is None:
        return WeightsSettings(weights_policy(), AutoSettings())
    chosen = Path(chosen)
    data = read_toml(chosen, "Weights settings file")
    extra = sorted(set(data) - {"policy", "auto"})
    if extra:
        raise PolicyError(f"{chosen}: {extra[0]!r} is not a table of weights settings; use [policy] and [auto].")
    try:
        return WeightsSettings(weights_policy(**data.get("policy", {})), AutoSettings(**data.get("auto", {})))
    except PolicyError as error:
        raise PolicyError(f"{chosen}: {error}") from None


# -- the governed flow -----------------------------------------------------------------------------

Action = Literal["suggested", "not suggested", "applied", "waiting", "off"]


@dataclass(frozen=True)
class WeightsOutcome:
    """What a suggest or auto step did, in one sentence, with everything behind it."""

    action: Action
    message: str
    analysis: WeightsAnalysis | None = None
    run: CalibrationRun | None = None
    decision: Decision | None = None
    suggestion: Suggestion | None = None
    change: ArchiveEntry | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "message": self.message,
            "analysis": self.analysis.to_dict() if self.analysis else None,
            "run_id": self.run.run_id if self.run else None,
            "suggestion_id": self.suggestion.suggestion_id if self.suggestion else None,
            "change_id": self.change.change_id if self.change else None,
            "applied_values": self.change.new_values if self.change else None,
        }


def _checked_policy(policy: CalibrationUpdatePolicy | None) -> CalibrationUpdatePolicy:
    policy = policy or weights_policy()
    if policy.domain != DOMAIN_NAME:
        raise PolicyError(f"This policy governs {policy.domain}, not scoring weights; set domain = \"{DOMAIN_NAME}\".")
    if "max_step" in policy.rules:
        raise PolicyError("The max_step rule clips each weight on its own, which breaks their sum of 1; leave it out "
                          "of a weights policy and bound automatic changes with max_weight_change.")
    return policy


def live_weights(target: Target) -> dict[str, float]:
    """The live weights, checked: a hand-edited file that no longer sums to 1 is reported, not used."""
    values = target.values(target.load())  # a missing or unreadable file is the target's own error
    try:
        return ScoringWeightsDomain().validate(values)
    except ValueError as error:
        raise WeightsError(f"The live weights ({target.name}) are not a valid set: {error}") from None


def _smoothed(analysis: WeightsAnalysis, run: CalibrationRun, policy: CalibrationUpdatePolicy, history_dir) -> WeightsAnalysis:
    """Smooth the suggestion over the earlier ones in the policy's window, as for any domain."""
    runs = open_store(history_dir).between(run.underlying, run.timestamp - timedelta(days=policy.smoothing_window_days), run.timestamp)
    earlier = len(window_runs(runs, run, policy)) - 1
    if earlier == 0:
        return analysis
    # A per-weight median need not sum to 1; round_weights normalises as it rounds.
    values = round_weights(get_smoothed_multipliers(runs, run, policy))
    if values == analysis.suggested:
        return analysis
    return analysis.with_values(values, f"smoothed ({policy.smoothing}) with {_plural(earlier, 'earlier suggestion')} "
                                        f"from the last {policy.smoothing_window_days:g} days")


def _prepare(frame: pd.DataFrame, target: Target, policy: CalibrationUpdatePolicy, underlying: str, threshold: float,
             max_change: float | None, history_dir, timestamp: datetime | None) -> tuple[WeightsAnalysis, CalibrationRun, Decision]:
    """Analyse, record the run, smooth, bound, and let the policy's rules decide."""
    analysis = analyze_trades(frame, live_weights(target), min_trades=policy.min_sample_size, threshold=threshold)
    if not analysis.enough_trades:
        raise NotEnoughTradesError(analysis.message)
    run = record_calibration_result(analysis.to_dict(), underlying, SOURCE, history_dir, timestamp, domain=DOMAIN_NAME)
    analysis = _smoothed(analysis, run, policy, history_dir)
    if max_change is not None:
        bounded = bounded_weights(analysis.suggested, analysis.current, max_change)  # type: ignore[arg-type]
        if bounded != analysis.suggested:
            analysis = analysis.with_values(bounded, f"each weight moves at most {max_change:g} from the live one")
    decision = should_apply_update(analysis.current, analysis.suggested, policy, {"sample_size": analysis.n_trades},  # type: ignore[arg-type]
                                   scope_labels={f: f for f in FACTORS})
    return analysis, run, decision


def _save_run(run: CalibrationRun, analysis: WeightsAnalysis, decision: Decision, reason: str, history_dir,
              change: ArchiveEntry | None = None, suggestion: Suggestion | None = None) -> CalibrationRun:
    run = run.model_copy(update={
        "analysis": analysis.to_dict(), "smoothed_iv_multiplier": analysis.suggested, "applied": change is not None,
        "applied_reason": reason, "applied_values": change.new_values if change else None, "decided_at": now_utc(),
        "decision": decision.to_dict(), "pending_suggestion": suggestion.suggestion_id if suggestion else None,
    })
    open_store(history_dir).save(run)
    return run


def _body(decision: Decision) -> str:
    return decision.reason.removeprefix("Applied: ")


def _propose(analysis: WeightsAnalysis, run: CalibrationRun, decision: Decision, target: Target, suggestions_dir,
             history_dir, auto_note: str | None = None) -> WeightsOutcome:
    improvement = analysis.improvement
    reason = f"Suggested: {_body(decision)}; estimated {improvement.short()}" if improvement else f"Suggested: {_body(decision)}"
    if auto_note:
        reason += f" (auto mode: {auto_note})"
    suggestion = ReviewStore(suggestions_dir).propose(Suggestion(
        domain=DOMAIN_NAME, target=target.name, underlying=run.underlying, created_at=now_utc(),
        values=analysis.suggested, current_values=analysis.current, reason=reason, run_id=run.run_id,  # type: ignore[arg-type]
        details={"analysis": analysis.to_dict(), "decision": decision.to_dict(), "auto": auto_note,
                 "calibration_timestamp": run.timestamp.isoformat()},
    ))
    run = _save_run(run, analysis, decision, "Waiting for approval: " + _body(decision), history_dir, suggestion=suggestion)
    return WeightsOutcome("suggested", f"{reason}. Review it as suggestion {suggestion.suggestion_id}.", analysis, run,
                          decision, suggestion)


def _not_suggested(analysis: WeightsAnalysis, run: CalibrationRun, decision: Decision, history_dir) -> WeightsOutcome:
    run = _save_run(run, analysis, decision, decision.reason, history_dir)
    text = decision.reason.replace("Not applied: ", "No new weights suggested: ", 1)
    return WeightsOutcome("not suggested", text, analysis, run, decision)


def suggest_weights(trades: TradesInput, target: Target, *, policy: CalibrationUpdatePolicy | None = None,
                    underlying: str = MODEL_NAME, threshold: float = TRADING_THRESHOLD, max_change: float | None = None,
                    history_dir: str | os.PathLike[str] | None = None, suggestions_dir: str | os.PathLike[str] | None = None,
                    timestamp: datetime | None = None) -> WeightsOutcome:
    """Analyse the trades against the live weights, record the run, and leave a pending suggestion.

    The suggestion (with the analysis, each factor's rationale and the estimated improvement
    in ``details``) waits for a person to approve, modify or reject it; an older pending one
    for the same weights expires. When the policy's rules say the change is not worth it (no
    weight moves by ``min_delta_global``), the run is recorded with that reason and nothing
    waits. Fewer trades than ``policy.min_sample_size`` raise :class:`NotEnoughTradesError`.
    """
    policy = _checked_policy(policy)
    analysis, run, decision = _prepare(load_trades(trades), target, policy, underlying, threshold, max_change,
                                       history_dir, timestamp)
    if not decision.apply:
        return _not_suggested(analysis, run, decision, history_dir)
    return _propose(analysis, run, decision, target, suggestions_dir, history_dir)


def new_trade_count(trades: pd.DataFrame, last_run: CalibrationRun) -> int:
    """Trades closed after the last analysed one; without close times, how many rows were added."""
    analysed = (last_run.model_extra or {}).get("analysis") or {}
    last_at = analysed.get("last_trade_at")
    if last_at and TIME_COLUMN in trades.columns:
        return int((trades[TIME_COLUMN] > pd.Timestamp(last_at)).sum())
    return max(0, len(trades) - last_run.sample_size)


def run_auto(trades: TradesInput, target: Target, settings: AutoSettings | None = None, *,
             policy: CalibrationUpdatePolicy | None = None, underlying: str = MODEL_NAME,
             threshold: float = TRADING_THRESHOLD, history_dir: str | os.PathLike[str] | None = None,
             suggestions_dir: str | os.PathLike[str] | None = None, archive_dir: str | os.PathLike[str] | None = None,
             timestamp: datetime | None = None) -> WeightsOutcome:
    """One auto-mode step, for a cron job: suggest when enough new trades arrived; maybe apply.

    The suggestion is bounded (no weight moves more than ``max_weight_change``, the set stays
    valid). It goes live at once — through the locked, archived apply path, as an ``auto``
    change that names the run, so it can be reviewed and rolled back — only when the estimated
    improvement reaches ``min_improvement_pct`` and ``require_approval`` is off; otherwise it
    waits for a person like any suggestion.
    """
    settings = settings or AutoSettings()
    if not settings.enabled:
        return WeightsOutcome("off", "Auto mode is off (enabled = false under [auto]); nothing was done.")
    policy = _checked_policy(policy)
    frame = load_trades(trades)
    latest = open_store(history_dir).latest(underlying, limit=1)
    if latest:
        new = new_trade_count(frame, latest[0])
        if new < settings.min_trades_between:
            return WeightsOutcome("waiting", f"{_plural(new, 'new trade')} since the last suggestion "
                                             f"({latest[0].timestamp:%Y-%m-%d %H:%M} UTC); auto mode waits for "
                                             f"{settings.min_trades_between:,}.")
    try:
        analysis, run, decision = _prepare(frame, target, policy, underlying, threshold, settings.max_weight_change,
                                           history_dir, timestamp)
    except NotEnoughTradesError as error:
        return WeightsOutcome("waiting", str(error))
    if not decision.apply:
        return _not_suggested(analysis, run, decision, history_dir)
    improvement = analysis.improvement
    assert improvement is not None  # an analysis with a suggestion always has its estimate
    if settings.require_approval:
        return _propose(analysis, run, decision, target, suggestions_dir, history_dir, "require_approval is on")
    if not improvement.clears(settings.min_improvement_pct):
        return _propose(analysis, run, decision, target, suggestions_dir, history_dir,
                        f"estimated improvement below the {settings.min_improvement_pct:g}% bar for applying on its own")
    reason = (f"Applied automatically: {_body(decision)}; estimated {improvement.short()} "
              f"(bar {settings.min_improvement_pct:g}%); no weight moved more than {settings.max_weight_change:g}")
    with locked(target):
        if live_weights(target) != analysis.current:
            reason = "Not applied: the live weights changed while auto mode was deciding; it looks again next time"
            return WeightsOutcome("waiting", reason, analysis, _save_run(run, analysis, decision, reason, history_dir), decision)
        change = apply_values(
            target, analysis.suggested, archive_dir=archive_dir, kind="auto", actor="auto mode", reason=reason,  # type: ignore[arg-type]
            domain=DOMAIN_NAME, underlying=run.underlying, run_id=run.run_id, calibration_timestamp=run.timestamp,
            already_locked=True,
        )
    run = _save_run(run, analysis, decision, reason, history_dir, change=change)
    ReviewStore(suggestions_dir).expire_pending(
        target.name, f"superseded by an automatic change ({change.change_id}) before anyone reviewed it")
    return WeightsOutcome("applied", reason + ".", analysis, run, decision, change=change)


def as_of_moment(text: str) -> datetime:
    """``2025-12-01`` means the end of that UTC day (what was live when it closed); a full ISO
    time such as ``2025-12-01T14:00Z`` means that moment (UTC when no zone is given)."""
    wrong = WeightsError(f"{text!r:.40} is not a date; use YYYY-MM-DD, or an ISO time such as 2025-12-01T14:00Z.")
    if not isinstance(text, str):
        raise wrong
    try:
        return datetime.combine(date.fromisoformat(text.strip()), time.max, tzinfo=timezone.utc)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise wrong from None
    return to_utc(moment, text)  # not astimezone: near year 1 or 9999 it overflows (issue 11, D5)
