"""The scoring weights' own kinds of change, run by the governor like every other: suggest and auto mode.

``weights_suggest`` records an analysis as a run and leaves a suggestion for a person (or records why
not); ``weights_auto`` does the same when enough new trades arrived, and applies the suggestion on
its own within bounds when the evidence is strong enough. Each is permission-checked (``propose``
on ``scoring_weights``: the policy in force, narrowed by the weights settings), settled if
interrupted, validated by the domain when it goes live, and announced (``change_made``,
``decision_made``). They are registered through the ``register_change_kinds`` hook.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from calibration_policy import steps, watch
from calibration_policy.archive import ArchiveEntry
from calibration_policy.errors import StaleChangeError
from calibration_policy.events import Decided
from calibration_policy.governor import Change, Step
from calibration_policy.models import CalibrationRun, Decision
from calibration_policy.policy import CalibrationUpdatePolicy
from calibration_policy.review import Suggestion
from calibration_policy.stores import open_reviews, open_store
from calibration_policy.target import Target

from . import lazy
from .analysis import SOURCE, TIME_COLUMN, WeightsAnalysis, _plural, analyze_trades, window_trades
from .budget import budget_for
from .domain import DOMAIN_NAME, NotEnoughTradesError, live_weights
from .evidence import measure_or_explain
from .gate import OutOfSampleOptions
from .live import go_live, live_step
from .settings import AutoSettings

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy.pandas

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


def _body(decision: Decision) -> str:
    return decision.reason.removeprefix("Applied: ")


def _prepare(
    step: Step, frame: pd.DataFrame, max_change: float | None, look: dict[str, Any] | None = None
) -> tuple[WeightsAnalysis, CalibrationRun, Decision]:
    """Analyse, then the pipeline's steps: record the run (with auto mode's look, so a restart cannot
    forget it), smooth, bound, and let the policy's rules decide on exactly those values."""
    change, target = _of(step)
    history_dir, policy, threshold = step.ctx.history_dir, change.rules, change.threshold
    analysis = analyze_trades(frame, live_weights(target), min_trades=policy.min_sample_size, threshold=threshold)
    if not analysis.enough_trades:
        raise NotEnoughTradesError(analysis.message)
    analysis = replace(analysis, look=look)
    before = open_store(history_dir).latest(change.underlying, limit=1)
    window = window_trades(
        frame,
        (before[0].model_extra or {}).get("analysis") if before else None,
        before[0].sample_size if before else None,
        analysis.current,
        threshold,
    )
    run = steps.record_calibration_result(
        {**analysis.to_dict(), **({"window_trades": window} if window else {})},
        change.underlying,
        SOURCE,
        history_dir,
        change.timestamp,
        domain=DOMAIN_NAME,
    )
    step.note(run_id=run.run_id)
    if policy.watch_runs:
        # The watch after apply judges the live weights on this run too, under the file's lock and before the
        # decision, as an update does; when it rolls them back, the analysis is made again against what is live.
        with step.locked():
            watch.after_run(step, run, policy, step.event)
        step.watch_settled = False  # this flow may still apply: the watch settles after it as after any change
        now = live_weights(target)
        if now != analysis.current:
            again = analyze_trades(frame, now, min_trades=policy.min_sample_size, threshold=threshold)
            analysis = replace(again, look=look)
    live = live_step(policy, history_dir, run, max_change)
    analysis = go_live(analysis, live)
    measured: dict[str, Any] = {}
    if "out_of_sample" in policy.rules:  # the rule judges evidence only this flow can measure
        options = policy.validated_rule_options("out_of_sample")  # the rule registers OutOfSampleOptions
        measured["out_of_sample"] = measure_or_explain(
            frame,
            analysis.current,
            options if isinstance(options, OutOfSampleOptions) else None,
            threshold=threshold,
            step=live,
        )
    decision = steps.decide(
        run,
        analysis.current,
        analysis.suggestion,
        policy,
        evidence=measured,
    )
    return analysis, run, decision


