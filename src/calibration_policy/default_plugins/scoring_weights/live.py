"""The values that would go live: a fitted suggestion, smoothed over the earlier ones, then bounded.

Auto mode, the ``out_of_sample`` rule, the panel and the CLI must all judge exactly what would be
written to the live file, not the analysis' raw suggestion. :class:`LiveStep` is that procedure —
smooth with the earlier suggestions in the policy's window (the domain then normalises the set),
then move no weight more than ``max_change`` — and :func:`go_live` applies it to an analysis. The
evidence (:mod:`.evidence`) runs the same step inside every walk-forward fold and every shuffle,
so the figures quoted in a reason are the figures of the applied set.

A fold may only smooth with earlier suggestions whose trades all closed before the trades it is
scored on (``before``): a suggestion fitted on those trades would have seen them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from calibration_policy import pipeline
from calibration_policy.engine.clock import times_ns
from calibration_policy.history import build_run
from calibration_policy.models import CalibrationRun
from calibration_policy.plugins import get_smoother
from calibration_policy.policy import CalibrationUpdatePolicy
from calibration_policy.smoothing import window_runs
from calibration_policy.stores import open_store

from . import lazy
from .analysis import SOURCE, WeightsAnalysis, _plural, bounded_weights
from .domain import DECIMALS, DOMAIN_NAME, FACTORS

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy.pandas


@dataclass(frozen=True)
class Earlier:
    """One earlier suggestion in the smoothing window, and when its last trade closed (None: unknown)."""

    run: CalibrationRun
    last_trade_at: pd.Timestamp | None


@dataclass(frozen=True)
class LiveStep:
    """How a suggestion fitted on trades becomes the values written to the live file."""

    max_change: float | None = None
    policy: CalibrationUpdatePolicy | None = None  # its smoothing; None: no smoothing
    run: CalibrationRun | None = None  # the run being decided (its time places the window)
    earlier: tuple[Earlier, ...] = ()
    window_days: float = 0.0

    def known(self, before: pd.Timestamp | None) -> list[CalibrationRun]:
        """The earlier suggestions usable for trades from ``before`` on (all of them when None)."""
        if before is None:
            return [e.run for e in self.earlier]
        return [e.run for e in self.earlier if e.last_trade_at is not None and e.last_trade_at < before]

    def apply(
        self, fitted: dict[str, float], current: dict[str, float], before: pd.Timestamp | None = None
    ) -> dict[str, float]:
        """The live values for one fitted suggestion: the pipeline's own smoothing, then the bound."""
        values = fitted
        known = self.known(before)
        if known and self.policy is not None and self.run is not None:
            run = self.run.model_copy(update={"recommended_iv_multiplier": dict(fitted)})
            values = pipeline.smooth_over(run, known, self.policy).values
        return values if self.max_change is None else bounded_weights(values, current, self.max_change)

    def apply_many(self, fitted: np.ndarray, current: np.ndarray, before: pd.Timestamp | None = None) -> np.ndarray:
        """:meth:`apply` for every row (one per shuffle) at once."""
        values = fitted
        known = self.known(before)
        if known and self.policy is not None and self.run is not None:
            values = _round_many(self._smooth_many(fitted, known))
        return values if self.max_change is None else _bounded_many(values, current, self.max_change)

    def _smooth_many(self, fitted: np.ndarray, known: list[CalibrationRun]) -> np.ndarray:
        assert self.policy is not None and self.run is not None
        smoother = get_smoother(self.policy.smoothing)
        options = self.policy.validated_smoothing_options()
        runs = window_runs(known, self.run, self.policy)  # ordered as the pipeline orders them, this run last
        times = times_ns([run.timestamp for run in runs]).view("datetime64[ns]")
        out = np.empty_like(fitted)
        for k, factor in enumerate(FACTORS):
            before = np.array([run.recommended[factor] for run in runs[:-1]], dtype=np.float64)

            def smooth(x: float, before: np.ndarray = before) -> float:
                return float(smoother.fn(times, np.append(before, x), options))

            # Most strategies (the default ewma among them) are affine in the newest value: then two calls
            # give every shuffle's answer; any other strategy is asked once per shuffle.
            low, high = smooth(0.0), smooth(1.0)
            if all(abs(smooth(x) - (low + (high - low) * x)) <= 1e-12 for x in (0.37, 0.81)):
                out[:, k] = low + (high - low) * fitted[:, k]
            else:
                out[:, k] = [smooth(float(x)) for x in fitted[:, k]]
        return out

    def describe(self) -> str:
        """What the step does, for the evidence's first line and a reason."""
        parts = []
        if self.earlier:
            parts.append(
                f"smoothed ({self.policy.smoothing if self.policy else 'none'}) with "
                f"{_plural(len(self.earlier), 'earlier suggestion')} from the last {self.window_days:g} days"
            )
        if self.max_change is not None:
            parts.append(f"no weight moving more than {self.max_change:g} from the live one")
        return ", ".join(parts)


