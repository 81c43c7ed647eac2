"""The scoring-weights flow: analyse the trades, record the run, then suggest or (auto mode) apply.

A suggestion goes through the same governance as every other domain: it is recorded as a run,
smoothed and checked by the policy's rules, and either waits for a person (``suggest_weights``)
or, in auto mode, goes live within bounds (``run_auto``) through the one locked, archived apply path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Literal

import pandas as pd

from calibration_policy.apply import apply_values, locked
from calibration_policy.archive import ArchiveEntry, now_utc
from calibration_policy.decide import should_apply_update
from calibration_policy.errors import PolicyError
from calibration_policy.history import open_store, record_calibration_result
from calibration_policy.models import CalibrationRun, Decision
from calibration_policy.policy import CalibrationUpdatePolicy
from calibration_policy.review import ReviewStore, Suggestion
from calibration_policy.smoothing import get_smoothed_multipliers, window_runs
from calibration_policy.target import Target

from .analysis import (
    MODEL_NAME, SOURCE, TIME_COLUMN, TRADING_THRESHOLD, AutoSettings, NotEnoughTradesError, TradesInput,
    WeightsAnalysis, WeightsError, _plural, analyze_trades, bounded_weights, load_trades, round_weights, weights_policy,
)
from .domain import DOMAIN_NAME, FACTORS, ScoringWeightsDomain

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
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
