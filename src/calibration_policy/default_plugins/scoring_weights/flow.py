"""The scoring-weights flow: analyse the trades, record the run, then suggest or (auto mode) apply.

A suggestion goes through the same governance as every other domain: it is recorded as a run,
smoothed and checked by the policy's rules, and either waits for a person (``suggest_weights``)
or, in auto mode, goes live within bounds (``run_auto``) through the one locked, archived apply path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from calibration_policy import pipeline, record_calibration_result
from calibration_policy.archive import ArchiveEntry
from calibration_policy.errors import PolicyError, StaleChangeError
from calibration_policy.models import CalibrationRun, Decision
from calibration_policy.permissions import check as check_permission
from calibration_policy.policy import CalibrationUpdatePolicy
from calibration_policy.review import Suggestion
from calibration_policy.stores import open_reviews, open_store
from calibration_policy.target import Target

from .analysis import (
    MODEL_NAME,
    SOURCE,
    TIME_COLUMN,
    TRADING_THRESHOLD,
    TradesInput,
    WeightsAnalysis,
    _plural,
    analyze_trades,
    load_trades,
    weights_policy,
)
from .budget import budget_for
from .domain import (
    DOMAIN_NAME,
    FACTORS,
    NotEnoughTradesError,
    ScoringWeightsDomain,
    WeightsError,
)
from .evidence import measure_or_explain
from .gate import OutOfSampleOptions
from .live import go_live, live_step
from .settings import AutoSettings

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
            "action": self.action,
            "message": self.message,
            "analysis": self.analysis.to_dict() if self.analysis else None,
            "run_id": self.run.run_id if self.run else None,
            "suggestion_id": self.suggestion.suggestion_id if self.suggestion else None,
            "change_id": self.change.change_id if self.change else None,
            "applied_values": self.change.new_values if self.change else None,
        }


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


def live_weights(target: Target) -> dict[str, float]:
    """The live weights, checked: a hand-edited file that no longer sums to 1 is reported, not used."""
    values = target.values(target.load())  # a missing or unreadable file is the target's own error
    try:
        return ScoringWeightsDomain().validate(values)
    except ValueError as error:
        raise WeightsError(f"The live weights ({target.name}) are not a valid set: {error}") from None


def _prepare(
    frame: pd.DataFrame,
    target: Target,
    policy: CalibrationUpdatePolicy,
    underlying: str,
    threshold: float,
    max_change: float | None,
    history_dir,
    timestamp: datetime | None,
    look: dict[str, Any] | None = None,
) -> tuple[WeightsAnalysis, CalibrationRun, Decision]:
    """Analyse, then the pipeline's steps: record the run (with auto mode's look, so a restart cannot
    forget it), smooth, bound, and let the policy's rules decide on exactly those values."""
    analysis = analyze_trades(frame, live_weights(target), min_trades=policy.min_sample_size, threshold=threshold)
    if not analysis.enough_trades:
        raise NotEnoughTradesError(analysis.message)
    analysis = replace(analysis, look=look)
    run = record_calibration_result(analysis.to_dict(), underlying, SOURCE, history_dir, timestamp, domain=DOMAIN_NAME)
    step = live_step(policy, history_dir, run, max_change)
    analysis = go_live(analysis, step)
    measured: dict[str, Any] = {}
    if "out_of_sample" in policy.rules:  # the rule judges evidence only this flow can measure
        options = policy.validated_rule_options("out_of_sample")  # the rule registers OutOfSampleOptions
        measured["out_of_sample"] = measure_or_explain(
            frame,
            analysis.current,
            options if isinstance(options, OutOfSampleOptions) else None,
            threshold=threshold,
            step=step,
        )
    decision = pipeline.decide(
        run,
        analysis.current,
        analysis.suggestion,
        policy,
        scope_labels={f: f for f in FACTORS},
        evidence=measured,
    )
    return analysis, run, decision


def _body(decision: Decision) -> str:
    return decision.reason.removeprefix("Applied: ")


