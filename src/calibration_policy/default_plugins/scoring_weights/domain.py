"""The ``scoring_weights`` domain: the four weights of the trade-scoring model.

The model scores a trade as ``Σ weight × factor score`` over wallet, cluster, token and
context. Every weight lies in [0, 1] and the four sum to 1, so a score stays in [0, 1] and the
trading threshold (0.6) keeps its meaning. A set that breaks either rule must never go live,
so :meth:`ScoringWeightsDomain.validate` checks the *whole* set and names the offending value,
and the live-file target refuses to write anything but a whole valid set.

Runs of this domain are recorded from a weights analysis (:mod:`.analysis`),
whose result dict is what :meth:`ScoringWeightsDomain.extract` reads.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from calibration_policy.domain import Domain, Extracted, tracking_error_parts
from calibration_policy.errors import CalibrationPolicyError, InvalidRunError
from calibration_policy.paths import data_root
from calibration_policy.target import JsonFileTarget, Snapshot, Target

FACTORS: tuple[str, ...] = ("wallet", "cluster", "token", "context")
SUM_TOLERANCE = 1e-9
DOMAIN_NAME = "scoring_weights"
DECIMALS = 4


class WeightsError(CalibrationPolicyError):
    """The trades table, the live weights or a weights setting cannot be used as given."""


class NotEnoughTradesError(WeightsError):
    """Fewer trades than the minimum: no suggestion is made."""


def show(value: float) -> str:
    """A number as a person would type it: 1.3, 1.12, 0.9999999 — never a float artefact."""
    return f"{value:.12g}"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


class ScoringWeightsDomain(Domain):
    name = DOMAIN_NAME
    title = "Scoring weights"
    parameter_label = "weight"
    parameter_label_plural = "weights"
    sample_unit = "trades"
    sources = ("trades",)
    sums_to_one = True
    default_bounds = (0.0, 1.0)
    glossary = (
        (
            "Scoring weights",
            "How much each factor (wallet, cluster, token, context) counts in a trade's score; "
            "they add up to 1. A trade is taken when its score reaches the threshold.",
        ),
        (
            "Trades",
            "The closed trades the weights were worked out from: which factor scores went with a win "
            "and which with a loss.",
        ),
        (
            "Folds",
            "The trades cut, in the order they closed, into consecutive blocks. Each fold fits the weights "
            "on earlier blocks only and scores them on the next block, which they never saw.",
        ),
        (
            "Equal volume",
            "Both weight sets take the same number of trades (the new set its highest-scored ones), so a "
            "gain cannot come from simply trading more.",
        ),
        (
            "Interval",
            "The range the gain moves in when the later trades are redrawn at random (a bootstrap). An "
            "interval above zero means the gain is not one lucky draw of trades.",
        ),
        (
            "p-value",
            "How often noise alone looked as good: the outcomes are shuffled across trades many times and "
            "the whole fit repeated. 0.01 means 1 shuffle in 100 did as well.",
        ),
        (
            "Budget",
            "Auto mode looks again every time enough new trades arrive; each look spends a share of a 5 % "
            "chance of ever applying noise. Once it is spent, auto mode only suggests.",
        ),
    )

    def extract(self, result: Mapping[str, Any]) -> Extracted:
        """Read a weights analysis (``WeightsAnalysis.to_dict()``): its suggestion and trade count."""
        if not isinstance(result, Mapping):
            raise InvalidRunError(f"A weights analysis must be a dict, not {type(result).__name__}.")
        suggested = result.get("suggested_weights")
        if suggested is None:
            raise InvalidRunError(str(result.get("message") or "The weights analysis holds no suggested weights."))
        n = result.get("n_trades")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidRunError(f"The weights analysis's n_trades must be a whole number ≥ 0, not {n!r:.40}.")
        analysis = {key: value for key, value in result.items() if key != "window_trades"}
        window = result.get("window_trades")
        details: dict[str, Any] = {"analysis": analysis, **({"window_trades": window} if window else {})}
        return Extracted(recommended=self.validate(suggested), sample_size=n, vega_sum=None, details=details)

    def score(self, values: Mapping[str, float], run: Any) -> float | None:
        """How much PnL the weights leave behind on the trades closed in the run's window, lower is better.

        The run carries those trades (``window_trades``: each one's four factor scores and its PnL, and the
        ``volume``: how many of them the live weights took). Both weight sets take that many trades, their
        highest-scored ones, so they are compared at equal volume on the same trades; the score is the PnL the
        best ``volume`` trades would have made minus the PnL of the ones these weights pick, per trade taken,
        times √(trades in the window) so a window with more trades weighs more. 0: the weights pick the best
        trades. A run without trades (recorded before runs carried them) falls back to the default tracking
        error; broken trades raise (the watch then says it cannot score the run, never a roll back)."""
        window = (getattr(run, "model_extra", None) or {}).get("window_trades")
        if window is None:
            return super().score(values, run)
        scores, pnl, volume = _window(window)
        weights = np.array([float(values[f]) for f in FACTORS])
        order = np.argsort(-(scores @ weights), kind="stable")  # ties: in the order the trades closed, both sides
        captured = float(pnl[order[:volume]].sum())
        best = float(np.sort(pnl)[::-1][:volume].sum())
        return (best - captured) / volume * math.sqrt(len(pnl))

    def score_parts(self, values: Mapping[str, float], run: Any) -> dict[str, float] | None:
        """The PnL left behind is one figure per run (one part); a run without trades: the default per scope."""
        if (getattr(run, "model_extra", None) or {}).get("window_trades") is None:
            return tracking_error_parts(values, run)
        whole = self.score(values, run)
        return None if whole is None else {"all": whole}

    def validate(self, values: Mapping[str, Any]) -> dict[str, float]:
        if not isinstance(values, Mapping):
            raise InvalidRunError(f"Weights must be a table of factor to weight, not {type(values).__name__}.")
        unknown = [str(key) for key in values if key not in FACTORS]
        if unknown:
            raise InvalidRunError(f"{unknown[0]!r:.40} is not a scoring factor; the factors are {', '.join(FACTORS)}.")
        missing = [factor for factor in FACTORS if factor not in values]
        if missing:
            raise InvalidRunError(
                f"The {_and(missing)} weight{'s are' if len(missing) > 1 else ' is'} missing; "
                f"give all four weights ({', '.join(FACTORS)}) together."
            )
        checked: dict[str, float] = {}
        for factor in FACTORS:
            value = values[factor]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidRunError(f"{factor} weight must be a number, not {value!r:.40}.")
            if not math.isfinite(value):
                raise InvalidRunError(f"{factor} weight is {value}, not a finite number.")
            if not 0.0 <= value <= 1.0:
                raise InvalidRunError(f"{factor} weight {show(value)} is outside 0–1.")
            checked[factor] = float(value)
        total = math.fsum(checked.values())
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise InvalidRunError(f"weights sum to {show(total)}, not 1.")
        return checked

    def normalize(self, values: Mapping[str, float]) -> dict[str, float]:
        """A per-weight median or average need not sum to 1: rescale and round without breaking the sum."""
        return round_weights(values)

    def scope_label(self, scope: str, details: Mapping[str, Any] | None = None) -> str:
        return scope.capitalize()


def _window(window: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """A run's ``window_trades`` as (scores n × 4, PnL n, volume), checked; a broken one raises ``ValueError``."""
    if not isinstance(window, Mapping):
        raise ValueError(f"window_trades is {window!r:.40}, not a table")
    if list(window.get("factors") or FACTORS) != list(FACTORS):
        raise ValueError(f"window_trades has the factors {window.get('factors')!r:.60}, not {list(FACTORS)}")
    try:
        scores = np.asarray(window["scores"], dtype="float64")
        pnl = np.asarray(window["pnl"], dtype="float64")
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"window_trades' scores or pnl are not numbers: {error}") from None
    volume = window.get("volume")
    if scores.ndim != 2 or scores.shape[1] != len(FACTORS) or pnl.shape != (len(scores),) or not len(pnl):
        raise ValueError(f"window_trades holds {scores.shape} scores for {pnl.shape} PnLs")
    if not (np.isfinite(scores).all() and np.isfinite(pnl).all()):
        raise ValueError("window_trades holds a score or a PnL that is not a finite number")
    if isinstance(volume, bool) or not isinstance(volume, int) or not 1 <= volume <= len(pnl):
        raise ValueError(f"window_trades' volume is {volume!r:.40}, not a whole number from 1 to {len(pnl)}")
    return scores, pnl, volume


