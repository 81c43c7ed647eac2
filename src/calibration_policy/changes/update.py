"""Update and force: a run decided by the policy's rules (or forced by a person) goes live, waits, or not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypedDict

from .. import watch
from ..errors import CalibrationPolicyError, HistoryError
from ..events import Decided
from ..governor import Change, Step
from ..history import build_run
from ..models import CalibrationRun
from ..naming import check_underlying
from ..policy import CalibrationUpdatePolicy
from ..policy_versions import policy_fingerprint
from ..rule_evidence import live_evidence
from ..steps import ForcedValues, UpdateOutcome, _decision, _waiting, apply, propose, route, settle, smoothed_for
from ..stores import open_store
from ..target import Target


class DecidedBy(TypedDict):
    """What every decided run records about the decision: which policy, who asked, from where."""

    policy_version: str
    decided_by: str | None
    decided_via: str


def decide_and_route(
    step: Step,
    run: CalibrationRun,
    smoothed: Mapping[str, float],
    policy: CalibrationUpdatePolicy,
    force: bool,
    force_values: str,
    expected_version: str | None,
) -> UpdateOutcome:
    """Under the target's lock: the rules on the live values, then live, to a person, or nowhere."""
    ctx, target = step.ctx, step.target
    assert target is not None
    version: DecidedBy = {
        "policy_version": policy_fingerprint(policy),  # which policy decided (see policy_versions)
        "decided_by": step.actor,
        "decided_via": ctx.via,
    }
    with step.locked(expected_version):
        watch.after_run(step, run, policy, step.event)  # may roll the live change back before this run is decided
        current = target.values(target.load())
        evidence = live_evidence(
            run, policy, history_dir=ctx.history_dir, archive_dir=ctx.archive_dir, target_name=target.name
        )
        decision = _decision(run, current, smoothed, policy, force, force_values, evidence)
        way, change = route(decision, policy), None
        if way == "apply":
            step.watch_settled = False  # a newer change: the watch settles after it
            run, change = apply(
                run,
                decision,
                target,
                smoothed=smoothed,
                history_dir=ctx.history_dir,
                archive_dir=ctx.archive_dir,
                kind="force" if decision.forced else "update",
                actor="user" if decision.forced else "policy",
                already_locked=True,
                via=ctx.via,
                by=step.actor,
                **version,
            )
        elif way == "settle":
            run = settle(run, decision, smoothed, ctx.history_dir, **version)
    suggestion = None
    if way == "propose":
        run, suggestion = propose(
            run,
            decision,
            current,
            target,
            smoothed=smoothed,
            history_dir=ctx.history_dir,
            suggestions_dir=ctx.suggestions_dir,
            run_reason=_waiting(decision),
            proposed_by=step.actor,
            proposed_via=ctx.via,
            policy=policy,
            governing=ctx.rules(policy),
            **version,
        )
        decision = replace(decision, apply=False, reason=_waiting(decision))
    step.event(
        {"apply": "applied", "propose": "waiting", "settle": "not_applied"}[way],
        decision.reason,
        decided=Decided(run, decision, policy),
        domain=run.domain,
        underlying=run.underlying,
        before=dict(current),
        after=change.new_values if change else (dict(decision.values) if way == "propose" else None),
        run_id=run.run_id,
        change_id=change.change_id if change else None,
        suggestion_id=suggestion.suggestion_id if suggestion else None,
    )
    return UpdateOutcome(run=run, decision=decision, change=change, route=way)


@dataclass
class Update(Change):
    """A host's calibration result: recorded, smoothed, decided, then live, waiting or not applied."""

    result: Mapping[str, Any]
    underlying: str
    source: str
    target: Target
    rules: CalibrationUpdatePolicy
    timestamp: datetime | None = None
    force: bool = False
    force_values: ForcedValues = "smoothed"
    expected_version: str | None = None
    built: CalibrationRun | None = field(default=None, init=False)

    kind = "update"

    @property
    def action(self) -> str:  # type: ignore[override]
        return "force_apply" if self.force else "propose"

    def domain(self, ctx) -> str:
        return self.rules.domain

    def live(self) -> Target:
        return self.target

    def prepare(self, ctx, actor) -> None:
        self.built = build_run(self.result, self.underlying, self.source, self.timestamp, None, self.rules.domain)

    def intent(self) -> dict[str, Any]:
        assert self.built is not None
        return {
            "expected_version": self.expected_version,
            "underlying": self.built.underlying,
            "source": self.built.source,
            "timestamp": self.built.timestamp.isoformat(),
        }

    def perform(self, step: Step) -> UpdateOutcome:
        assert self.built is not None
        run = open_store(step.ctx.history_dir).record(self.built)
        step.note(run_id=run.run_id)
        smoothed = smoothed_for(run, self.rules, step.ctx.history_dir)
        return decide_and_route(step, run, smoothed, self.rules, self.force, self.force_values, self.expected_version)


@dataclass
class Force(Change):
    """The panel's button: the latest (or the given) run goes live now, whatever the rules say."""

    underlying: str
    target: Target
    rules: CalibrationUpdatePolicy
    run_id: str | None = None
    use: ForcedValues = "smoothed"
    expected_version: str | None = None
    chosen: CalibrationRun | None = field(default=None, init=False)

    kind = "force"
    action = "force_apply"

    def domain(self, ctx) -> str:
        return self.rules.domain

    def live(self) -> Target:
        return self.target

    def prepare(self, ctx, actor) -> None:
        underlying = check_underlying(self.underlying)
        store = open_store(ctx.history_dir)
        if self.run_id is not None:
            run = store.get(self.run_id)
            if run.underlying != underlying.upper():
                raise CalibrationPolicyError(f"Run {self.run_id} is a {run.underlying} run, not {underlying}.")
        else:
            latest = store.latest(underlying, limit=1)
            if not latest:
                raise HistoryError(
                    f"There is no calibration run for {underlying.upper()} to apply yet; run an update first."
                )
            run = latest[0]
        if run.domain != self.rules.domain:
            raise CalibrationPolicyError(
                f"Run {run.run_id} holds {run.domain} values, not {self.rules.domain}; it cannot be applied to this target."
            )
        self.chosen = run

    def intent(self) -> dict[str, Any]:
        assert self.chosen is not None
        return {
            "expected_version": self.expected_version,
            "run_id": self.chosen.run_id,
            "underlying": self.chosen.underlying,
        }

    def perform(self, step: Step) -> UpdateOutcome:
        run = self.chosen
        assert run is not None
        smoothed = run.smoothed or smoothed_for(run, self.rules, step.ctx.history_dir)
        return decide_and_route(step, run, smoothed, self.rules, True, self.use, self.expected_version)
