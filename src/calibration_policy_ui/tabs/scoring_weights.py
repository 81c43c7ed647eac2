"""The "Scoring weights" tab and its JSON API: the scoring-weights domain's tab, a plugin of the panel's tab hook.

In the panel, the tab finds its files in the panel's data folder (``scoring_weights.json``,
``trades.parquet``, ``scoring_weights.toml``) unless the host names them in
``tab_options={"scoring_weights": {...}}``; it never looks in the process's working directory.
``create_weights_router(...)`` serves the tab alone.

The page shows the live weights, what the trades say about each factor, the suggestion waiting
for review (suggested vs live, change, rationale, estimated improvement) with approve / modify /
reject, and every weight set that was live, with rollback and "what was live on date X".

Everything goes through the core (:mod:`calibration_policy.default_plugins.scoring_weights`, the review store, the
archive), so the tab, the CLI and auto mode can never disagree. It reuses the calibration
panel's pieces — its :class:`Panel` (templates, base layout, signer), CSRF check, flash
messages and error-catching route class — so it looks and behaves like the rest of the panel.
Every form works without JavaScript; ``weights.js`` only shows the running sum of the weights.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from calibration_policy import CalibrationRun, pipeline
from calibration_policy.archive import Archive, Period
from calibration_policy.context import Context
from calibration_policy.default_plugins.scoring_weights.analysis import (
    MODEL_NAME,
    TRADING_THRESHOLD,
    analyze_trades,
    default_trades_file,
)
from calibration_policy.default_plugins.scoring_weights.as_of import weights_shown
from calibration_policy.default_plugins.scoring_weights.domain import (
    DOMAIN_NAME,
    FACTORS,
    WeightsError,
    default_weights_file,
    weights_target,
)
from calibration_policy.default_plugins.scoring_weights.evidence import (
    Unmeasured,
    out_of_sample_verdict,
)
from calibration_policy.default_plugins.scoring_weights.flow import (
    live_weights,
    suggest_weights,
)
from calibration_policy.default_plugins.scoring_weights.preview import SYNTHETIC, is_synthetic, preview
from calibration_policy.default_plugins.scoring_weights.settings import (
    WeightsSettings,
    load_weights_settings,
)
from calibration_policy.errors import (
    CalibrationPolicyError,
    PermissionCheckError,
    PermissionDeniedError,
    ReviewError,
    SettledError,
    StaleChangeError,
)
from calibration_policy.moments import parse_moment
from calibration_policy.pipeline import (
    approve_suggestion,
    modify_suggestion,
    reject_suggestion,
)
from calibration_policy.plugins import sums_to_one
from calibration_policy.review import ReviewStore, Suggestion
from calibration_policy.status import change_that_set
from calibration_policy.stores import open_archive, open_reviews, open_store
from calibration_policy.target import JsonFileTarget

from ..access import permission_guard
from ..api import ErrorOut, if_match
from ..errors import API_TAG, PanelError, panel_route_class
from ..panel import Panel, make_panel
from ..security import (
    check_csrf,
    clear_flash,
    csrf_token,
    read_flash,
    set_csrf_cookie,
    set_flash,
)
from ..static_files import serve_asset
from ..views import badge, change_rows, glossary, rule_sentence

PathArg = str | os.PathLike[str] | None
SettingsArg = WeightsSettings | Callable[[], WeightsSettings] | str | os.PathLike[str] | None
NO_STORE = {"Cache-Control": "no-store"}
HISTORY_SHOWN = 50
Text = Annotated[str, Form(max_length=100)]
Notes = Annotated[str, Form(max_length=2000)]
REVIEWED_SHOWN = 10


@dataclass(frozen=True)
class WeightsTab:
    """The tab's own settings, next to the panel it shares."""

    panel: Panel
    weights_path: Path
    trades_path: Path
    settings_source: Callable[[], WeightsSettings]

    def settings(self) -> WeightsSettings:
        try:
            return self.settings_source()
        except CalibrationPolicyError as error:
            raise PanelError(503, f"The weights settings cannot be loaded: {error}") from None

    def target(self) -> JsonFileTarget:
        return weights_target(path=self.weights_path)

    def store(self) -> ReviewStore:
        return open_reviews(self.panel.suggestions_dir)

    def archive(self) -> Archive:
        return open_archive(self.panel.archive_dir, self.target().name)

    def reviewer(self, request: Request, given: str | None) -> Any:
        """The signed-in user if the host knows one (the host's user object), else the name typed in the form."""
        return self.panel.actor(request, given) or ""

    def context(self, actor: Any, via: str) -> Context:
        """What the tab's changes run in: the panel's, with the weights settings as the policy (they decide the
        weights' changes and only narrow who may do what)."""
        return self.panel.context(actor, via, self.settings().policy)