def _propose(
    analysis: WeightsAnalysis,
    run: CalibrationRun,
    decision: Decision,
    target: Target,
    suggestions_dir,
    history_dir,
    auto_note: str | None = None,
    *,
    actor: str = "auto mode",
    via: str = "auto",
    policy: CalibrationUpdatePolicy | None = None,
) -> WeightsOutcome:
    improvement = analysis.improvement
    reason = (
        f"Suggested: {_body(decision)}; estimated {improvement.short()}"
        if improvement
        else f"Suggested: {_body(decision)}"
    )
    if auto_note:
        reason += f" (auto mode: {auto_note})"
    run, suggestion = pipeline.propose(
        run,
        decision,
        analysis.current,
        target,
        smoothed=analysis.suggestion,
        history_dir=history_dir,
        suggestions_dir=suggestions_dir,
        reason=reason,
        details={"analysis": analysis.to_dict(), "auto": auto_note},
        analysis=analysis.to_dict(),
        proposed_by=actor,
        proposed_via=via,
        policy=policy,
        decided_by=actor,
        decided_via=via,
    )
    return WeightsOutcome(
        "suggested",
        f"{reason}. Review it as suggestion {suggestion.suggestion_id}.",
        analysis,
        run,
        decision,
        suggestion,
    )


def _not_suggested(
    analysis: WeightsAnalysis,
    run: CalibrationRun,
    decision: Decision,
    history_dir,
    reason: str | None = None,
    action: Action = "not suggested",
    policy: CalibrationUpdatePolicy | None = None,
) -> WeightsOutcome:
    run = pipeline.settle(
        run,
        decision,
        analysis.suggestion,
        history_dir,
        reason,
        policy=policy,
        analysis=analysis.to_dict(),
    )
    text = reason or decision.reason.replace("Not applied: ", "No new weights suggested: ", 1)
    return WeightsOutcome(action, text, analysis, run, decision)


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
) -> WeightsOutcome:
    """Analyse the trades against the live weights, record the run, and leave a pending suggestion.

    The suggestion (with the analysis, each factor's rationale and the estimated improvement
    in ``details``) waits for a person to approve, modify or reject it; an older pending one
    for the same weights expires. When the policy's rules say the change is not worth it (no
    weight moves by ``min_delta_global``), the run is recorded with that reason and nothing
    waits. Fewer trades than ``policy.min_sample_size`` raise :class:`NotEnoughTradesError`.
    """
    policy = _checked_policy(policy)
    actor = check_permission(
        "propose", actor=actor, domain=DOMAIN_NAME, via=via, policy=policy, permissions=permissions
    )
    analysis, run, decision = _prepare(
        load_trades(trades), target, policy, underlying, threshold, max_change, history_dir, timestamp
    )
    if not decision.apply:
        return _not_suggested(analysis, run, decision, history_dir, policy=policy)
    return _propose(analysis, run, decision, target, suggestions_dir, history_dir, actor=actor, via=via, policy=policy)


