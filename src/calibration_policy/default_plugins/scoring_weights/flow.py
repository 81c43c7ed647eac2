"""The scoring-weights flow: analyse the trades, record the run, then suggest or (auto mode) apply.

A suggestion goes through the same governance as every other domain: ``suggest_weights`` and
``run_auto`` build a change (:mod:`.changes`) and the governor runs it — the permission check
(``propose`` on ``scoring_weights``, from the policy in force, narrowed by the weights settings),
settling, the intent, validation of what goes live, and events.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

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
    timestamp: datetime | None = None,
    threshold: float = TRADING_THRESHOLD,
    max_change: float | None = None,
    context: Context | None = None,
) -> WeightsOutcome:
    """Analyse the trades against the live weights, record the run, and leave a pending suggestion.

    The suggestion (with the analysis, each factor's rationale and the estimated improvement
    in ``details``) waits for a person to approve, modify or reject it; an older pending one
    for the same weights expires. When the policy's rules say the change is not worth it (no
    weight moves by ``min_delta_global``), the run is recorded with that reason and nothing
    waits. Fewer trades than ``policy.min_sample_size`` raise :class:`NotEnoughTradesError`.
    The context's policy is the weights policy (its rules; default :func:`weights_policy`); who may
    suggest (default actor "user") is the policy in force's answer, narrowed by it.
    """
    ctx = (context or Context.build()).acting("user")
    rules = _checked_policy(ctx.given)
    change = WeightsSuggest(load_trades(trades), target, rules, MODEL_NAME, threshold, timestamp, max_change)
    return Governor(ctx).execute(change)


def run_auto(
    trades: TradesInput,
    target: Target,
    settings: AutoSettings | None = None,
    *,
    timestamp: datetime | None = None,
    threshold: float = TRADING_THRESHOLD,
    context: Context | None = None,
) -> WeightsOutcome:
    """One auto-mode step, for a cron job: suggest when enough new trades arrived; maybe apply.

    The suggestion is bounded (no weight moves more than ``max_weight_change``, the set stays
    valid). It goes live at once — through the locked, archived apply path, as an ``auto``
    change that names the run, so it can be reviewed and rolled back — only when the estimated
    improvement reaches ``min_improvement_pct``, ``require_approval`` is off and (with the
    out-of-sample gate) the values it would apply hold on unseen trades at this look's share of
    the weights file's budget (:mod:`.budget`); otherwise it waits for a person like any suggestion. The
    context's actor (default "auto mode") needs the ``propose`` permission on the scoring weights, like
    any other proposer.
    """
    settings = settings or AutoSettings()
    if not settings.enabled:
        return WeightsOutcome("off", "Auto mode is off (enabled = false under [auto]); nothing was done.")
    ctx = replace((context or Context.build()).acting("auto mode"), via="auto")
    rules = _checked_policy(ctx.given)
    change = WeightsAuto(load_trades(trades), target, rules, MODEL_NAME, threshold, timestamp, settings)
    return Governor(ctx).execute(change)