def _round_many(weights: np.ndarray, decimals: int = DECIMALS) -> np.ndarray:
    """:func:`~.domain.round_weights` for every row at once (largest remainder)."""
    unit = 10**decimals
    exact = weights / weights.sum(axis=1, keepdims=True) * unit
    grid = np.floor(exact)
    leftover = unit - grid.sum(axis=1, keepdims=True)
    order = np.argsort(grid - exact, axis=1, kind="stable")  # the most rounded-down first; ties in factor order
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(weights.shape[1])[None, :].repeat(len(weights), 0), axis=1)
    return (grid + (rank < leftover)) / unit


def _bounded_many(suggested: np.ndarray, current: np.ndarray, max_change: float) -> np.ndarray:
    """:func:`~.analysis.bounded_weights` for every row at once (the same bisection)."""
    lo, hi = np.maximum(0.0, current - max_change), np.minimum(1.0, current + max_change)
    inside = np.all((lo <= suggested) & (suggested <= hi), axis=1)
    low, high = (lo - suggested).min(axis=1), (hi - suggested).max(axis=1)
    done = inside.copy()
    for _ in range(200):
        middle = (low + high) / 2
        done |= (middle == low) | (middle == high)
        if done.all():
            break
        below = np.clip(suggested + middle[:, None], lo, hi).sum(axis=1) < 1.0
        low = np.where(~done & below, middle, low)
        high = np.where(~done & ~below, middle, high)
    bounded = np.clip(suggested + ((low + high) / 2)[:, None], lo, hi)
    bounded[inside] = suggested[inside]
    return bounded


def live_step(
    policy: CalibrationUpdatePolicy | None,
    history_dir: str | os.PathLike[str] | None,
    run: CalibrationRun,
    max_change: float | None,
) -> LiveStep:
    """The step that turns ``run``'s suggestion into live values, with the earlier runs of its window."""
    if policy is None:
        return LiveStep(max_change)
    start = run.timestamp - timedelta(days=policy.smoothing_window_days)
    stored = open_store(history_dir).between(run.underlying, start, run.timestamp)
    others = [r for r in window_runs(stored, run, policy) if r is not run and r.run_id != run.run_id]
    earlier = []
    for other in others:
        last = ((other.model_extra or {}).get("analysis") or {}).get("last_trade_at")
        earlier.append(Earlier(other, pd.Timestamp(last) if last else None))
    return LiveStep(max_change, policy, run, tuple(earlier), float(policy.smoothing_window_days))


def hypothetical_run(analysis: WeightsAnalysis, underlying: str, timestamp: datetime | None = None) -> CalibrationRun:
    """The run a suggestion would be recorded as now (validated, not stored): what the panel and CLI
    smooth over when they show what would go live without recording anything."""
    return build_run(analysis.to_dict(), underlying, SOURCE, timestamp, domain=DOMAIN_NAME)


def go_live(analysis: WeightsAnalysis, step: LiveStep) -> WeightsAnalysis:
    """The analysis putting forward exactly the values that would go live (smoothed, normalised, bounded)."""
    if analysis.suggested is None:
        return analysis
    smoothing = replace(step, max_change=None)
    if step.earlier and step.policy is not None and step.run is not None:
        smoothed = smoothing.apply(analysis.suggested, analysis.current)
        if smoothed != analysis.suggested:
            analysis = analysis.with_values(smoothed, smoothing.describe())
    if step.max_change is not None:
        bounded = bounded_weights(analysis.suggested, analysis.current, step.max_change)  # type: ignore[arg-type]
        if bounded != analysis.suggested:
            analysis = analysis.with_values(bounded, f"each weight moves at most {step.max_change:g} from the live one")
    return analysis
