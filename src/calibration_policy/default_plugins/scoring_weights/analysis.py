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
``trade_id``       optional: the trade's id; the out-of-sample check refuses repeated ids
                   and orders trades closed in the same second by it
=================  ====================================================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from calibration_policy.limits import EARLIEST, LATEST, moment_problem
from calibration_policy.paths import data_root
from calibration_policy.policy import CalibrationUpdatePolicy

from . import lazy
from .domain import (
    DOMAIN_NAME,
    FACTORS,
    NotEnoughTradesError,
    ScoringWeightsDomain,
    WeightsError,
    round_weights,
    show,
)

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy.pandas

SCORE_COLUMNS: dict[str, str] = {factor: f"{factor}_score" for factor in FACTORS}
PNL_COLUMN, WIN_COLUMN, TIME_COLUMN, ID_COLUMN = "pnl", "win", "closed_at", "trade_id"
REQUIRED_COLUMNS = (*SCORE_COLUMNS.values(), PNL_COLUMN, WIN_COLUMN)
MODEL_NAME = "SCORING"  # the "underlying" weight runs are recorded under
SOURCE = "trades"

DEFAULT_MIN_TRADES = 100
TRADING_THRESHOLD = 0.6
BLEND = 0.7  # share of the data-driven weights in a suggestion; the rest stays with the current ones
MIN_CORRELATION = 0.01  # every factor keeps a sliver of weight, so it can earn it back later
PREDICTIVE_SPREAD = 0.05  # winners' average score must beat losers' by more than this…
PREDICTIVE_CORRELATION = 0.1  # …and the correlation with PnL must exceed this
STRONG_CORRELATION = 0.3  # a predictive factor this correlated is called strong in the rationale
FLOAT_NOISE = 1e-9

TradesInput = Union[str, "os.PathLike[str]", "pd.DataFrame"]