# -- what the page shows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightRow:
    factor: str
    value: float
    last_updated: datetime | None  # when its value went live, in the data's own time (None: before records began)


@dataclass
class WeightsPage:
    target_name: str
    path: str
    settings: WeightsSettings
    current: list[WeightRow] = field(default_factory=list)
    current_error: str | None = None
    analysis: dict[str, Any] | None = None
    analysis_error: str | None = None
    evidence: dict[str, Any] | None = None
    evidence_error: str | None = None
    pending: list[Suggestion] = field(default_factory=list)
    reviewed: list[Suggestion] = field(default_factory=list)
    periods: list[Period] = field(default_factory=list)
    as_of: AsOfView | None = None
    latest: CalibrationRun | None = None  # the newest weights run: what it found and whether it went live
    synthetic: str | None = None  # said when the trades are the bundled synthetic ones
    changes: list[Any] = field(default_factory=list)  # the timeline's rows, newest first
    rule: str = ""  # what decides, one sentence with the live thresholds

    @property
    def live(self) -> dict[str, float]:
        return {row.factor: row.value for row in self.current}


@dataclass(frozen=True)
class AsOfView:
    asked: str
    moment: datetime
    period: Period | None
    message: str


def _as_of_view(tab: WeightsTab, asked: str, field: str) -> AsOfView:
    moment = parse_moment(asked, field)
    period = tab.archive().as_of(moment)
    if period is None:
        return AsOfView(
            asked,
            moment,
            None,
            f"No weights change has been recorded, so the archive cannot say what was live on {asked}; "
            "the live weights above have been in place since before records began.",
        )
    since = f"{period.since:%Y-%m-%d %H:%M UTC}" if period.since else "before records began"
    until = f"until {period.until:%Y-%m-%d %H:%M UTC}" if period.until else "and still are"
    return AsOfView(
        asked, moment, period, f"Live at {moment:%Y-%m-%d %H:%M UTC}: these weights, live from {since} {until}."
    )


def build_weights_page(tab: WeightsTab, as_of: str | None = None) -> WeightsPage:
    """Each part is read on its own, so a broken trades file still shows the live weights and history."""
    settings = tab.settings()
    target = tab.target()
    view = WeightsPage(target.name, str(tab.weights_path), settings)
    archive = tab.archive()
    changes = archive.entries()
    view.changes = change_rows(  # the same read serves the timeline
        changes, lambda factor: factor.capitalize(), sums_to_one=sums_to_one(DOMAIN_NAME)
    )
    try:
        live = live_weights(target)
        set_by = {f: change_that_set(changes, f, live[f]) for f in FACTORS}
        view.current = [WeightRow(f, live[f], change.live_from if (change := set_by[f]) else None) for f in FACTORS]
    except CalibrationPolicyError as error:
        view.current_error = str(error)
    if is_synthetic(tab.trades_path):
        view.synthetic = SYNTHETIC
    if view.current_error is None:
        try:
            view.analysis = analyze_trades(tab.trades_path, live, min_trades=settings.policy.min_sample_size).to_dict()
        except CalibrationPolicyError as error:
            view.analysis_error = str(error)
        if view.analysis and view.analysis.get("suggested_weights"):
            try:  # the in-sample estimate alone reads high on noise; show it beside unseen trades
                view.evidence = weights_evidence(tab, live)
            except CalibrationPolicyError as error:
                view.evidence_error = str(error)
    view.rule = rule_sentence(settings.policy)
    try:
        newest = open_store(tab.panel.history_dir).latest(MODEL_NAME, 1)
        view.latest = newest[-1] if newest else None
    except ValueError:
        view.latest = None  # an unreadable history shows no latest run; the rest of the page still works
    suggestions = tab.store().all(target=target.name)
    view.pending = [s for s in reversed(suggestions) if s.status == "pending"]
    view.reviewed = [s for s in reversed(suggestions) if s.status != "pending"][:REVIEWED_SHOWN]
    view.periods = list(reversed(archive.periods()))[:HISTORY_SHOWN]
    if as_of:
        view.as_of = _as_of_view(tab, as_of, "as_of")
    return view