def live_weights(target: Target) -> dict[str, float]:
    """The live weights, checked: a hand-edited file that no longer sums to 1 is reported, not used."""
    values = target.values(target.load())  # a missing or unreadable file is the target's own error
    try:
        return ScoringWeightsDomain().validate(values)
    except ValueError as error:
        raise WeightsError(f"The live weights ({target.name}) are not a valid set: {error}") from None


def _read_weights(snapshot: Snapshot) -> dict[str, float]:
    """Only the four weights: other keys in the file (a comment, a version) are the host's business."""
    return {factor: float(snapshot[factor]) for factor in FACTORS}


def _write_weights(snapshot: Snapshot, values: Mapping[str, float]) -> Snapshot:
    # JsonFileTarget merges by default; a partial set could leave weights that no longer sum to 1.
    return {**snapshot, **ScoringWeightsDomain().validate(values)}


def default_weights_file() -> Path:
    """``scoring_weights.json`` in the data root (``$CALIBRATION_DATA``, else ``data``)."""
    return data_root() / "scoring_weights.json"


def weights_target(
    underlying: str | None = None, path: str | os.PathLike[str] | None = None, name: str | None = None
) -> JsonFileTarget:
    """The live weights file, flat ``{wallet, cluster, token, context}``; archived under its stem.

    ``underlying`` is the model name; one file holds one model's weights, so it does not pick
    the file (it is accepted so the target factory has the same shape for every domain).
    """
    return JsonFileTarget(path or default_weights_file(), name=name, values=_read_weights, with_values=_write_weights)


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
