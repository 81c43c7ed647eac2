"""Out-of-sample evidence for a scoring-weights suggestion: walk-forward, bootstrap, shuffled outcomes.

The analysis (:mod:`.analysis`) estimates a suggestion's benefit on the very
trades it was fitted to, counting the winning trades each weight set takes at the threshold.
That figure reads high even when the trades hold no signal at all: moving weight onto one factor
widens the spread of scores, so more trades pass 0.6 and more winners are counted — a count of
winners mostly measures volume. This module measures the suggestion the honest way:

* **walk-forward** (:func:`walk_forward`): the trades, in the order they closed (a shared close time
  ordered by ``trade_id``), are cut into ``folds + 1`` consecutive blocks. Fold *i* fits what would
  go live (the library's own procedure: :func:`~.analysis.factor_stats`,
  :func:`~.analysis.suggest_from`, then the :class:`~.live.LiveStep` — smoothing with the earlier
  suggestions whose trades closed before block *i*, and auto mode's bound when there is one)
  on the blocks before block *i* — all of them (``window="expanding"``) or the last
  ``train_blocks`` (``"rolling"``) — and scores block *i*, which it never saw, with the current
  and the suggested weights: trades taken, wins, total PnL, PnL per taken trade, at the
  threshold and **at equal volume** (the suggested weights take as many trades as the current
  ones, their highest-scored ones), so a gain cannot come from trading more;
* **uncertainty** (:func:`bootstrap_interval`): a seeded percentile bootstrap of the pooled
  out-of-sample PnL difference (the later trades resampled within each fold), and how many
  folds the suggestion won;
* **no-signal baseline** (:func:`no_signal_baseline`): the outcomes (PnL with its win flag) are
  shuffled across trades ``permutations`` times; each shuffle is refitted and re-evaluated. The
  in-sample estimate on shuffles shows what it reads on pure noise, and the share of shuffles
  whose out-of-sample gain reaches the real one is a permutation p-value.

:func:`evaluate` does all three and returns :class:`Evidence`, with ``passes(options)``,
``to_dict()`` (JSON-safe, finite numbers only) and ``text()``; :class:`OutOfSampleOptions` and
:func:`out_of_sample_verdict` are what an auto-mode rule wraps. Everything here is a pure
function of the trades table: nothing is recorded, suggested or applied.

The shuffles are vectorised: one permutation matrix per chunk, every fold's correlations for all
permutations of the chunk as a block-wise matrix product, the suggestions, bounds and top-k
selections as array operations. Randomness comes from ``numpy.random.default_rng([seed, stream])``,
so the same seed gives the same figures.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from . import lazy
from .analysis import (
    BLEND,
    FLOAT_NOISE,
    ID_COLUMN,
    MIN_CORRELATION,
    PNL_COLUMN,
    SCORE_COLUMNS,
    TIME_COLUMN,
    TRADING_THRESHOLD,
    WIN_COLUMN,
    Improvement,
    TradesInput,
    estimate_improvement,
    factor_stats,
    load_trades,
    suggest_from,
)
from .as_of import weights_shown
from .domain import (
    FACTORS,
    NotEnoughTradesError,
    ScoringWeightsDomain,
    WeightsError,
)
from .gate import (
    DEFAULT_BAR_PCT,
    DEFAULT_CONFIDENCE,
    DEFAULT_FOLDS,
    DEFAULT_MIN_TRADES_PER_FOLD,
    DEFAULT_PERMUTATIONS,
    DEFAULT_RESAMPLES,
    MEASURES,
    Measure,
    OutOfSampleOptions,
    Window,
)
from .live import LiveStep, _round_many

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy.pandas

WIDTH = 100  # the text's lines fit a terminal this wide
NOT_EVIDENCE = "Taking more trades raises this figure, so it is not evidence on its own."
EQUAL_VOLUME_WORDS = "A gain at equal volume cannot come from simply trading more."
INTERVAL_WORDS = "the gain ranges this much when the later trades are redrawn at random, so above zero means it is not one lucky draw."
FOLD_WORDS = "a fold fits the weights on earlier trades only and scores the next block of trades."
IN_SAMPLE_LABEL = "measured on the trades it was fitted to"
OUT_OF_SAMPLE_LABEL = "measured on later trades it never saw"
MEASURE_WORDS = {
    "equal_volume": "taking as many trades as the current weights",
    "at_threshold": "at the trading threshold",
}


_PERMUTATION_STREAM, _BOOTSTRAP_STREAM = 1, 2
PERMUTATION_CHUNK = 32  # permutations handled together; fixed, so a seed always draws the same shuffles
BOOTSTRAP_CELLS = 4_000_000  # resampling draws made at once (about 32 MB)


# -- small helpers ---------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _money(value: float, decimals: int = 0) -> str:
    """``+2,764.61`` → ``+2,765``; a figure that rounds to zero is shown without a sign."""
    text = f"{value:+,.{decimals}f}"
    return text[1:] if float(text.replace(",", "")) == 0 else text


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f}%"


def _finite(value: float | None) -> float | None:
    """A JSON-safe number: None stays None, NaN/inf become None, numpy scalars become floats."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _when(moment: pd.Timestamp) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _whole(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise WeightsError(f"{name} must be a whole number ≥ {minimum}, not {value!r:.40}.")
    return int(value)


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise WeightsError(f"The trading threshold must be a number above 0 and at most 1, not {threshold!r:.40}.")
    return float(threshold)


def _check_confidence(confidence: Any) -> float:
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise WeightsError(
            f"The confidence of an interval must be a number between 0 and 1, such as 0.9, not {confidence!r:.40}."
        )
    return float(confidence)


def _check_measure(measure: Any) -> Measure:
    if measure not in MEASURES:
        raise WeightsError(f"measure must be one of {', '.join(MEASURES)}, not {measure!r:.40}.")
    return measure


# -- the trades, checked for walk-forward ----------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    """The checked trades, in close order, cut into blocks; what every evaluation step works on."""

    frame: pd.DataFrame
    scores: np.ndarray  # n × 4, in FACTORS order
    pnl: np.ndarray
    win: np.ndarray
    times: pd.Series
    current: dict[str, float]
    current_vector: np.ndarray
    edges: np.ndarray  # block b is rows edges[b]:edges[b + 1]; block 0 is only ever fitted on
    train_blocks: tuple[tuple[int, int], ...]  # per fold: the blocks [first, last) it is fitted on
    window: Window
    window_blocks: int  # blocks a rolling window fits on (the setting; 0 for an expanding window)
    threshold: float
    step: LiveStep  # how a fitted suggestion becomes the values that go live
    min_trades_per_fold: int

    @property
    def max_change(self) -> float | None:
        return self.step.max_change

    @property
    def folds(self) -> int:
        return len(self.edges) - 2

    def train_rows(self, fold: int) -> tuple[int, int]:
        first, last = self.train_blocks[fold]
        return int(self.edges[first]), int(self.edges[last])

    def test_rows(self, fold: int) -> tuple[int, int]:
        return int(self.edges[fold + 1]), int(self.edges[fold + 2])

    def test_from(self, fold: int) -> pd.Timestamp:
        """When the first trade a fold is scored on closed: earlier suggestions must predate it."""
        return self.times.iloc[self.test_rows(fold)[0]]