def weights_evidence(tab: WeightsTab, live: dict[str, float]) -> dict[str, Any]:
    """The evidence of exactly the weights that would go live (smoothed, and bounded when auto mode is on),
    with auto mode's own settings; its budget; the fold chart's bar heights."""
    settings = tab.settings()
    seen = preview(tab.trades_path, live, settings, target_name=tab.target().name, history_dir=tab.panel.history_dir)
    if isinstance(seen.evidence, Unmeasured):
        raise WeightsError(seen.evidence.problem)
    evidence = seen.evidence
    assert evidence is not None  # the page asks only when the analysis suggests weights
    data = {**evidence.to_dict(), **{k: v for k, v in seen.to_dict().items() if k != "evidence"}}
    gate, budget = settings.auto.out_of_sample, seen.budget
    if budget is not None and not budget.spent_out:  # judged as auto mode's next look would judge it
        gate = gate.model_copy(update={"max_p_value": min(gate.max_p_value, budget.next_level)})
    passed, text, _ = out_of_sample_verdict(evidence, gate)
    gains = [fold["gain"]["equal_volume"] or 0.0 for fold in data["out_of_sample"]["folds"]]
    top = max([abs(g) for g in gains] + [1e-9])
    data["verdict"] = {"passed": passed, "text": text[0].upper() + text[1:] + "."}
    data["fold_bars"] = [
        {"fold": i + 1, "gain": g, "height": round(40 * abs(g) / top, 1), "up": g >= 0} for i, g in enumerate(gains)
    ]
    return data


def factor_rows(suggestion: Suggestion, live: dict[str, float]) -> list[dict[str, Any]]:
    """Suggested vs live weight per factor, with the analysis' rationale stored with the suggestion."""
    analysed = {row["factor"]: row for row in (suggestion.details.get("analysis") or {}).get("factors", [])}
    now = {factor: live.get(factor, suggestion.current_values.get(factor)) for factor in FACTORS}
    suggested = {factor: suggestion.values.get(factor) for factor in FACTORS}
    shown_now, shown_suggested = weights_shown(now), weights_shown(suggested)
    rows = []
    for factor in FACTORS:
        weight, live_weight = suggested[factor], now[factor]
        rows.append(
            {
                "factor": factor,
                "live": live_weight,
                "suggested": weight,
                "live_shown": shown_now[factor],
                "suggested_shown": shown_suggested[factor],
                "change": None if weight is None or live_weight is None else weight - live_weight,
                "rationale": analysed.get(factor, {}).get("rationale"),
                **{
                    k: analysed.get(factor, {}).get(k)
                    for k in ("correlation", "winners_avg", "losers_avg", "is_predictive")
                },
            }
        )
    return rows


# -- JSON shapes -----------------------------------------------------------------------------------


class SuggestionOut(BaseModel):
    suggestion_id: str
    status: Literal["pending", "approved", "rejected", "modified", "expired"]
    created_at: datetime
    values: dict[str, float] = Field(description="The suggested weights.")
    current_values: dict[str, float] = Field(description="The live weights when it was made.")
    reason: str
    run_id: str | None
    reviewed_at: datetime | None
    reviewer: str | None
    notes: str | None
    applied_values: dict[str, float] | None
    applied_at: datetime | None
    change_id: str | None
    expired_reason: str | None
    analysis: dict[str, Any] | None = Field(description="Per-factor statistics, rationale and estimated improvement.")

    @classmethod
    def of(cls, item: Suggestion) -> SuggestionOut:
        data = item.model_dump(include=set(cls.model_fields) - {"analysis"})
        return cls(**data, analysis=item.details.get("analysis"))


class PeriodOut(BaseModel):
    values: dict[str, float]
    since: datetime | None = Field(description="Null: before records began.")
    until: datetime | None = Field(description="Null: still live.")
    change_id: str | None = Field(
        description="The change that made it live (roll back to it by this id); null: the original."
    )
    kind: str | None
    actor: str | None
    reason: str | None
    suggestion_id: str | None
    run_id: str | None
    by: str | None = Field(None, description="Who made the change (a person, or policy / auto mode).")
    via: str | None = Field(
        None, description="From where: panel, api, cli, auto or python; null: recorded before this was kept."
    )

    @classmethod
    def of(cls, period: Period) -> PeriodOut:
        change = period.change
        return cls(
            values=period.values,
            since=period.since,
            until=period.until,
            change_id=change.change_id if change else None,
            kind=change.kind if change else None,
            actor=change.actor if change else None,
            reason=change.reason if change else None,
            suggestion_id=change.suggestion_id if change else None,
            run_id=change.run_id if change else None,
            by=(change.by or change.actor) if change else None,
            via=change.via if change else None,
        )