def _propose(
    step: Step,
    analysis: WeightsAnalysis,
    run: CalibrationRun,
    decision: Decision,
    auto_note: str | None = None,
) -> WeightsOutcome:
    (change, target), ctx = _of(step), step.ctx
    policy = change.rules
    improvement = analysis.improvement
    reason = (
        f"Suggested: {_body(decision)}; estimated {improvement.short()}"
        if improvement
        else f"Suggested: {_body(decision)}"
    )
    if auto_note:
        reason += f" (auto mode: {auto_note})"
    run, suggestion = steps.propose(
        run,
        decision,
        analysis.current,
        target,
        smoothed=analysis.suggestion,
        history_dir=ctx.history_dir,
        suggestions_dir=ctx.suggestions_dir,
        reason=reason,
        details={"analysis": analysis.to_dict(), "auto": auto_note},
        analysis=analysis.to_dict(),
        proposed_by=step.actor,
        proposed_via=ctx.via,
        policy=policy,
        governing=ctx.rules(policy),
        decided_by=step.actor,
        decided_via=ctx.via,
    )
    waiting = Decision(apply=False, reason="Waiting for approval: " + reason, values=dict(decision.values))
    _event(step, "waiting", waiting, run, analysis, after=dict(decision.values), suggestion_id=suggestion.suggestion_id)
    return WeightsOutcome(
        "suggested",
        f"{reason}. Review it as suggestion {suggestion.suggestion_id}.",
        analysis,
        run,
        decision,
        suggestion,
    )


def _event(
    step: Step, status: str, decision: Decision, run: CalibrationRun, analysis: WeightsAnalysis, **fields: Any
) -> None:
    step.event(
        status,
        decision.reason,
        decided=Decided(run, decision, _of(step)[0].rules),
        domain=DOMAIN_NAME,
        underlying=run.underlying,
        before=dict(analysis.current),
        run_id=run.run_id,
        **fields,
    )


def _not_suggested(
    step: Step,
    analysis: WeightsAnalysis,
    run: CalibrationRun,
    decision: Decision,
    reason: str | None = None,
    action: Action = "not suggested",
) -> WeightsOutcome:
    run = steps.settle(
        run,
        decision,
        analysis.suggestion,
        step.ctx.history_dir,
        reason,
        policy=_of(step)[0].rules,
        analysis=analysis.to_dict(),
    )
    _event(step, "not_applied", replace(decision, reason=reason or decision.reason), run, analysis)
    text = reason or decision.reason.replace("Not applied: ", "No new weights suggested: ", 1)
    return WeightsOutcome(action, text, analysis, run, decision)


def new_trade_count(trades: pd.DataFrame, last_run: CalibrationRun) -> int:
    """Trades closed after the last analysed one; without close times, how many rows were added."""
    analysed = (last_run.model_extra or {}).get("analysis") or {}
    last_at = analysed.get("last_trade_at")
    if last_at and TIME_COLUMN in trades.columns:
        return int((trades[TIME_COLUMN] > pd.Timestamp(last_at)).sum())
    return max(0, len(trades) - last_run.sample_size)


def _auto_step(step: Step, frame: pd.DataFrame, settings: AutoSettings) -> WeightsOutcome:
    (weights, target), ctx = _of(step), step.ctx
    budget = None
    if settings.out_of_sample_gate and not settings.require_approval:  # a look that could apply spends budget
        budget = budget_for(settings, ctx.history_dir, weights.underlying, target.name)
    look = budget.look() if budget is not None and not budget.spent_out else None
    try:
        analysis, run, decision = _prepare(step, frame, settings.max_weight_change, look)
    except NotEnoughTradesError as error:
        return WeightsOutcome("waiting", str(error))
    if not decision.apply:
        return _not_suggested(step, analysis, run, decision)
    improvement = analysis.improvement
    assert improvement is not None  # an analysis with a suggestion always has its estimate
    if settings.require_approval:
        return _propose(step, analysis, run, decision, "require_approval is on")
    if not improvement.clears(settings.min_improvement_pct):
        return _propose(
            step,
            analysis,
            run,
            decision,
            f"estimated improvement below the {settings.min_improvement_pct:g}% bar for applying on its own",
        )
    reason = (
        f"Applied automatically: {_body(decision)}; estimated {improvement.short()} "
        f"(bar {settings.min_improvement_pct:g}%); no weight moved more than {settings.max_weight_change:g}"
    )
    if settings.out_of_sample_gate:
        # The in-sample estimate reads high even on noise; only a gain on unseen trades may apply unattended.
        passed, text = _judge_live_values(step, frame, analysis, run, settings, budget, look)
        if not passed:
            return _propose(step, analysis, run, decision, text)
        reason += f"; {text}"
    try:
        run, change = steps.apply(
            run,
            decision,
            target,
            smoothed=analysis.suggestion,
            history_dir=ctx.history_dir,
            archive_dir=ctx.archive_dir,
            kind="auto",
            actor=step.actor,
            reason=reason,
            expected=analysis.current,
            analysis=analysis.to_dict(),
            via=ctx.via,
            decided_by=step.actor,
            decided_via=ctx.via,
            policy=weights.rules,
        )
    except StaleChangeError:
        reason = "Not applied: the live weights changed while auto mode was deciding; it looks again next time"
        return _not_suggested(step, analysis, run, decision, reason, action="waiting")
    expired = open_reviews(ctx.suggestions_dir).expire_pending(
        target.name, f"superseded by an automatic change ({change.change_id}) before anyone reviewed it"
    )
    steps.decide_runs_of(expired, ctx.history_dir, ctx.suggestions_dir)
    applied = replace(decision, reason=reason)
    _event(step, "applied", applied, run, analysis, after=change.new_values, change_id=change.change_id)
    return WeightsOutcome("applied", reason + ".", analysis, run, decision, change=change)