NAMED = 5  # trades named in a refusal; the rest are counted


def _names(labels: list[str]) -> str:
    shown = ", ".join(labels[:NAMED])
    return shown if len(labels) <= NAMED else f"{shown} and {len(labels) - NAMED:,} more"


def _labels(frame: pd.DataFrame, rows: np.ndarray) -> list[str]:
    """Trades as a person finds them: by trade_id when the table has one, else by row (from 1)."""
    if ID_COLUMN in frame.columns:
        ids = frame[ID_COLUMN].to_numpy()
        return [str(ids[row]) for row in rows]
    return [f"row {row + 1}" for row in rows]


def _check_repeats(frame: pd.DataFrame) -> None:
    """Refuse a trade counted twice: a repeated trade_id, or the same scores and PnL within a second."""
    if ID_COLUMN in frame.columns:
        repeated = frame[ID_COLUMN].duplicated(keep="first").to_numpy()
        if repeated.any():
            rows = np.flatnonzero(repeated)
            raise WeightsError(
                f"{_plural(len(rows), 'trade')} repeat{'s' if len(rows) == 1 else ''} an earlier {ID_COLUMN}: "
                f"{_names(_labels(frame, rows))}; a trade counted twice makes noise look like signal. "
                f"Drop the repeats, then measure again."
            )
    key = [*SCORE_COLUMNS.values(), PNL_COLUMN]
    ordered = frame.sort_values([*key, TIME_COLUMN], kind="stable")
    same = (ordered[key].to_numpy()[1:] == ordered[key].to_numpy()[:-1]).all(axis=1)
    gap = np.diff(ordered[TIME_COLUMN].dt.tz_convert(None).to_numpy()) <= np.timedelta64(1, "s")
    later = ordered.index.to_numpy()[1:][same & gap]
    if len(later):
        earlier = ordered.index.to_numpy()[:-1][same & gap]
        pairs = [f"{b} (like {a})" for a, b in zip(_labels(frame, earlier), _labels(frame, later))]
        raise WeightsError(
            f"{_plural(len(later), 'trade')} repeat{'s' if len(later) == 1 else ''} an earlier trade's four scores "
            f"and PnL within a second: {_names(pairs)}; these look like one trade recorded twice. Drop the "
            f"repeats, then measure again."
        )


def _in_close_order(frame: pd.DataFrame) -> pd.DataFrame:
    """The trades in the order they closed; trades closed at the same moment in trade_id order."""
    times = frame[TIME_COLUMN]
    values = times.dt.tz_convert(None).to_numpy()  # UTC datetime64 (not an object array of Timestamps)
    earlier = values[1:] < values[:-1]
    if earlier.any():
        row = int(np.argmax(earlier)) + 1  # 0-based index of the trade that closed too early
        raise WeightsError(
            f"Walk-forward needs the trades in the order they closed, but {_labels(frame, np.array([row]))[0]} "
            f"closed at {_when(times.iloc[row])}, before {_labels(frame, np.array([row - 1]))[0]} "
            f"({_when(times.iloc[row - 1])}); {_plural(int(earlier.sum()), 'trade')} out of order. "
            f"Sort the table by {TIME_COLUMN} first."
        )
    if ID_COLUMN in frame.columns and (values[1:] == values[:-1]).any():
        order = np.lexsort((frame[ID_COLUMN].to_numpy(), values))  # only reorders within a shared moment
        frame = frame.iloc[order].reset_index(drop=True)
    return frame