class WeightsOut(BaseModel):
    target: str
    file: str
    current: dict[str, float] | None
    current_error: str | None = Field(description="Why the live weights could not be read, if they could not.")
    last_updated: dict[str, datetime | None]
    pending: list[SuggestionOut]
    policy: str = Field(description="The weights policy in plain English.")
    auto: dict[str, Any] = Field(description="The auto-mode settings.")


class TradeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wallet_score: float
    cluster_score: float
    token_score: float
    context_score: float
    pnl: float
    win: bool
    closed_at: datetime | None = None

    @field_validator("closed_at")
    @classmethod
    def _supported_date(cls, value: datetime | None) -> datetime | None:
        from calibration_policy.limits import moment_problem

        problem = moment_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)  # FastAPI's 400 names the field: trades.3.closed_at is …
        return value


class AnalyzeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_trades: int = Field(default=100, ge=0, le=10_000_000)
    threshold: float = Field(default=TRADING_THRESHOLD, gt=0, le=1)
    trades: list[TradeIn] | None = Field(
        default=None, max_length=1_000_000, description="Trades to analyse; default: the panel's trades file."
    )


class SuggestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(default=TRADING_THRESHOLD, gt=0, le=1)


class ApplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suggestion_id: str = Field(min_length=1, max_length=128)
    weights: dict[str, float] | None = Field(
        default=None, description="Your own weights (modify); omit to approve as suggested."
    )
    notes: str | None = Field(default=None, max_length=2000)
    reviewer: str | None = Field(
        default=None, max_length=100, description="Ignored when the host knows who is signed in."
    )


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notes: str | None = Field(default=None, max_length=2000)
    reviewer: str | None = Field(default=None, max_length=100)


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, max_length=128, description="A change id from the history, or 'original'.")
    reviewer: str | None = Field(default=None, max_length=100)


class OutcomeOut(BaseModel):
    action: str
    message: str
    suggestion_id: str | None
    run_id: str | None
    analysis: dict[str, Any] | None


class ChangeOut(BaseModel):
    change_id: str
    reason: str
    values: dict[str, float]
    previous_values: dict[str, float]


class WeightsAsOfOut(BaseModel):
    at: datetime
    period: PeriodOut | None
    message: str


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 403, 404, 409, 503)}


# -- routes ----------------------------------------------------------------------------------------


def _suggestion(tab: WeightsTab, suggestion_id: str) -> Suggestion:
    """A suggestion of this tab's weights, in any state; anything else is a 404."""
    try:
        item = tab.store().get(suggestion_id)
    except ReviewError as error:
        raise PanelError(404, str(error)) from None
    if item.target != tab.target().name:
        raise PanelError(404, f"Suggestion {suggestion_id} is not a scoring-weights suggestion.")
    return item


def _pending(tab: WeightsTab, suggestion_id: str) -> Suggestion:
    """The suggestion, if it still waits; a processed one is a 409."""
    item = _suggestion(tab, suggestion_id)
    if item.status != "pending":
        raise PanelError(409, f"Suggestion {suggestion_id} was already {item.done_text()}; nothing was changed.")
    return item


def _review(
    tab: WeightsTab,
    suggestion_id: str,
    action: str,
    reviewer: Any,
    notes: str | None,
    weights: dict[str, Any] | None = None,
    via: str = "panel",
    expected_version: str | None = None,
) -> Suggestion:
    _pending(tab, suggestion_id)
    context = tab.context(reviewer, via)
    try:
        if action == "reject":
            return reject_suggestion(
                suggestion_id, target=tab.target(), notes=notes, expected_version=expected_version, context=context
            )
        if action == "modify":
            return modify_suggestion(
                suggestion_id,
                weights or {},
                target=tab.target(),
                notes=notes,
                expected_version=expected_version,
                context=context,
            )
        return approve_suggestion(
            suggestion_id, target=tab.target(), notes=notes, expected_version=expected_version, context=context
        )
    except SettledError as error:  # lost a race with another reviewer after the check above
        raise PanelError(409, str(error)) from None


def _weights_text(values: dict[str, float]) -> str:
    shown = weights_shown(values)
    return ", ".join(f"{f} {shown[f]}" for f in FACTORS if f in values)


def _form_weights(form: dict[str, str]) -> dict[str, float]:
    """The four typed weights as numbers; the domain then checks range and sum."""
    values = {}
    for factor in FACTORS:
        text = (form.get(factor) or "").strip()
        try:
            values[factor] = float(text)
        except ValueError:
            raise PanelError(400, f"{factor} weight must be a number, not {text!r:.40}.") from None
        if not math.isfinite(values[factor]):
            raise PanelError(400, f"{factor} weight must be a finite number, not {text!r:.40}.")
    return values