def _judge_live_values(step: Step, frame, analysis, run, settings, budget, look) -> tuple[bool, str]:
    """The out-of-sample gate on exactly the values that would go live, at this look's share of the budget."""
    if look is None:
        return False, f"its budget for applying on its own is spent ({budget.text()}), so a person decides"
    weights, _ = _of(step)
    gate = settings.out_of_sample
    live = live_step(weights.rules, step.ctx.history_dir, run, settings.max_weight_change)
    evidence = measure_or_explain(frame, analysis.current, gate, threshold=weights.threshold, step=live)
    passed, text, _ = evidence.verdict(gate.model_copy(update={"max_p_value": min(gate.max_p_value, look["level"])}))
    spent = replace(budget, looks=budget.looks + 1, spent=budget.spent + look["level"])
    return passed, f"{text}; look {look['number']} of {budget.max_looks}, at p ≤ {look['level']:.3g} ({spent.text()})"


def _of(step: Step) -> tuple[WeightsChange, Target]:
    """The weights change a step runs, and its live weights file."""
    change, target = step.change, step.target
    assert isinstance(change, WeightsChange) and target is not None
    return change, target


@dataclass
class WeightsChange(Change):
    """What suggest and auto mode share: the trades, the live weights file, and the weights policy."""

    frame: pd.DataFrame
    target: Target
    rules: CalibrationUpdatePolicy
    underlying: str
    threshold: float
    timestamp: datetime | None = None

    action = "propose"

    def domain(self, ctx) -> str:
        return DOMAIN_NAME

    def live(self) -> Target:
        return self.target

    def intent(self) -> dict[str, Any] | None:
        # A killed suggestion leaves a run: the next change records why nothing went live (or that it waits).
        when = self.timestamp.isoformat() if self.timestamp else None
        return {"settle": "runs", "underlying": self.underlying, "source": SOURCE, "timestamp": when}


@dataclass
class WeightsSuggest(WeightsChange):
    """Analyse the trades against the live weights, record the run, and leave a pending suggestion
    (or, when the policy's rules say the change is not worth it, record why not)."""

    max_change: float | None = None

    kind = "weights_suggest"

    def perform(self, step: Step) -> WeightsOutcome:
        analysis, run, decision = _prepare(step, self.frame, self.max_change)
        if not decision.apply:
            return _not_suggested(step, analysis, run, decision)
        return _propose(step, analysis, run, decision)


@dataclass
class WeightsAuto(WeightsChange):
    """One auto-mode step: when enough new trades arrived, suggest, and apply within bounds when it clearly helps."""

    settings: AutoSettings = AutoSettings()
    early: WeightsOutcome | None = None  # too few new trades: nothing to do, said once

    kind = "weights_auto"

    def prepare(self, ctx, actor) -> None:
        latest = open_store(ctx.history_dir).latest(self.underlying, limit=1)
        if latest:
            new = new_trade_count(self.frame, latest[0])
            if new < self.settings.min_trades_between:
                self.early = WeightsOutcome(
                    "waiting",
                    f"{_plural(new, 'new trade')} since the last suggestion "
                    f"({latest[0].timestamp:%Y-%m-%d %H:%M} UTC); auto mode waits for "
                    f"{self.settings.min_trades_between:,}.",
                )

    def intent(self) -> dict[str, Any] | None:
        return None if self.early is not None else super().intent()

    def perform(self, step: Step) -> WeightsOutcome:
        return self.early if self.early is not None else _auto_step(step, self.frame, self.settings)