def _prepare(
    trades: TradesInput,
    current_weights: Mapping[str, float],
    *,
    folds: int,
    window: Window,
    train_blocks: int,
    threshold: float,
    max_change: float | None,
    min_trades_per_fold: int,
    step: LiveStep | None = None,
) -> _Data:
    """Check the settings and the trades; cut the trades into ``folds + 1`` blocks. Every refusal is one sentence."""
    folds = _whole(folds, "folds", 1)
    train_blocks = _whole(train_blocks, "train_blocks", 1)
    min_trades_per_fold = _whole(min_trades_per_fold, "min_trades_per_fold", 2)
    threshold = _check_threshold(threshold)
    if window not in ("expanding", "rolling"):
        raise WeightsError(f"window must be expanding or rolling, not {window!r:.40}.")
    if max_change is not None and (
        isinstance(max_change, bool) or not isinstance(max_change, (int, float)) or not 0 < max_change <= 1
    ):
        raise WeightsError(f"max_change must be a number above 0 and at most 1 (or None), not {max_change!r:.40}.")
    if step is None:
        step = LiveStep(None if max_change is None else float(max_change))
    elif max_change is not None and max_change != step.max_change:
        raise WeightsError(f"max_change {max_change:g} differs from the step's {step.max_change}; give one of them.")
    try:
        current = ScoringWeightsDomain().validate(current_weights)
    except ValueError as error:
        raise WeightsError(f"The current weights are not a valid set: {error}") from None

    frame = load_trades(trades)  # missing or non-finite scores / PnL, bad win flags: its own messages
    if TIME_COLUMN not in frame.columns:
        raise WeightsError(
            f"Walk-forward needs a {TIME_COLUMN} column to know which trades came first; the trades table has none."
        )
    _check_repeats(frame)
    frame = _in_close_order(frame)
    times = frame[TIME_COLUMN]

    n = len(frame)
    blocks = folds + 1
    edges = np.array([i * n // blocks for i in range(blocks + 1)], dtype=np.int64)
    smallest = int(np.diff(edges).min())
    if smallest < min_trades_per_fold:
        raise NotEnoughTradesError(
            f"Walk-forward needs at least {min_trades_per_fold:,} trades per fold; you have {smallest:,} "
            f"({_plural(n, 'trade')} cut into {blocks} blocks: the first to fit on, then {_plural(folds, 'fold')}, "
            f"each scored on a block it never saw). Use fewer folds or wait for more trades."
        )

    scores = frame[list(SCORE_COLUMNS.values())].to_numpy(dtype="float64")
    pnl = frame[PNL_COLUMN].to_numpy(dtype="float64")
    win = frame[WIN_COLUMN].to_numpy(dtype=bool)
    spans = []
    for fold in range(folds):
        first = 0 if window == "expanding" else max(0, fold + 1 - train_blocks)
        spans.append((first, fold + 1))
    data = _Data(
        frame,
        scores,
        pnl,
        win,
        times,
        current,
        np.array([current[f] for f in FACTORS]),
        edges,
        tuple(spans),
        window,
        train_blocks if window == "rolling" else 0,
        threshold,
        step,
        min_trades_per_fold,
    )
    # A factor that never varies in a fit carries no information there: its correlation is taken as 0
    # (as the analysis takes it), for that fold only. PnL that never varies leaves nothing to learn.
    for fold in range(folds):
        lo, hi = data.train_rows(fold)
        if np.all(pnl[lo:hi] == pnl[lo]):
            raise WeightsError(
                f"Walk-forward needs PnL that varies, but {PNL_COLUMN} is {pnl[lo]:.12g} in all the "
                f"{_plural(hi - lo, 'trade')} fold {fold + 1} is fitted on ({_when(times.iloc[lo])} to "
                f"{_when(times.iloc[hi - 1])}); there is nothing to learn from."
            )
    return data


# -- fitting and scoring ---------------------------------------------------------------------------


def fit_weights(
    trades: pd.DataFrame,
    current: Mapping[str, float],
    max_change: float | None = None,
    *,
    step: LiveStep | None = None,
    before: pd.Timestamp | None = None,
) -> dict[str, float]:
    """The values that would go live from these trades: the library's suggestion (correlations, 70/30
    blend, floor, rounding), then ``step`` (smoothing with the earlier suggestions known ``before``
    these trades' successors, and the bound) — or just the bound when only ``max_change`` is given."""
    step = step or LiveStep(max_change)
    return step.apply(suggest_from(factor_stats(trades), current), dict(current), before)


@dataclass(frozen=True)
class Take:
    """What one weight set did on a set of trades."""

    taken: int
    wins: int
    pnl: float

    @property
    def mean_pnl(self) -> float | None:
        """PnL per taken trade; None when no trade was taken."""
        return self.pnl / self.taken if self.taken else None

    def __add__(self, other: Take) -> Take:
        return Take(self.taken + other.taken, self.wins + other.wins, self.pnl + other.pnl)

    def to_dict(self) -> dict[str, Any]:
        return {"taken": self.taken, "wins": self.wins, "pnl": _finite(self.pnl), "mean_pnl": _finite(self.mean_pnl)}

    def short(self) -> str:
        per = "" if self.mean_pnl is None else f", {_money(self.mean_pnl, 2)} per trade"
        return f"{_plural(self.taken, 'trade')} ({self.wins:,} winning), PnL {_money(self.pnl)}{per}"


def _take(mask: np.ndarray, pnl: np.ndarray, win: np.ndarray) -> Take:
    return Take(int(mask.sum()), int((mask & win).sum()), float(pnl[mask].sum()))


@dataclass(frozen=True)
class Comparison:
    """The current and the suggested weights on the same trades.

    ``equal_volume`` is the suggested weights' highest-scored trades, as many as the current
    weights take (ties go to the earlier trade): the current weights at equal volume are exactly
    the current weights at the threshold, so ``equal_volume.taken == current.taken`` always.
    """

    trades: int
    current: Take
    suggested: Take
    equal_volume: Take

    def gain(self, measure: Measure = "equal_volume") -> float:
        """Suggested minus current PnL, at equal volume or at the threshold."""
        other = self.equal_volume if measure == "equal_volume" else self.suggested
        return other.pnl - self.current.pnl

    def __add__(self, other: Comparison) -> Comparison:
        return Comparison(
            self.trades + other.trades,
            self.current + other.current,
            self.suggested + other.suggested,
            self.equal_volume + other.equal_volume,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "trades": self.trades,
            "current": self.current.to_dict(),
            "suggested": self.suggested.to_dict(),
            "equal_volume": self.equal_volume.to_dict(),
            "gain": {m: _finite(self.gain(m)) for m in MEASURES},
        }


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Choose the ``k`` highest scores (in each row of a 2-D array); on ties the earlier trade wins.

    The same set as the first ``k`` of a stable sort by descending score, in O(n) per row.
    """
    m = scores.shape[-1]
    if k <= 0:
        return np.zeros(scores.shape, dtype=bool)
    if k >= m:
        return np.ones(scores.shape, dtype=bool)
    kth = np.partition(scores, m - k, axis=-1)[..., m - k, None]  # the k-th largest score, per row
    above = scores > kth
    tied = scores == kth
    need = k - above.sum(axis=-1, keepdims=True)
    if np.all(tied.sum(axis=-1, keepdims=True) <= need):  # the usual case: every tied score is needed
        return above | tied
    return above | (tied & (np.cumsum(tied, axis=-1) <= need))


def _compare(
    scores: np.ndarray, pnl: np.ndarray, win: np.ndarray, current: np.ndarray, suggested: np.ndarray, threshold: float
) -> tuple[Comparison, dict[str, np.ndarray]]:
    """Score the trades with both sets; also each trade's contribution to the two PnL differences."""
    now = scores @ current >= threshold - FLOAT_NOISE  # as estimate_improvement counts a trade taken
    new_scores = scores @ suggested
    new = new_scores >= threshold - FLOAT_NOISE
    same_volume = top_k(new_scores, int(now.sum()))
    comparison = Comparison(len(pnl), _take(now, pnl, win), _take(new, pnl, win), _take(same_volume, pnl, win))
    base = now.astype("float64")
    contributions = {"equal_volume": pnl * (same_volume - base), "at_threshold": pnl * (new - base)}
    return comparison, contributions


# -- walk-forward ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fold:
    """One walk-forward step: fitted on earlier trades, scored on the next block."""

    number: int  # from 1
    train_trades: int
    train_from: datetime
    train_to: datetime
    test_from: datetime
    test_to: datetime
    weights: dict[str, float]  # fitted on the earlier trades
    result: Comparison

    def to_dict(self) -> dict[str, Any]:
        return {
            "fold": self.number,
            "fitted_on": {
                "trades": self.train_trades,
                "from": self.train_from.isoformat(),
                "to": self.train_to.isoformat(),
            },
            "scored_on": {
                "trades": self.result.trades,
                "from": self.test_from.isoformat(),
                "to": self.test_to.isoformat(),
            },
            "weights": dict(self.weights),
            **self.result.to_dict(),
        }


@dataclass(frozen=True)
class WalkForward:
    """Per-fold and pooled out-of-sample figures of the suggestion procedure."""

    current: dict[str, float]
    threshold: float
    window: Window
    train_blocks: int
    max_change: float | None
    folds: tuple[Fold, ...]
    contributions: dict[str, tuple[np.ndarray, ...]] = field(repr=False, compare=False)

    @property
    def pooled(self) -> Comparison:
        total = self.folds[0].result
        for fold in self.folds[1:]:
            total = total + fold.result
        return total

    def gain(self, measure: Measure = "equal_volume") -> float:
        """Pooled suggested-minus-current PnL over every fold's later trades."""
        return self.pooled.gain(_check_measure(measure))

    def better_folds(self, measure: Measure = "equal_volume") -> int:
        """In how many folds the suggested weights made more PnL than the current ones."""
        return sum(fold.result.gain(measure) > 0 for fold in self.folds)

    def describe_window(self) -> str:
        if self.window == "expanding":
            return "each fitted on all trades before it"
        if self.train_blocks == 1:
            return "each fitted on the block of trades just before it"
        return (
            f"each fitted on the {self.train_blocks} blocks of trades just before it (or all, when fewer came before)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": OUT_OF_SAMPLE_LABEL,
            "window": self.window,
            "train_blocks": self.train_blocks,
            "threshold": self.threshold,
            "max_change": self.max_change,
            "current_weights": dict(self.current),
            "folds": [fold.to_dict() for fold in self.folds],
            "pooled": self.pooled.to_dict(),
            "better_folds": {m: self.better_folds(m) for m in MEASURES},
            "fold_count": len(self.folds),
        }

    def table(self) -> str:
        """Per fold and pooled, current vs suggested: trades taken beside wins, PnL; fits 100 columns."""
        head = (
            f"{'Fold':<5}{'Fitted on':>10}{'Scored on':>10}  {'Current':>8}{'wins':>5}{'PnL':>8}"
            f"  {'Suggested':>9}{'wins':>5}{'PnL':>8}  {'Equal volume':>12}{'wins':>5}{'PnL':>8}"
        )

        def cells(take: Take, width: int) -> str:
            return f"{take.taken:>{width},}{take.wins:>5,}{_money(take.pnl):>8}"

        def row(name: str, fitted: str, result: Comparison) -> str:
            return (
                f"{name:<5}{fitted:>10}{result.trades:>10,}  {cells(result.current, 8)}  "
                f"{cells(result.suggested, 9)}  {cells(result.equal_volume, 12)}"
            )

        lines = [head, *(row(str(f.number), f"{f.train_trades:,}", f.result) for f in self.folds)]
        lines.append(row("All", "", self.pooled))
        return "\n".join(lines)


def _walk_forward(data: _Data) -> WalkForward:
    folds = []
    contributions: dict[str, list[np.ndarray]] = {m: [] for m in MEASURES}
    for fold in range(data.folds):
        lo, hi = data.train_rows(fold)
        weights = fit_weights(data.frame.iloc[lo:hi], data.current, step=data.step, before=data.test_from(fold))
        a, b = data.test_rows(fold)
        result, parts = _compare(
            data.scores[a:b],
            data.pnl[a:b],
            data.win[a:b],
            data.current_vector,
            np.array([weights[f] for f in FACTORS]),
            data.threshold,
        )
        for m in MEASURES:
            contributions[m].append(parts[m])
        t = data.times
        folds.append(
            Fold(
                fold + 1,
                hi - lo,
                t.iloc[lo].to_pydatetime(),
                t.iloc[hi - 1].to_pydatetime(),
                t.iloc[a].to_pydatetime(),
                t.iloc[b - 1].to_pydatetime(),
                weights,
                result,
            )
        )
    return WalkForward(
        data.current,
        data.threshold,
        data.window,
        data.window_blocks,
        data.max_change,
        tuple(folds),
        {m: tuple(v) for m, v in contributions.items()},
    )


def walk_forward(
    trades: TradesInput,
    current_weights: Mapping[str, float],
    *,
    folds: int = DEFAULT_FOLDS,
    window: Window = "expanding",
    train_blocks: int = 1,
    threshold: float = TRADING_THRESHOLD,
    max_change: float | None = None,
    min_trades_per_fold: int = DEFAULT_MIN_TRADES_PER_FOLD,
) -> WalkForward:
    """Fit on earlier trades only, score on later ones, fold by fold.

    The trades (sorted by ``closed_at``, no two at the same moment) are cut into ``folds + 1``
    blocks of equal size; fold *i* is fitted on the blocks before block *i* (all of them, or the
    last ``train_blocks`` with ``window="rolling"``) and scored on block *i*. Every block must
    hold at least ``min_trades_per_fold`` trades. ``max_change`` fits auto mode's bounded step
    instead of the analysis' full suggestion.
    """
    return _walk_forward(
        _prepare(
            trades,
            current_weights,
            folds=folds,
            window=window,
            train_blocks=train_blocks,
            threshold=threshold,
            max_change=max_change,
            min_trades_per_fold=min_trades_per_fold,
        )
    )


# -- bootstrap -------------------------------------------------------------------------------------


def bootstrap_draws(
    sizes: tuple[int, ...], nonzero: tuple[int, ...], resamples: int, seed: int
) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
    """The resampling draws, per chunk of resamples and per fold: ``(counts, draws)``.

    A resample draws a fold's ``size`` later trades with replacement. Only the ``nonzero`` trades
    whose selection differs between the two weight sets move the PnL difference (they are put
    first), so each resample draws how many of its picks land on them (``counts``, binomial) and
    which ones (``draws``, uniform among them, resample after resample) — the same distribution as
    drawing every pick, at a fraction of the cost. Shared by the vectorised sum and any reference
    implementation, so both see the same draws.
    """
    rng = np.random.default_rng([seed, _BOOTSTRAP_STREAM])
    chunk = max(1, min(resamples, BOOTSTRAP_CELLS // max(1, sum(nonzero))))
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        drawn = []
        for size, m in zip(sizes, nonzero):
            counts = rng.binomial(size, m / size, count) if m else np.zeros(count, dtype=np.int64)
            drawn.append((counts, rng.integers(0, m, int(counts.sum())) if m else np.zeros(0, dtype=np.int64)))
        yield drawn


def _nonzero(contributions: Mapping[str, tuple[np.ndarray, ...]]) -> list[np.ndarray]:
    """Per fold, the contributions of the trades where some measure's difference is not zero (measure × trade)."""
    parts = []
    for fold in range(len(contributions[MEASURES[0]])):
        stacked = np.stack([contributions[m][fold] for m in MEASURES])
        parts.append(stacked[:, np.any(stacked != 0, axis=0)])
    return parts


def _bootstrap_samples(
    contributions: Mapping[str, tuple[np.ndarray, ...]], resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """Pooled PnL difference of every resample, per measure; trades are resampled within each fold."""
    parts = _nonzero(contributions)
    sizes = tuple(len(c) for c in contributions[MEASURES[0]])
    totals = np.zeros((len(MEASURES), resamples))
    done = 0
    for drawn in bootstrap_draws(sizes, tuple(part.shape[1] for part in parts), resamples, seed):
        count = len(drawn[0][0])
        for part, (counts, draws) in zip(parts, drawn):
            if len(draws):
                resample = np.repeat(np.arange(count), counts)
                for j in range(len(MEASURES)):
                    totals[j, done : done + count] += np.bincount(resample, weights=part[j, draws], minlength=count)
        done += count
    return dict(zip(MEASURES, totals))


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval of the pooled out-of-sample PnL difference."""

    measure: Measure
    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int
    samples: np.ndarray = field(repr=False, compare=False)

    @property
    def above_zero(self) -> bool:
        """The whole interval lies above zero: the gain is not a fluke of which trades came along."""
        return self.low > 0

    def at(self, confidence: float) -> Interval:
        """The same resamples read at another confidence."""
        return _interval(
            self.measure, self.estimate, self.samples, _check_confidence(confidence), self.resamples, self.seed
        )

    def short(self) -> str:
        return f"{self.confidence:.0%} interval {_money(self.low)} to {_money(self.high)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "estimate": _finite(self.estimate),
            "low": _finite(self.low),
            "high": _finite(self.high),
            "confidence": self.confidence,
            "resamples": self.resamples,
            "seed": self.seed,
            "above_zero": self.above_zero,
        }


def _interval(
    measure: Measure, estimate: float, samples: np.ndarray, confidence: float, resamples: int, seed: int
) -> Interval:
    low, high = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(measure, float(estimate), float(low), float(high), confidence, resamples, seed, samples)


def bootstrap_interval(
    walk: WalkForward,
    *,
    measure: Measure = "equal_volume",
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """A seeded percentile interval of the pooled out-of-sample PnL difference (suggested − current).

    Each resample draws every fold's later trades with replacement (as many as the fold has) and
    sums their differences, the fitted weights held fixed. ``confidence=0.9`` reads the 5th and
    95th percentiles, so an interval above zero is a one-sided 95 % statement.
    """
    measure = _check_measure(measure)
    resamples = _whole(resamples, "resamples", 1)
    confidence = _check_confidence(confidence)
    seed = _whole(seed, "seed", 0)
    samples = _bootstrap_samples(walk.contributions, resamples, seed)[measure]  # both measures: the same draws
    return _interval(measure, walk.gain(measure), samples, confidence, resamples, seed)


# -- no-signal baseline: shuffled outcomes, vectorised ---------------------------------------------


def permutation_chunks(n: int, permutations: int, seed: int) -> Iterator[np.ndarray]:
    """Row orders for the shuffles, ``PERMUTATION_CHUNK`` at a time (each row a permutation of 0…n−1)."""
    rng = np.random.default_rng([seed, _PERMUTATION_STREAM])
    for start in range(0, permutations, PERMUTATION_CHUNK):
        count = min(PERMUTATION_CHUNK, permutations - start)
        yield rng.permuted(np.tile(np.arange(n), (count, 1)), axis=1)


def _suggest_many(
    sums: dict[str, np.ndarray], current: np.ndarray, step: LiveStep, before: pd.Timestamp | None
) -> np.ndarray:
    """Suggested weights for every permutation from window sums of centred scores x and PnL y.

    ``sums``: ``n`` (scalar), ``x``/``xx`` (4,), ``y``/``yy`` (p,), ``xy`` (p × 4). Pearson's r
    from the sums; a window with constant PnL has no correlation (0), as in ``factor_stats``.
    """
    n = sums["n"]
    cov = sums["xy"] - np.outer(sums["y"], sums["x"]) / n
    var_x = sums["xx"] - sums["x"] ** 2 / n
    var_y = sums["yy"] - sums["y"] ** 2 / n
    flat = var_y <= 1e-12 * np.maximum(sums["yy"], 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(cov / np.sqrt(np.outer(var_y, var_x)), -1.0, 1.0)
    r[flat] = 0.0
    r[:, var_x <= 1e-12 * np.maximum(sums["xx"], 1e-300)] = 0.0  # a factor constant in the window: no information
    share = np.maximum(r, MIN_CORRELATION)
    weights = _round_many(BLEND * share / share.sum(axis=1, keepdims=True) + (1 - BLEND) * current)
    return step.apply_many(weights, current, before)


@dataclass(frozen=True)
class _Shuffled:
    gains: dict[str, np.ndarray]  # per measure, the pooled out-of-sample gain of every permutation
    in_sample_pct: np.ndarray  # the in-sample estimate (% winning trades), NaN where undefined
    in_sample_clears: np.ndarray  # whether that estimate clears the bar (as Improvement.clears)


def shuffled_statistics(data: _Data, orders: Iterator[np.ndarray], bar_pct: float = DEFAULT_BAR_PCT) -> _Shuffled:
    """Refit and re-evaluate with the outcomes (PnL and win together) reordered by each row of ``orders``.

    Per chunk of permutations: block sums of centred scores × shuffled PnL as one matrix product
    per block; the suggestion of every fold and of the whole table from them; each fold's later
    trades scored for every permutation at once (threshold and equal volume); and the in-sample
    estimate, as the analysis computes it, on the whole table.
    """
    x = data.scores - data.scores.mean(axis=0)  # centring changes no correlation, and keeps the sums exact
    mean_pnl = data.pnl.mean()  # the same in every shuffle
    edges = data.edges
    blocks = len(edges) - 1
    block_n = np.diff(edges).astype("float64")
    block_x = np.stack([x[edges[b] : edges[b + 1]].sum(axis=0) for b in range(blocks)])
    block_xx = np.stack([(x[edges[b] : edges[b + 1]] ** 2).sum(axis=0) for b in range(blocks)])
    # The centred scores laid out block-diagonally (trade × block·factor): one matrix product with the
    # shuffled PnL gives every block's score × PnL sums for every permutation of a chunk.
    x_blocks = np.zeros((len(x), blocks * len(FACTORS)))
    for b in range(blocks):
        x_blocks[edges[b] : edges[b + 1], b * len(FACTORS) : (b + 1) * len(FACTORS)] = x[edges[b] : edges[b + 1]]
    threshold = data.threshold - FLOAT_NOISE
    current_all = data.scores @ data.current_vector >= threshold
    scores_t = np.ascontiguousarray(data.scores.T)  # factor × trade, so every product below is permutation × trade
    tests = []
    for fold in range(data.folds):
        a, b = data.test_rows(fold)
        now = current_all[a:b]
        tests.append((a, b, now, int(now.sum())))

    gains: dict[str, list[np.ndarray]] = {m: [] for m in MEASURES}
    pcts, clears = [], []
    for order in orders:
        pnl = data.pnl[order]  # permutation × trade: the shuffled outcomes
        w = data.win[order]
        y = pnl - mean_pnl
        block_y = np.add.reduceat(y, edges[:-1], axis=1)  # permutation × block
        block_yy = np.add.reduceat(y * y, edges[:-1], axis=1)
        block_xy = (
            (y @ x_blocks).reshape(len(order), blocks, len(FACTORS)).transpose(1, 0, 2)
        )  # block × permutation × factor

        def window(first: int, last: int) -> dict[str, Any]:
            return {
                "n": block_n[first:last].sum(),
                "x": block_x[first:last].sum(axis=0),
                "xx": block_xx[first:last].sum(axis=0),
                "y": block_y[:, first:last].sum(axis=1),
                "yy": block_yy[:, first:last].sum(axis=1),
                "xy": block_xy[first:last].sum(axis=0),
            }

        eq = np.zeros(len(order))
        at = np.zeros(len(order))
        for fold, (a, b, now, k) in enumerate(tests):
            weights = _suggest_many(
                window(*data.train_blocks[fold]), data.current_vector, data.step, data.test_from(fold)
            )
            scores = weights @ scores_t[:, a:b]  # permutation × trade
            test_pnl = pnl[:, a:b]
            base = test_pnl[:, now].sum(axis=1)
            at += np.where(scores >= threshold, test_pnl, 0.0).sum(axis=1) - base
            eq += np.where(top_k(scores, k), test_pnl, 0.0).sum(axis=1) - base
        gains["equal_volume"].append(eq)
        gains["at_threshold"].append(at)

        weights = _suggest_many(window(0, blocks), data.current_vector, data.step, None)
        taken = weights @ scores_t >= threshold  # permutation × trade
        new_wins = (w & taken).sum(axis=1)
        now_wins = w[:, current_all].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = (new_wins - now_wins) / now_wins * 100.0
        pcts.append(np.where(now_wins > 0, pct, np.nan))
        clears.append(np.where(now_wins > 0, pct >= bar_pct, new_wins > 0))
    return _Shuffled({m: np.concatenate(v) for m, v in gains.items()}, np.concatenate(pcts), np.concatenate(clears))


def _in_sample(data: _Data) -> tuple[dict[str, float], Improvement]:
    """The analysis' own estimate: fitted on every trade and scored on the same trades."""
    weights = fit_weights(data.frame, data.current, step=data.step)
    return weights, estimate_improvement(data.frame, data.current, weights, data.threshold)


@dataclass(frozen=True)
class Baseline:
    """The same estimates with the outcomes shuffled across trades: what they read on no signal."""

    permutations: int
    seed: int
    bar_pct: float
    real_in_sample_pct: float | None
    real_gains: dict[str, float]
    shuffled_in_sample_pct: np.ndarray = field(repr=False, compare=False)
    shuffled_in_sample_clears: np.ndarray = field(repr=False, compare=False)
    shuffled_gains: dict[str, np.ndarray] = field(repr=False, compare=False)

    @property
    def in_sample_mean_pct(self) -> float | None:
        """The in-sample estimate (% more winning trades) averaged over the shuffles."""
        defined = self.shuffled_in_sample_pct[np.isfinite(self.shuffled_in_sample_pct)]
        return float(defined.mean()) if len(defined) else None

    @property
    def in_sample_clear_share(self) -> float:
        """Share of shuffles whose in-sample estimate clears the bar (auto mode's old gate)."""
        return float(self.shuffled_in_sample_clears.mean())

    def at_least_as_good(self, measure: Measure = "equal_volume") -> int:
        """Shuffles whose out-of-sample gain reached the real one."""
        return int((self.shuffled_gains[measure] >= self.real_gains[measure]).sum())

    def p_value(self, measure: Measure = "equal_volume") -> float:
        """One-sided permutation p-value of the real out-of-sample gain: (1 + at least as good) / (1 + shuffles)."""
        return (1 + self.at_least_as_good(_check_measure(measure))) / (1 + self.permutations)

    def shuffled_mean_gain(self, measure: Measure = "equal_volume") -> float:
        return float(self.shuffled_gains[measure].mean())

    def to_dict(self) -> dict[str, Any]:
        return {
            "permutations": self.permutations,
            "seed": self.seed,
            "bar_pct": self.bar_pct,
            "in_sample": {
                "real_pct": _finite(self.real_in_sample_pct),
                "shuffled_mean_pct": _finite(self.in_sample_mean_pct),
                "shuffled_clear_share": self.in_sample_clear_share,
            },
            "out_of_sample": {
                m: {
                    "real_gain": _finite(self.real_gains[m]),
                    "shuffled_mean_gain": _finite(self.shuffled_mean_gain(m)),
                    "at_least_as_good": self.at_least_as_good(m),
                    "p_value": self.p_value(m),
                }
                for m in MEASURES
            },
        }

    def text(self) -> str:
        mean = self.in_sample_mean_pct
        return (
            f"On shuffled outcomes (no signal, {_plural(self.permutations, 'shuffle')}) this estimate reads "
            f"{_pct(mean)} on average and clears the {self.bar_pct:g}% bar in {self.in_sample_clear_share:.0%} of "
            f"them; yours reads {_pct(self.real_in_sample_pct)}."
        )


def _baseline(
    data: _Data, walk: WalkForward, improvement: Improvement, permutations: int, seed: int, bar_pct: float
) -> Baseline:
    shuffled = shuffled_statistics(data, permutation_chunks(len(data.pnl), permutations, seed), bar_pct)
    return Baseline(
        permutations,
        seed,
        bar_pct,
        improvement.pct,
        {m: walk.gain(m) for m in MEASURES},
        shuffled.in_sample_pct,
        shuffled.in_sample_clears,
        shuffled.gains,
    )


def _check_bar(bar_pct: Any) -> float:
    if isinstance(bar_pct, bool) or not isinstance(bar_pct, (int, float)) or not math.isfinite(bar_pct) or bar_pct < 0:
        raise WeightsError(f"bar_pct must be a number ≥ 0, not {bar_pct!r:.40}.")
    return float(bar_pct)


def no_signal_baseline(
    trades: TradesInput,
    current_weights: Mapping[str, float],
    *,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    folds: int = DEFAULT_FOLDS,
    window: Window = "expanding",
    train_blocks: int = 1,
    threshold: float = TRADING_THRESHOLD,
    max_change: float | None = None,
    min_trades_per_fold: int = DEFAULT_MIN_TRADES_PER_FOLD,
    bar_pct: float = DEFAULT_BAR_PCT,
) -> Baseline:
    """Shuffle the outcomes ``permutations`` times (seeded); refit and re-estimate each time.

    Gives the in-sample estimate's average on shuffles (and how often it clears ``bar_pct``),
    beside the real one, and the permutation p-value of the real walk-forward PnL gain.
    """
    permutations = _whole(permutations, "permutations", 1)
    seed = _whole(seed, "seed", 0)
    bar_pct = _check_bar(bar_pct)
    data = _prepare(
        trades,
        current_weights,
        folds=folds,
        window=window,
        train_blocks=train_blocks,
        threshold=threshold,
        max_change=max_change,
        min_trades_per_fold=min_trades_per_fold,
    )
    return _baseline(data, _walk_forward(data), _in_sample(data)[1], permutations, seed, bar_pct)


# -- options and the verdict an auto-mode rule wraps -----------------------------------------------


@dataclass(frozen=True)
class Evidence:
    """In-sample estimate, walk-forward, bootstrap interval and no-signal baseline of one suggestion."""

    n_trades: int
    threshold: float
    current: dict[str, float]
    suggested: dict[str, float]  # fitted on every trade, then the step: exactly what would go live
    in_sample: Improvement
    walk: WalkForward
    intervals: dict[str, Interval]
    baseline: Baseline
    folds: int
    window: Window
    train_blocks: int
    min_trades_per_fold: int
    resamples: int
    permutations: int
    seed: int
    step: LiveStep = field(default_factory=LiveStep, repr=False, compare=False)

    def interval(self, measure: Measure = "equal_volume", confidence: float | None = None) -> Interval:
        interval = self.intervals[_check_measure(measure)]
        return interval if confidence is None or confidence == interval.confidence else interval.at(confidence)

    def _check_options(self, options: OutOfSampleOptions) -> None:
        asked = {
            "folds": options.folds,
            "window": options.window,
            "resamples": options.resamples,
            "permutations": options.permutations,
            "seed": options.seed,
            "min_trades_per_fold": options.min_trades_per_fold,
        }
        if options.window == "rolling":
            asked["train_blocks"] = options.train_blocks
        held = {name: getattr(self, name) for name in asked}
        differ = [
            f"{name} {asked[name]} (this evidence has {held[name]})" for name in asked if asked[name] != held[name]
        ]
        if differ:
            raise WeightsError(
                "This evidence was not computed with these options: "
                + ", ".join(differ)
                + "; evaluate again with the options (evaluate_with_options)."
            )

    def passes(self, options: OutOfSampleOptions | None = None) -> bool:
        """Whether the out-of-sample evidence is strong enough under ``options``.

        Without options: the default decision (both tests, equal volume, p-value at most 0.05) at
        the confidence the evidence was computed with. Options whose evaluation settings (folds,
        window, resamples, permutations, seed, min_trades_per_fold) differ from the evidence's are
        refused: evaluate again with them (:func:`evaluate_with_options`).
        """
        return out_of_sample_verdict(self, options)[0]

    def verdict(self, options: OutOfSampleOptions | None = None) -> tuple[bool, str, dict[str, Any]]:
        return out_of_sample_verdict(self, options)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (finite numbers, None where a figure is undefined), for a route or a run record."""
        return {
            "n_trades": self.n_trades,
            "threshold": self.threshold,
            "current_weights": dict(self.current),
            "suggested_weights": dict(self.suggested),
            "settings": {
                "folds": self.folds,
                "window": self.window,
                "train_blocks": self.train_blocks,
                "min_trades_per_fold": self.min_trades_per_fold,
                "resamples": self.resamples,
                "permutations": self.permutations,
                "seed": self.seed,
                "max_change": self.walk.max_change,
                "smoothed_with": len(self.step.earlier),
                "step": self.step.describe() or None,
            },
            "in_sample": {"label": IN_SAMPLE_LABEL, "trades": self.n_trades, **self.in_sample.to_dict()},
            "out_of_sample": {
                **self.walk.to_dict(),
                "trades": self.walk.pooled.trades,
                "intervals": {m: i.to_dict() for m, i in self.intervals.items()},
            },
            "baseline": self.baseline.to_dict(),
            "text": self.text(),
        }

    def text(self, details: bool = False) -> str:
        """Plain English with the numbers, each figure with a sentence saying what it means; lines fit
        100 columns. ``details`` adds the per-fold table."""
        walk, pooled, base = self.walk, self.walk.pooled, self.baseline
        imp, eq = self.in_sample, self.intervals["equal_volume"]
        t = f"{self.threshold:g}"
        step = self.step.describe()
        shown = weights_shown(self.suggested)
        weights = ", ".join(f"{f} {shown[f]}" for f in FACTORS)
        p_value, reached = base.p_value("equal_volume"), base.at_least_as_good("equal_volume")
        paragraphs = [
            f"Evaluated: the weights that would go live{f' ({step})' if step else ''}: {weights}.",
            f"Measured on the trades it was fitted to (all {_plural(self.n_trades, 'trade')}), at threshold {t}: "
            f"{_plural(imp.suggested_taken, 'trade')} taken ({imp.suggested_wins:,} winning) instead of "
            f"{imp.current_taken:,} ({imp.current_wins:,} winning): {_pct(imp.pct)} winning trades. {base.text()} "
            f"{NOT_EVIDENCE}",
            f"Measured on later trades it never saw ({_plural(pooled.trades, 'trade')} in "
            f"{_plural(len(walk.folds), 'fold')}, {walk.describe_window()}): at threshold {t} the suggested weights "
            f"take {_plural(pooled.suggested.taken, 'trade')} ({pooled.suggested.wins:,} winning) instead of "
            f"{pooled.current.taken:,} ({pooled.current.wins:,} winning), PnL {_money(pooled.gain('at_threshold'))}.",
            f"Equal volume: taking exactly as many trades as the current weights ({pooled.current.taken:,}), their "
            f"highest-scored, they win {pooled.equal_volume.wins:,} instead of {pooled.current.wins:,}: PnL "
            f"{_money(pooled.gain('equal_volume'))}. {EQUAL_VOLUME_WORDS}",
            f"Interval: {eq.short()} ({_plural(self.resamples, 'resample')}); {INTERVAL_WORDS}",
            f"Folds: better in {walk.better_folds('equal_volume')} of {len(walk.folds)}; {FOLD_WORDS}",
            f"p-value {p_value:.3f}: noise alone looked this good in {reached:,} of {base.permutations:,} reshuffles "
            f"of the outcomes (they average {_money(base.shuffled_mean_gain('equal_volume'))}).",
        ]
        lines = []
        for i, paragraph in enumerate(paragraphs):
            lines += textwrap.wrap(paragraph, WIDTH, subsequent_indent="  ", break_on_hyphens=False)
            if i == 2 and details:
                lines += ["", walk.table(), ""]
        return "\n".join(lines)


def _evaluate(data: _Data, resamples: int, permutations: int, seed: int, confidence: float, bar_pct: float) -> Evidence:
    walk = _walk_forward(data)
    suggested, improvement = _in_sample(data)
    samples = _bootstrap_samples(walk.contributions, resamples, seed)
    intervals: dict[str, Interval] = {
        m: _interval(m, walk.gain(m), samples[m], confidence, resamples, seed) for m in MEASURES
    }
    baseline = _baseline(data, walk, improvement, permutations, seed, bar_pct)
    return Evidence(
        len(data.pnl),
        data.threshold,
        data.current,
        suggested,
        improvement,
        walk,
        intervals,
        baseline,
        data.folds,
        data.window,
        data.window_blocks,
        data.min_trades_per_fold,
        resamples,
        permutations,
        seed,
        data.step,
    )


def evaluate(
    trades: TradesInput,
    current_weights: Mapping[str, float],
    *,
    folds: int = DEFAULT_FOLDS,
    resamples: int = DEFAULT_RESAMPLES,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    window: Window = "expanding",
    train_blocks: int = 1,
    threshold: float = TRADING_THRESHOLD,
    max_change: float | None = None,
    min_trades_per_fold: int = DEFAULT_MIN_TRADES_PER_FOLD,
    confidence: float = DEFAULT_CONFIDENCE,
    bar_pct: float = DEFAULT_BAR_PCT,
    step: LiveStep | None = None,
) -> Evidence:
    """The full evaluation: in-sample estimate, walk-forward, bootstrap intervals, no-signal baseline.

    Raises :class:`~.domain.NotEnoughTradesError` when a fold would hold
    fewer than ``min_trades_per_fold`` trades and :class:`~.domain.WeightsError`
    for any other unusable input (missing or non-finite PnL, PnL that never varies in a fit, close
    times missing or out of order, a trade repeated), each with one plain-English sentence. ``step``
    (:func:`~.live.live_step`) makes every fit the values that would go live: smoothed and bounded.
    """
    resamples = _whole(resamples, "resamples", 1)
    permutations = _whole(permutations, "permutations", 1)
    seed = _whole(seed, "seed", 0)
    confidence = _check_confidence(confidence)
    bar_pct = _check_bar(bar_pct)
    data = _prepare(
        trades,
        current_weights,
        folds=folds,
        window=window,
        train_blocks=train_blocks,
        threshold=threshold,
        max_change=max_change,
        min_trades_per_fold=min_trades_per_fold,
        step=step,
    )
    return _evaluate(data, resamples, permutations, seed, confidence, bar_pct)


def evaluate_with_options(
    trades: TradesInput,
    current_weights: Mapping[str, float],
    options: OutOfSampleOptions | None = None,
    *,
    threshold: float = TRADING_THRESHOLD,
    max_change: float | None = None,
    bar_pct: float = DEFAULT_BAR_PCT,
    step: LiveStep | None = None,
) -> Evidence:
    """:func:`evaluate` with a rule's options (folds, window, resamples, permutations, seed, confidence)."""
    o = options or OutOfSampleOptions()
    return evaluate(
        trades,
        current_weights,
        folds=o.folds,
        resamples=o.resamples,
        permutations=o.permutations,
        seed=o.seed,
        window=o.window,
        train_blocks=o.train_blocks,
        threshold=threshold,
        max_change=max_change,
        min_trades_per_fold=o.min_trades_per_fold,
        confidence=o.confidence,
        bar_pct=bar_pct,
        step=step,
    )


def out_of_sample_verdict(
    evidence: Evidence, options: OutOfSampleOptions | None = None
) -> tuple[bool, str, dict[str, Any]]:
    """Does the suggestion's out-of-sample PnL gain stand up? ``(passed, text, measured)`` for a rule.

    ``text`` is a lower-case clause in the style of the other rules' verdicts; ``measured`` holds
    its numbers (JSON-safe).
    """
    if options is None:  # the default decision on the evidence as it was computed
        options = OutOfSampleOptions.model_construct(confidence=evidence.intervals["equal_volume"].confidence)
    else:
        evidence._check_options(options)
    measure = options.measure
    interval = evidence.interval(measure, options.confidence)
    p_value = evidence.baseline.p_value(measure)
    walk = evidence.walk
    interval_ok, p_ok = interval.above_zero, p_value <= options.max_p_value
    passed = {"interval": interval_ok, "p_value": p_ok, "both": interval_ok and p_ok}[options.require]
    gain = interval.estimate
    trades = walk.pooled.trades
    better = walk.better_folds(measure)
    reached = evidence.baseline.at_least_as_good(measure)
    noise = f"noise alone looked this good in {reached:,} of {evidence.baseline.permutations:,} reshuffles"
    facts = f"{interval.short()}; p = {p_value:.3f}: {noise}; better in {better} of {len(walk.folds)} folds"
    where = f"on {_plural(trades, 'later trade')} it never saw"
    if passed:
        text = f"{where} the suggested weights made {_money(gain)} more PnL {MEASURE_WORDS[measure]} ({facts})"
    else:
        failed = []
        if options.require in ("interval", "both") and not interval_ok:
            failed.append(
                f"its {interval.confidence:.0%} interval ({_money(interval.low)} to {_money(interval.high)}) "
                f"does not lie above zero"
            )
        if options.require in ("p_value", "both") and not p_ok:
            failed.append(f"the p-value {p_value:.3f} is above {options.max_p_value:.3g}")
        text = (
            f"not shown to help {where}: {_money(gain)} PnL {MEASURE_WORDS[measure]}, but "
            f"{' and '.join(failed)} ({noise}; better in {better} of {len(walk.folds)} folds)"
        )
    measured = {
        "measure": measure,
        "require": options.require,
        "gain": _finite(gain),
        "trades": trades,
        "interval_low": _finite(interval.low),
        "interval_high": _finite(interval.high),
        "confidence": interval.confidence,
        "resamples": evidence.resamples,
        "p_value": p_value,
        "max_p_value": options.max_p_value,
        "permutations": evidence.permutations,
        "better_folds": better,
        "folds": len(walk.folds),
        "in_sample_pct": _finite(evidence.in_sample.pct),
        "shuffled_in_sample_mean_pct": _finite(evidence.baseline.in_sample_mean_pct),
        "passed": passed,
    }
    return passed, text, measured


@dataclass(frozen=True)
class Unmeasured:
    """Evidence that could not be measured (a repeated trade, too few trades per fold…): it never passes,
    and says why, so the suggestion is left for a person."""

    problem: str

    def verdict(self, options: OutOfSampleOptions | None = None) -> tuple[bool, str, dict[str, Any]]:
        return False, f"its out-of-sample check could not run ({self.problem.rstrip('.')})", {"passed": False}

    def passes(self, options: OutOfSampleOptions | None = None) -> bool:
        return False


def measure_or_explain(
    trades: TradesInput, current: Mapping[str, float], options: OutOfSampleOptions | None, **kw: Any
):
    """:func:`evaluate_with_options`, or an :class:`Unmeasured` naming the problem with the trades."""
    try:
        return evaluate_with_options(trades, current, options, **kw)
    except WeightsError as error:
        return Unmeasured(str(error))