def _done_text(item: Suggestion, what: str) -> str:
    """What an approve or modify did: live now, or (four-eyes) waiting for another person."""
    if item.status == "pending":
        if item.modified_by and not item.approvals:
            return f"Modified suggestion {item.suggestion_id}; it now waits for another person's approval (four-eyes rule)."
        return (
            f"Your approval of suggestion {item.suggestion_id} is recorded ({len(item.approvals)} of "
            f"{item.required_approvals}); it waits for another person's approval."
        )
    return f"{what}: the weights are live now ({_weights_text(item.applied_values or {})}); the previous ones are archived."


def add_weights_routes(router: APIRouter, tab: WeightsTab) -> None:
    """The scoring-weights tab's routes, each group built by a small named builder."""
    tab.panel.domains[("calibration_policy_ui.weights", "calibration_policy_ui.api_weights")] = (
        DOMAIN_NAME,
        lambda: tab.settings().policy,
    )  # the permission guard checks these routes on the policy in force, narrowed by the weights' policy
    h = WeightsHelpers(tab)
    add_weights_page_routes(router, tab, h)
    add_weights_review_routes(router, tab, h)
    add_weights_rollback_route(router, tab, h)
    add_weights_read_api(router, tab, h)
    add_weights_change_api(router, tab, h)


class WeightsHelpers:
    """What the weights routes share: the CSRF check, the page render, the post/redirect/get answer."""

    html: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    api: dict[str, Any] = {"tags": [API_TAG], "responses": ERRORS}

    def __init__(self, tab: WeightsTab) -> None:
        self.tab = tab
        self.post: dict[str, Any] = {"dependencies": [Depends(self.csrf)], "include_in_schema": False}

    async def csrf(self, request: Request) -> None:
        await check_csrf(request, self.tab.panel.signer, self.tab.panel.trusted_origins)

    def page(
        self, request: Request, as_of: str | None = None, error: dict[str, Any] | None = None, status: int = 200
    ) -> Response:
        panel = self.tab.panel
        version = weights_version(self.tab)  # before reading the weights: a change in between makes a rollback stale
        view = build_weights_page(self.tab, as_of)
        context = {
            "view": view,
            "factors": FACTORS,
            "flash": read_flash(request, panel.signer),
            "user": panel.user(request),
            "factor_rows": factor_rows,
            "weights_shown": weights_shown,
            "error": error,
            "changes": view.changes,
            "weights_version": version,
            "domain_policy": view.settings.policy,
            "badge": badge(view.latest) if view.latest else None,
            "words": glossary(view.settings.policy),
        }
        response = panel.render(request, "calibration_policy_ui/weights.html", context, status)
        clear_flash(request, response)
        return response

    def done(self, request: Request, message: str) -> Response:
        panel = self.tab.panel
        response = RedirectResponse(panel.link(request, "weights"), status_code=303)
        set_flash(request, response, panel.signer, message)
        return response

    @staticmethod
    def ok(model: BaseModel) -> JSONResponse:
        return JSONResponse(model.model_dump(mode="json"), headers=NO_STORE)


def weights_version(tab: WeightsTab) -> str | None:
    """The live weights' version (pipeline.live_version), sent back by the rollback forms; None when unreadable."""
    try:
        return pipeline.live_version(tab.target())
    except (CalibrationPolicyError, OSError):
        return None


def add_weights_page_routes(router: APIRouter, tab: WeightsTab, h: WeightsHelpers) -> None:
    panel, html, post, page, done = tab.panel, h.html, h.post, h.page, h.done

    @router.get("/weights/", name="calibration_policy_ui.weights", **html)
    def show(request: Request, as_of: Annotated[str | None, Query(max_length=40)] = None) -> Response:
        return page(request, as_of or None)

    @router.post("/weights/suggest", name="calibration_policy_ui.weights_suggest", **post)
    def suggest(request: Request) -> Response:
        outcome = suggest_weights(
            tab.trades_path,
            tab.target(),
            context=tab.context(panel.actor(request), "panel"),
        )
        return done(request, outcome.message)