def default_trades_file() -> Path:
    """``trades.parquet`` in the data root (``$CALIBRATION_DATA``, else ``data``)."""
    return data_root() / "trades.parquet"


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
    present, ``closed_at`` as UTC timestamps and ``trade_id`` as text. Rows are numbered from 1 in messages.
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
            raise WeightsError(
                f"{where}'s {TIME_COLUMN} column must hold dates and times between "
                f"{EARLIEST:%Y-%m-%d} and {LATEST.year - 1}-12-31."
            ) from None
        if times.isna().any():
            raise WeightsError(f"{TIME_COLUMN} is missing in row {int(np.argmax(times.isna().to_numpy())) + 1}.")
        outside = ((times < EARLIEST) | (times >= LATEST)).to_numpy()
        if outside.any():
            first = int(np.argmax(outside))
            raise WeightsError(f"{TIME_COLUMN} in row {first + 1} {moment_problem(times[first].to_pydatetime())}.")
        clean[TIME_COLUMN] = times
    if ID_COLUMN in frame.columns:
        ids = frame[ID_COLUMN].reset_index(drop=True)
        if ids.isna().any():
            raise WeightsError(f"{ID_COLUMN} is missing in row {int(np.argmax(ids.isna().to_numpy())) + 1}.")
        clean[ID_COLUMN] = ids.astype(str)
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
        return (
            self.winners_avg - self.losers_avg > PREDICTIVE_SPREAD + FLOAT_NOISE
            and self.correlation > PREDICTIVE_CORRELATION + FLOAT_NOISE
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "column": SCORE_COLUMNS[self.factor],
            "correlation": self.correlation,
            "winners_avg": self.winners_avg,
            "losers_avg": self.losers_avg,
            "sample_size": self.sample_size,
            "winners": self.winners,
            "losers": self.losers,
            "is_predictive": self.is_predictive,
            "note": self.note,
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
        stats.append(
            FactorStats(
                factor=factor,
                correlation=0.0 if r is None else r,
                winners_avg=float(scores[win].mean()) if win.any() else None,
                losers_avg=float(scores[~win].mean()) if (~win).any() else None,
                sample_size=len(scores),
                winners=int(win.sum()),
                losers=int((~win).sum()),
                note=note,
            )
        )
    return tuple(stats)


# -- suggested weights -----------------------------------------------------------------------------


def suggest_from(
    stats: tuple[FactorStats, ...], current: Mapping[str, float], blend: float = BLEND
) -> dict[str, float]:
    """Weights proportional to each factor's correlation (at least 0.01), blended with the current ones.

    A factor that did not correlate still keeps a small share, and 30% of every weight stays
    where it was, so one batch of trades cannot swing the model all the way.
    """
    share = {s.factor: max(s.correlation, MIN_CORRELATION) for s in stats}
    total = math.fsum(share.values())
    return round_weights({f: blend * share[f] / total + (1 - blend) * current[f] for f in FACTORS})


def bounded_weights(
    suggested: Mapping[str, float], current: Mapping[str, float], max_change: float
) -> dict[str, float]:
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
            return (
                f"the current weights take no winning trade at threshold {self.threshold:g}, "
                f"the suggested ones {self.suggested_wins:,}"
            )
        more = "more" if self.pct >= 0 else "fewer"  # relative to the trades the current weights win, not points
        return f"{abs(self.pct):.1f}% {more} winning trades taken at threshold {self.threshold:g}"

    def text(self) -> str:
        t = f"{self.threshold:g}"
        if self.current_wins == 0 and self.suggested_wins == 0:
            return f"Neither the current nor the suggested weights take a winning trade at threshold {t}."
        if self.current_wins == 0:
            return (
                f"The current weights take no winning trade at threshold {t}, so there is no percentage to "
                f"compare; the suggested weights would take {_plural(self.suggested_wins, 'winning trade')} "
                f"(of {self.suggested_taken:,} taken)."
            )
        return (
            f"At threshold {t} the suggested weights take {_plural(self.suggested_wins, 'winning trade')} "
            f"instead of {self.current_wins:,} ({self.pct:+.1f}%), out of {self.suggested_taken:,} trades taken "
            f"instead of {self.current_taken:,}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "pct": self.pct,
            "text": self.text(),
            "current": {"taken": self.current_taken, "wins": self.current_wins, "pnl": self.current_pnl},
            "suggested": {"taken": self.suggested_taken, "wins": self.suggested_wins, "pnl": self.suggested_pnl},
        }


def estimate_improvement(
    trades: pd.DataFrame,
    current: Mapping[str, float],
    suggested: Mapping[str, float],
    threshold: float = TRADING_THRESHOLD,
) -> Improvement:
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
        current_taken=int(now.sum()),
        current_wins=int((now & win).sum()),
        current_pnl=float(pnl[now].sum()),
        suggested_taken=int(new.sum()),
        suggested_wins=int((new & win).sum()),
        suggested_pnl=float(pnl[new].sum()),
    )


# -- the trades a run carries for the watch after apply -----------------------------------------------

MAX_WINDOW_TRADES = 5_000  # a run keeps at most this many of its newest trades (about 60 bytes each in JSON)


