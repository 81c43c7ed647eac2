"""The scoring-weights flow: analyse the trades, record the run, then suggest or (auto mode) apply.

A suggestion goes through the same governance as every other domain: ``suggest_weights`` and
``run_auto`` build a change (:mod:`.changes`) and the governor runs it — the permission check
(``propose`` on ``scoring_weights``, from the policy in force, narrowed by the weights settings),
settling, the intent, validation of what goes live, and events.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from calibration_policy.context import Context
from calibration_policy.errors import PolicyError
from calibration_policy.governor import Governor
from calibration_policy.policy import CalibrationUpdatePolicy
from calibration_policy.target import Target

from .analysis import MODEL_NAME, TRADING_THRESHOLD, TradesInput, load_trades, weights_policy
from .changes import WeightsAuto, WeightsOutcome, WeightsSuggest, new_trade_count
from .domain import DOMAIN_NAME, live_weights
from .settings import AutoSettings

__all__ = ["WeightsOutcome", "live_weights", "new_trade_count", "run_auto", "suggest_weights"]


def _checked_policy(policy: CalibrationUpdatePolicy | None) -> CalibrationUpdatePolicy:
    policy = policy or weights_policy()
    if policy.domain != DOMAIN_NAME:
        raise PolicyError(f'This policy governs {policy.domain}, not scoring weights; set domain = "{DOMAIN_NAME}".')
    if "max_step" in policy.rules:
        raise PolicyError(
            "The max_step rule clips each weight on its own, which breaks their sum of 1; leave it out "
            "of a weights policy and bound automatic changes with max_weight_change."
        )
    return policy


def suggest_weights(
    trades: TradesInput,
    target: Target,
    *,
    policy: CalibrationUpdatePolicy | None = None,
    underlying: str = MODEL_NAME,
    threshold: float = TRADING_THRESHOLD,
    max_change: float | None = None,
    history_dir: str | os.PathLike[str] | None = None,
    suggestions_dir: str | os.PathLike[str] | None = None,
    timestamp: datetime | None = None,
    actor: Any = "user",
    via: str = "python",
    permissions: Any = None,
    archive_dir: str | os.PathLike[str] | None = None,
) -> WeightsOutcome:
    """Analyse the trades against the live weights, record the run, and leave a pending suggestion.

    The suggestion (with the analysis, each factor's rationale and the estimated improvement
    in ``details``) waits for a person to approve, modify or reject it; an older pending one
    for the same weights expires. When the policy's rules say the change is not worth it (no
    weight moves by ``min_delta_global``), the run is recorded with that reason and nothing
    waits. Fewer trades than ``policy.min_sample_size`` raise :class:`NotEnoughTradesError`.
    ``policy`` is the weights policy (its rules); who may suggest is the policy in force's answer.
    """
    rules = _checked_policy(policy)
    ctx = Context.build(
        actor=actor,
        via=via,
        permissions=permissions,
        history_dir=history_dir,
        suggestions_dir=suggestions_dir,
        archive_dir=archive_dir,  # where the change's write-ahead intent goes
    )
    change = WeightsSuggest(load_trades(trades), target, rules, underlying, threshold, timestamp, max_change)
    return Governor(ctx).execute(change)


def run_auto(
    trades: TradesInput,
    target: Target,
    settings: AutoSettings | None = None,
    *,
    policy: CalibrationUpdatePolicy | None = None,
    underlying: str = MODEL_NAME,
    threshold: float = TRADING_THRESHOLD,
    history_dir: str | os.PathLike[str] | None = None,
    suggestions_dir: str | os.PathLike[str] | None = None,
    archive_dir: str | os.PathLike[str] | None = None,
    timestamp: datetime | None = None,
    actor: Any = "auto mode",
    permissions: Any = None,
) -> WeightsOutcome:
    """One auto-mode step, for a cron job: suggest when enough new trades arrived; maybe apply.

    The suggestion is bounded (no weight moves more than ``max_weight_change``, the set stays
    valid). It goes live at once — through the locked, archived apply path, as an ``auto``
    change that names the run, so it can be reviewed and rolled back — only when the estimated
    improvement reaches ``min_improvement_pct``, ``require_approval`` is off and (with the
    out-of-sample gate) the values it would apply hold on unseen trades at this look's share of
    the weights file's budget (:mod:`.budget`); otherwise it waits for a person like any suggestion. ``actor`` (default "auto mode") needs the ``propose``
    permission on the scoring weights, like any other proposer.
    """
    settings = settings or AutoSettings()
    if not settings.enabled:
        return WeightsOutcome("off", "Auto mode is off (enabled = false under [auto]); nothing was done.")
    rules = _checked_policy(policy)
    ctx = Context.build(
        actor=actor,
        via="auto",
        permissions=permissions,
        history_dir=history_dir,
        archive_dir=archive_dir,
        suggestions_dir=suggestions_dir,
    )
    change = WeightsAuto(load_trades(trades), target, rules, underlying, threshold, timestamp, settings)
    return Governor(ctx).execute(change)