def add_weights_review_routes(router: APIRouter, tab: WeightsTab, h: WeightsHelpers) -> None:
    post, page, done = h.post, h.page, h.done

    @router.post("/weights/suggestions/{suggestion_id}/approve", name="calibration_policy_ui.weights_approve", **post)
    def approve(request: Request, suggestion_id: str, reviewer: Text = "", notes: Notes = "") -> Response:
        item = _review(tab, suggestion_id, "approve", tab.reviewer(request, reviewer), notes)
        return done(request, _done_text(item, "Approved"))

    @router.post("/weights/suggestions/{suggestion_id}/modify", name="calibration_policy_ui.weights_modify", **post)
    def modify(
        request: Request,
        suggestion_id: str,
        wallet: Text = "",
        cluster: Text = "",
        token: Text = "",
        context: Text = "",
        reviewer: Text = "",
        notes: Notes = "",
    ) -> Response:
        typed = {"wallet": wallet, "cluster": cluster, "token": token, "context": context}
        try:
            item = _review(tab, suggestion_id, "modify", tab.reviewer(request, reviewer), notes, _form_weights(typed))
        except (PanelError, CalibrationPolicyError) as error:
            status = error.status if isinstance(error, PanelError) else 400
            if status == 409 or isinstance(error, (PermissionDeniedError, PermissionCheckError, StaleChangeError)):
                raise
            message = error.message if isinstance(error, PanelError) else str(error)
            # Show the form again with what was typed, so a wrong sum is fixed, not retyped.
            return page(
                request,
                error={
                    "suggestion_id": suggestion_id,
                    "message": message,
                    "typed": typed,
                    "notes": notes,
                    "reviewer": reviewer,
                },
                status=status,
            )
        return done(request, _done_text(item, "Modified and approved"))

    @router.post("/weights/suggestions/{suggestion_id}/reject", name="calibration_policy_ui.weights_reject", **post)
    def reject(request: Request, suggestion_id: str, reviewer: Text = "", notes: Notes = "") -> Response:
        _review(tab, suggestion_id, "reject", tab.reviewer(request, reviewer), notes)
        return done(request, f"Rejected suggestion {suggestion_id}; the live weights stay as they were.")


def add_weights_rollback_route(router: APIRouter, tab: WeightsTab, h: WeightsHelpers) -> None:
    post, done = h.post, h.done

    @router.post("/weights/rollback", name="calibration_policy_ui.weights_rollback", **post)
    def roll_back(
        request: Request,
        to: Annotated[str, Form(min_length=1, max_length=128)],
        reviewer: Text = "",
        version: Annotated[str | None, Form(max_length=64)] = None,
    ) -> Response:
        """Roll back (or undo a change); ``version`` is what the page showed: a change made since is a 409."""
        entry = pipeline.roll_back(
            tab.target(),
            to,
            domain=DOMAIN_NAME,
            expected_version=version or None,
            context=tab.context(tab.reviewer(request, reviewer), "panel"),
        )
        return done(
            request,
            f"{entry.reason.removeprefix('Applied: ').capitalize()}: live now {_weights_text(entry.new_values)}.",
        )


