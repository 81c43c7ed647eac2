"""What the panel and ``weights analyze`` show: the values that would go live, their evidence, the budget.

Nothing is recorded: the suggestion is smoothed over the stored runs as if it were recorded now
(:func:`~.live.hypothetical_run`), then bounded when auto mode is on (it would apply the bounded
step; a person approving a suggestion puts the unbounded one live), and measured with auto mode's
out-of-sample settings through the same :func:`~.live.go_live` step as auto mode and the rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .analysis import MODEL_NAME, TRADING_THRESHOLD, TradesInput, WeightsAnalysis, analyze_trades
from .budget import Budget, budget_for
from .evidence import Evidence, Unmeasured, measure_or_explain
from .live import go_live, hypothetical_run, live_step

SYNTHETIC = (
    "These are the bundled synthetic trades (made by data/generate_trades.py with a planted wallet "
    "effect), not real trading results."
)


def is_synthetic(trades: TradesInput) -> bool:
    """Whether ``trades`` is the bundled sample file (byte for byte), wherever it was copied to."""
    from calibration_policy.default_plugins.sample import TRADES

    if not isinstance(trades, (str, os.PathLike)):
        return False
    path = Path(trades)
    try:
        return path.stat().st_size == TRADES.stat().st_size and path.read_bytes() == TRADES.read_bytes()
    except OSError:
        return False


@dataclass(frozen=True)
class Preview:
    analysis: WeightsAnalysis  # the analysis' own suggestion (per factor), before any adjustment
    live: WeightsAnalysis  # the same, putting forward exactly what would go live
    route: str  # how it would go live: "auto mode's bounded step" or "a person's approval"
    evidence: Evidence | Unmeasured | None
    budget: Budget | None  # auto mode's budget for this weights file (None: auto mode is off)
    synthetic: bool

    def to_dict(self) -> dict[str, Any]:
        evidence = self.evidence
        return {
            "synthetic": self.synthetic,
            "route": self.route,
            "live_weights_would_be": self.live.suggested,
            "adjustments": list(self.live.adjustments),
            "evidence": evidence.to_dict() if isinstance(evidence, Evidence) else None,
            "evidence_error": evidence.problem if isinstance(evidence, Unmeasured) else None,
            "budget": self.budget.to_dict() if self.budget else None,
        }


def preview(
    trades: TradesInput,
    current: dict[str, float],
    settings: Any,
    *,
    target_name: str,
    history_dir: str | os.PathLike[str] | None = None,
    underlying: str = MODEL_NAME,
    threshold: float = TRADING_THRESHOLD,
    min_trades: int | None = None,
    evidence: bool = True,
) -> Preview:
    """The analysis, the values that would go live now and (``evidence``) how they fare on unseen trades.

    ``settings`` is a ``WeightsSettings``: its policy smooths, its auto mode bounds and sets the gate.
    """
    policy, auto = settings.policy, settings.auto
    minimum = policy.min_sample_size if min_trades is None else min_trades
    analysis = analyze_trades(trades, current, min_trades=minimum, threshold=threshold)
    budget = budget_for(auto, history_dir, underlying, target_name) if auto.enabled else None
    route = "auto mode's bounded step" if auto.enabled else "a person's approval"
    if not analysis.enough_trades:
        return Preview(analysis, analysis, route, None, budget, is_synthetic(trades))
    step = live_step(
        policy, history_dir, hypothetical_run(analysis, underlying), auto.max_weight_change if auto.enabled else None
    )
    measured = (
        measure_or_explain(trades, current, auto.out_of_sample, threshold=threshold, step=step) if evidence else None
    )
    return Preview(analysis, go_live(analysis, step), route, measured, budget, is_synthetic(trades))