def new_trade_count(trades: pd.DataFrame, last_run: CalibrationRun) -> int:
    """Trades closed after the last analysed one; without close times, how many rows were added."""
    analysed = (last_run.model_extra or {}).get("analysis") or {}
    last_at = analysed.get("last_trade_at")
    if last_at and TIME_COLUMN in trades.columns:
        return int((trades[TIME_COLUMN] > pd.Timestamp(last_at)).sum())
    return max(0, len(trades) - last_run.sample_size)


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
) -> WeightsOutcome:
    """One auto-mode step, for a cron job: suggest when enough new trades arrived; maybe apply.

    The suggestion is bounded (no weight moves more than ``max_weight_change``, the set stays
    valid). It goes live at once — through the locked, archived apply path, as an ``auto``
    change that names the run, so it can be reviewed and rolled back — only when the estimated
    improvement reaches ``min_improvement_pct``, ``require_approval`` is off and (with the
    out-of-sample gate) the values it would apply hold on unseen trades at this look's share of
    the weights file's budget (:mod:`.budget`); otherwise it waits for a person like any suggestion.
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
            return WeightsOutcome(
                "waiting",
                f"{_plural(new, 'new trade')} since the last suggestion "
                f"({latest[0].timestamp:%Y-%m-%d %H:%M} UTC); auto mode waits for "
                f"{settings.min_trades_between:,}.",
            )
    with pipeline.change_intent(
        target,
        archive_dir,
        "auto",
        history_dir=history_dir,
        suggestions_dir=suggestions_dir,
        underlying=underlying,
        source=SOURCE,
        timestamp=timestamp.isoformat() if timestamp else None,
    ):
        return _auto_step(
            frame, target, settings, policy, underlying, threshold, history_dir, suggestions_dir, archive_dir, timestamp
        )


def _auto_step(
    frame, target, settings, policy, underlying, threshold, history_dir, suggestions_dir, archive_dir, timestamp
) -> WeightsOutcome:
    budget = None
    if settings.out_of_sample_gate and not settings.require_approval:  # a look that could apply spends budget
        budget = budget_for(settings, history_dir, underlying, target.name)
    look = budget.look() if budget is not None and not budget.spent_out else None
    try:
        analysis, run, decision = _prepare(
            frame, target, policy, underlying, threshold, settings.max_weight_change, history_dir, timestamp, look
        )
    except NotEnoughTradesError as error:
        return WeightsOutcome("waiting", str(error))
    if not decision.apply:
        return _not_suggested(analysis, run, decision, history_dir, policy=policy)
    improvement = analysis.improvement
    assert improvement is not None  # an analysis with a suggestion always has its estimate
    if settings.require_approval:
        return _propose(
            analysis, run, decision, target, suggestions_dir, history_dir, "require_approval is on", policy=policy
        )
    if not improvement.clears(settings.min_improvement_pct):
        return _propose(
            analysis,
            run,
            decision,
            target,
            suggestions_dir,
            history_dir,
            f"estimated improvement below the {settings.min_improvement_pct:g}% bar for applying on its own",
            policy=policy,
        )
    reason = (
        f"Applied automatically: {_body(decision)}; estimated {improvement.short()} "
        f"(bar {settings.min_improvement_pct:g}%); no weight moved more than {settings.max_weight_change:g}"
    )
    if settings.out_of_sample_gate:
        # The in-sample estimate reads high even on noise; only a gain on unseen trades may apply unattended.
        passed, text = _judge_live_values(frame, analysis, run, settings, policy, threshold, history_dir, budget, look)
        if not passed:
            return _propose(analysis, run, decision, target, suggestions_dir, history_dir, text, policy=policy)
        reason += f"; {text}"
    try:
        run, change = pipeline.apply(
            run,
            decision,
            target,
            smoothed=analysis.suggestion,
            history_dir=history_dir,
            archive_dir=archive_dir,
            kind="auto",
            actor="auto mode",
            reason=reason,
            expected=analysis.current,
            analysis=analysis.to_dict(),
            via="auto",
            decided_by="auto mode",
            decided_via="auto",
            policy=policy,
        )
    except StaleChangeError:
        reason = "Not applied: the live weights changed while auto mode was deciding; it looks again next time"
        return _not_suggested(analysis, run, decision, history_dir, reason, action="waiting", policy=policy)
    expired = open_reviews(suggestions_dir).expire_pending(
        target.name, f"superseded by an automatic change ({change.change_id}) before anyone reviewed it"
    )
    pipeline.decide_runs_of(expired, history_dir, suggestions_dir)
    return WeightsOutcome("applied", reason + ".", analysis, run, decision, change=change)


def _judge_live_values(
    frame, analysis, run, settings, policy, threshold, history_dir, budget, look
) -> tuple[bool, str]:
    """The out-of-sample gate on exactly the values that would go live, at this look's share of the budget."""
    if look is None:
        return False, f"its budget for applying on its own is spent ({budget.text()}), so a person decides"
    gate = settings.out_of_sample
    step = live_step(policy, history_dir, run, settings.max_weight_change)
    evidence = measure_or_explain(frame, analysis.current, gate, threshold=threshold, step=step)
    passed, text, _ = evidence.verdict(gate.model_copy(update={"max_p_value": min(gate.max_p_value, look["level"])}))
    spent = replace(budget, looks=budget.looks + 1, spent=budget.spent + look["level"])
    return passed, f"{text}; look {look['number']} of {budget.max_looks}, at p ≤ {look['level']:.3g} ({spent.text()})"