def add_weights_read_api(router: APIRouter, tab: WeightsTab, h: WeightsHelpers) -> None:
    api, ok, csrf = h.api, h.ok, h.csrf

    @router.get("/api/weights", name="calibration_policy_ui.api_weights", response_model=WeightsOut, **api)
    def api_weights() -> Any:
        """The live weights (with when each last changed), suggestions waiting, the policy and auto mode.

        Its ETag is the live weights' version: send it back as ``If-Match`` with a change."""
        view = build_weights_page(tab)
        response = ok(
            WeightsOut(
                target=view.target_name,
                file=view.path,
                current=view.live or None,
                current_error=view.current_error,
                last_updated={row.factor: row.last_updated for row in view.current},
                pending=[SuggestionOut.of(s) for s in view.pending],
                policy=view.settings.policy.explain(),
                auto=view.settings.auto.model_dump(mode="json"),
            )
        )
        if (version := weights_version(tab)) is not None:  # unreadable weights have no version (current_error says why)
            response.headers["ETag"] = f'"{version}"'
        return response

    @router.post(
        "/api/weights/analyze", name="calibration_policy_ui.api_weights_analyze", dependencies=[Depends(csrf)], **api
    )
    def api_analyze(body: AnalyzeIn) -> Any:
        """Correlation, winners' and losers' averages per factor, suggested weights, estimated improvement.

        Changes nothing. Without ``trades`` the panel's trades file is analysed.
        """
        import pandas as pd

        trades: Any = tab.trades_path
        if body.trades is not None:
            trades = pd.DataFrame([t.model_dump() for t in body.trades], columns=list(TradeIn.model_fields))
            if trades["closed_at"].isna().all():
                trades = trades.drop(columns="closed_at")
        analysis = analyze_trades(
            trades, live_weights(tab.target()), min_trades=body.min_trades, threshold=body.threshold
        )
        return JSONResponse(analysis.to_dict(), headers=NO_STORE)

    @router.get(
        "/api/weights/suggestion/{suggestion_id}",
        name="calibration_policy_ui.api_weights_suggestion",
        response_model=SuggestionOut,
        **api,
    )
    def api_suggestion(suggestion_id: str) -> Any:
        """One suggestion, in any state, with its analysis."""
        return ok(SuggestionOut.of(_suggestion(tab, suggestion_id)))

    @router.get("/api/weights/evidence", name="calibration_policy_ui.api_weights_evidence", **api)
    def api_evidence() -> Any:
        """The suggestion's evidence: in-sample beside walk-forward on unseen trades, bootstrap and shuffled baseline."""
        return JSONResponse(weights_evidence(tab, live_weights(tab.target())))

    @router.get(
        "/api/weights/history", name="calibration_policy_ui.api_weights_history", response_model=list[PeriodOut], **api
    )
    def api_history() -> Any:
        """Every weight set that was live, newest first, with who changed it and why."""
        return JSONResponse(
            [PeriodOut.of(p).model_dump(mode="json") for p in reversed(tab.archive().periods())], headers=NO_STORE
        )

    @router.get(
        "/api/weights/as-of", name="calibration_policy_ui.api_weights_as_of", response_model=WeightsAsOfOut, **api
    )
    def api_as_of(
        at: Annotated[
            str, Query(min_length=4, max_length=40, description="YYYY-MM-DD (the end of that UTC day) or an ISO time.")
        ],
    ) -> Any:
        """The weights that were live at a moment."""
        view = _as_of_view(tab, at, "at")
        return ok(
            WeightsAsOfOut(
                at=view.moment, period=PeriodOut.of(view.period) if view.period else None, message=view.message
            )
        )


def add_weights_change_api(router: APIRouter, tab: WeightsTab, h: WeightsHelpers) -> None:
    panel, api, ok, csrf = tab.panel, h.api, h.ok, h.csrf

    @router.post(
        "/api/weights/suggest",
        name="calibration_policy_ui.api_weights_suggest",
        response_model=OutcomeOut,
        dependencies=[Depends(csrf)],
        **api,
    )
    def api_suggest(request: Request, body: SuggestIn | None = None) -> Any:
        """Analyse the trades file, record the run and leave a pending suggestion (if the policy's rules pass)."""
        outcome = suggest_weights(
            tab.trades_path,
            tab.target(),
            threshold=(body or SuggestIn()).threshold,
            context=tab.context(panel.actor(request), "api"),
        )
        return ok(
            OutcomeOut(
                action=outcome.action,
                message=outcome.message,
                suggestion_id=outcome.suggestion.suggestion_id if outcome.suggestion else None,
                run_id=outcome.run.run_id if outcome.run else None,
                analysis=outcome.analysis.to_dict() if outcome.analysis else None,
            )
        )

    @router.post(
        "/api/weights/apply",
        name="calibration_policy_ui.api_weights_apply",
        response_model=SuggestionOut,
        dependencies=[Depends(csrf)],
        **api,
    )
    def api_apply(request: Request, body: ApplyIn) -> Any:
        """Approve a suggestion as it is, or (with ``weights``) modify it: the weights go live, the old ones are archived.

        With ``If-Match: "<ETag of /api/weights>"`` weights changed since are never overwritten: 409, nothing changed."""
        action = "approve" if body.weights is None else "modify"
        return ok(
            SuggestionOut.of(
                _review(
                    tab,
                    body.suggestion_id,
                    action,
                    tab.reviewer(request, body.reviewer),
                    body.notes,
                    body.weights,
                    via="api",
                    expected_version=if_match(request),
                )
            )
        )

    @router.post(
        "/api/weights/reject/{suggestion_id}",
        name="calibration_policy_ui.api_weights_reject",
        response_model=SuggestionOut,
        dependencies=[Depends(csrf)],
        **api,
    )
    def api_reject(request: Request, suggestion_id: str, body: RejectIn | None = None) -> Any:
        """Close a suggestion without touching the live weights."""
        body = body or RejectIn()
        return ok(
            SuggestionOut.of(
                _review(tab, suggestion_id, "reject", tab.reviewer(request, body.reviewer), body.notes, via="api")
            )
        )

    @router.post(
        "/api/weights/rollback",
        name="calibration_policy_ui.api_weights_rollback",
        response_model=ChangeOut,
        dependencies=[Depends(csrf)],
        **api,
    )
    def api_rollback(request: Request, body: RollbackIn) -> Any:
        """Make an archived weight set live again; the rollback is itself an archived change.

        With ``If-Match: "<ETag of /api/weights>"`` weights changed since are never overwritten: 409, nothing changed."""
        entry = pipeline.roll_back(
            tab.target(),
            body.to,
            domain=DOMAIN_NAME,
            expected_version=if_match(request),
            context=tab.context(tab.reviewer(request, body.reviewer), "api"),
        )
        return ok(
            ChangeOut(
                change_id=entry.change_id,
                reason=entry.reason,
                values=entry.new_values,
                previous_values=entry.previous_values,
            )
        )