def window_trades(
    trades: pd.DataFrame,
    previous: Mapping[str, Any] | None,
    previous_count: int | None,
    current: Mapping[str, float],
    threshold: float = TRADING_THRESHOLD,
    cap: int = MAX_WINDOW_TRADES,
) -> dict[str, Any] | None:
    """The trades closed since the previous run (its analysis ``previous``: after its ``last_trade_at``; without
    close times, the rows added since its ``previous_count`` trades; no previous run: all of them), the newest
    ``cap``, as a run keeps them for the watch after apply: each trade's four factor scores and its PnL, and the
    ``volume`` both weight sets are scored at (how many of them the live weights took at the threshold, at least
    1), so the old and the new weights are compared on the same trades at equal volume
    (:meth:`~.domain.ScoringWeightsDomain.score`). None: no new trade."""
    frame = trades
    last_at = (previous or {}).get("last_trade_at")
    if last_at and TIME_COLUMN in frame.columns:
        frame = frame[frame[TIME_COLUMN] > pd.Timestamp(last_at)]
    elif previous_count is not None:
        frame = frame.iloc[min(previous_count, len(frame)) :]
    frame = frame.iloc[-cap:] if cap > 0 else frame.iloc[:0]
    if frame.empty:
        return None
    scores = frame[list(SCORE_COLUMNS.values())].to_numpy(dtype="float64")
    taken = scores @ np.array([current[f] for f in FACTORS]) >= threshold - FLOAT_NOISE
    return {
        "factors": list(FACTORS),
        "scores": scores.tolist(),
        "pnl": frame[PNL_COLUMN].to_numpy(dtype="float64").tolist(),
        "volume": max(1, int(taken.sum())),
    }


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
    averages = (
        f"winners avg {stats.winners_avg:.2f} vs losers {stats.losers_avg:.2f}"
        if stats.winners_avg is not None and stats.losers_avg is not None
        else None
    )
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
    look: dict[str, Any] | None = None  # auto mode's look at this run, recorded with it (:mod:`.budget`)

    @property
    def enough_trades(self) -> bool:
        return self.suggested is not None

    @property
    def suggestion(self) -> dict[str, float]:
        """The weights put forward; an analysis of too few trades has none (:class:`NotEnoughTradesError`)."""
        if self.suggested is None:
            raise NotEnoughTradesError(self.message)
        return self.suggested

    def with_values(self, values: Mapping[str, float], why: str) -> WeightsAnalysis:
        """The same analysis putting ``values`` forward instead (smoothed or bounded), re-estimated."""
        if self.suggested is None or self.trades is None:
            raise WeightsError("This analysis made no suggestion to adjust.")
        values = ScoringWeightsDomain().validate(values)
        return replace(
            self,
            suggested=values,
            unadjusted=self.unadjusted or self.suggested,
            adjustments=(*self.adjustments, why),
            improvement=estimate_improvement(self.trades, self.current, values, self.threshold),
        )

    def rows(self) -> list[dict[str, Any]]:
        """Per factor: its statistics, current and suggested weight, the change and the rationale."""
        rows = []
        for stats in self.factors:
            current = self.current[stats.factor]
            suggested = self.suggested[stats.factor] if self.suggested else None
            rows.append(
                {
                    **stats.to_dict(),
                    "current_weight": current,
                    "suggested_weight": suggested,
                    "change": None if suggested is None else suggested - current,
                    "rationale": None if suggested is None else rationale(stats, current, suggested),
                }
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: what a run records (``ScoringWeightsDomain.extract`` reads it) and the API returns."""
        return {
            "model": DOMAIN_NAME,
            "n_trades": self.n_trades,
            "min_trades": self.min_trades,
            "enough_trades": self.enough_trades,
            "message": self.message,
            "threshold": self.threshold,
            "current_weights": dict(self.current),
            "suggested_weights": dict(self.suggested) if self.suggested else None,
            "unadjusted_weights": dict(self.unadjusted) if self.unadjusted else None,
            "adjustments": list(self.adjustments),
            "factors": self.rows(),
            "estimated_improvement": self.improvement.to_dict() if self.improvement else None,
            "last_trade_at": self.last_trade_at.isoformat() if self.last_trade_at else None,
            **({"auto_look": dict(self.look)} if self.look else {}),
        }


def analyze_trades(
    trades: TradesInput,
    current_weights: Mapping[str, float],
    *,
    min_trades: int = DEFAULT_MIN_TRADES,
    threshold: float = TRADING_THRESHOLD,
) -> WeightsAnalysis:
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
        return WeightsAnalysis(
            n,
            min_trades,
            float(threshold),
            current,
            stats,
            None,
            None,
            f"Only {_plural(n, 'trade')}: at least {min_trades:,} are needed before weights are suggested.",
            last,
            trades=frame,
        )
    suggested = suggest_from(stats, current)
    return WeightsAnalysis(
        n,
        min_trades,
        float(threshold),
        current,
        stats,
        suggested,
        estimate_improvement(frame, current, suggested, threshold),
        f"Analysed {_plural(n, 'trade')} (minimum {min_trades:,}).",
        last,
        trades=frame,
    )


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