def settings_source(settings: SettingsArg, data_dir: Path | None = None) -> Callable[[], WeightsSettings]:
    """Settings given as an object, a callable asked per request, or a TOML path (default: the usual file,
    looked for in ``data_dir`` when given)."""
    if isinstance(settings, WeightsSettings):
        return lambda: settings
    if callable(settings):
        return settings
    return lambda: load_weights_settings(settings, data_dir=data_dir)


def create_weights_router(
    *,
    weights_path: PathArg = None,
    trades_path: PathArg = None,
    settings: SettingsArg = None,
    panel: Panel | None = None,
    dependencies: Sequence[Any] = (),
    **panel_options: Any,
) -> APIRouter:
    """The "Scoring weights" tab: HTML under ``/weights/``, JSON under ``/api/weights``.

    - ``weights_path``: the live weights JSON (default ``data/scoring_weights.json``).
    - ``trades_path``: the trades Parquet file analysed (default ``data/trades.parquet``).
    - ``settings``: :class:`WeightsSettings`, a callable returning them (asked per request), or a
      TOML path; default :func:`load_weights_settings` per request.
    - ``panel``: the calibration panel's :class:`Panel` when the tab joins the panel's router
      (``router.include_router(create_weights_router(panel=panel, ...))`` in ``create_router``) —
      then its folders, templates, layout, signer and user are shared (the folder, template,
      user, secret and origin arguments are ignored) and the panel's router already applies the
      host's auth. Without it the tab builds its own panel from ``panel_options`` (the folders,
      ``templates``, ``base_template``, ``current_user``, ``secret``, ``trusted_origins`` of
      ``create_router``) and serves the static files and a CSRF token itself.
    - ``dependencies``: the host's ``Depends(...)`` for auth, applied to every route of the tab.
    """
    source = settings_source(settings)
    standalone = panel is None
    if panel is None:
        panel = make_panel(
            policy_source=lambda: source().policy,
            target_for=lambda underlying: weights_target(path=weights_path or default_weights_file()),
            **panel_options,
        )
    tab = WeightsTab(
        panel, Path(weights_path or default_weights_file()), Path(trades_path or default_trades_file()), source
    )
    shared = panel

    def render_error(request: Request, status: int, message: str) -> Response:
        # Our own error page: it links back to this tab, which exists even without the panel's routes.
        return shared.render(
            request, "calibration_policy_ui/weights_error.html", {"status": status, "message": message}, status
        )

    guard = [Depends(permission_guard(panel))] if standalone else []  # the panel's router already has it
    router = APIRouter(dependencies=[*dependencies, *guard], route_class=panel_route_class(render_error))
    add_weights_routes(router, tab)
    if standalone:

        @router.get("/weights/static/{path:path}", name="calibration_policy_ui.static", include_in_schema=False)
        def static(request: Request, path: str) -> Response:
            return serve_asset(request, path)

        @router.get("/api/weights/csrf-token", name="calibration_policy_ui.api_weights_csrf", tags=[API_TAG])
        def api_csrf(request: Request) -> Any:
            """A token for ``X-CSRF-Token``; the matching cookie is set with this response."""
            token = csrf_token(request, panel.signer)
            response = JSONResponse({"csrf_token": token}, headers=NO_STORE)
            set_csrf_cookie(request, response, token)
            return response

    return router


def add_routes(router: APIRouter, context: Any) -> None:
    """The tab inside the panel: its files in the panel's data folder unless the host named them."""
    options, data = context.options, context.panel.data_dir
    tab = WeightsTab(
        context.panel,
        Path(options.get("weights_path") or data / "scoring_weights.json"),
        Path(options.get("trades_path") or data / "trades.parquet"),
        settings_source(options.get("settings"), data),
    )
    add_weights_routes(router, tab)
