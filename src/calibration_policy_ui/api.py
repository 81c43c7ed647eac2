"""The JSON API on the same router: what the page shows, for scripts and other tools.

Response models are pydantic, so the host's OpenAPI schema documents every field; errors are
``{"detail": "<one plain sentence>"}`` with a 4xx status. ``POST /api/force-apply`` needs the
CSRF token from ``GET /api/csrf-token`` in the ``X-CSRF-Token`` header, like any form.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from calibration_policy import CalibrationRun, open_store
from calibration_policy.errors import HistoryError
from calibration_policy.history import cursor_of
from calibration_policy.models import RunStatus
from calibration_policy.moments import parse_moment
from calibration_policy.pipeline import ForcedValues, force_apply, live_version
from calibration_policy.plugins import get_domain
from calibration_policy.stores import open_archive

from .errors import API_TAG, PanelError, RouteOptions
from .panel import Panel
from .security import check_csrf, csrf_token, set_csrf_cookie
from .views import checklist, governed_underlyings, labeler, live_state, pick_underlying

NO_STORE = {"Cache-Control": "no-store"}


class ErrorOut(BaseModel):
    detail: str = Field(description="One plain-English sentence saying what is wrong.")


class ScopeValueOut(BaseModel):
    scope: str
    label: str = Field(description='As shown to people, e.g. "Weekly (3–10d)".')
    value: float
    last_updated: datetime | None = Field(description="When it last took this value; null: before records began.")


class RuleOut(BaseModel):
    label: str
    passed: bool
    text: str
    needs: str | None = Field(description='What it would take to pass, e.g. "needs 78 more options".')


class RunOut(BaseModel):
    run_id: str
    timestamp: datetime
    underlying: str
    source: str
    recommended: dict[str, float]
    smoothed: dict[str, float] | None
    status: RunStatus
    applied: bool | None
    forced: bool
    reason: str | None = Field(description="The plain-English reason it went live or not.")
    applied_values: dict[str, float] | None
    sample_size: int
    vega_sum: float | None
    rules: list[RuleOut]

    @classmethod
    def of(cls, run: CalibrationRun) -> RunOut:
        return cls(
            run_id=run.run_id,
            timestamp=run.timestamp,
            underlying=run.underlying,
            source=run.source,
            recommended=run.recommended,
            smoothed=run.smoothed,
            status=run.status,
            applied=run.applied,
            forced=run.forced,
            reason=run.applied_reason,
            applied_values=run.applied_values,
            sample_size=run.sample_size,
            vega_sum=run.vega_sum,
            rules=[RuleOut(label=c.label, passed=c.passed, text=c.text, needs=c.needs) for c in checklist(run)],
        )


class PolicyOut(BaseModel):
    explanation: str
    settings: dict[str, Any]


class StatusOut(BaseModel):
    underlying: str
    title: str
    target: str | None
    current: list[ScopeValueOut]
    current_error: str | None = Field(description="Why the live config could not be read, if it could not.")
    latest_run: RunOut | None
    pending_suggestions: list[str] = Field(description="Ids of suggestions waiting for approval.")
    policy: PolicyOut


class RunsPage(BaseModel):
    underlying: str
    total: int
    offset: int
    limit: int
    before: str | None = Field(None, description="The cursor this page was asked for: runs older than that run.")
    runs: list[RunOut] = Field(description="Newest first.")
    next_before: str | None = Field(
        None,
        description="Give it as before= for the next (older) page; null on the oldest page. "
        "A cursor is <timestamp>,<run id>: keyset paging, as fast for the oldest page as the newest.",
    )


class ForceApplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    underlying: str = Field(min_length=1, max_length=40)
    run_id: str | None = Field(None, min_length=1, max_length=128, description="Default: the latest run.")
    use: ForcedValues = "smoothed"


class ForceApplyOut(BaseModel):
    applied: bool
    message: str
    reason: str
    values: dict[str, float]
    change_id: str | None
    run: RunOut


class AsOfOut(BaseModel):
    underlying: str
    at: datetime
    values: dict[str, float] | None
    since: datetime | None
    until: datetime | None
    change_id: str | None
    reason: str | None
    message: str


class CsrfOut(BaseModel):
    csrf_token: str = Field(description="Send it back in the X-CSRF-Token header of POST requests.")


Symbol = Annotated[str, Query(min_length=1, max_length=40, description="Underlying symbol, e.g. SPY.")]
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 403, 404, 409, 503)}


def add_api_routes(router: APIRouter, panel: Panel) -> None:
    """The JSON API, each group built by a small named builder."""
    add_status_api(router, panel)
    add_force_api(router, panel)
    add_as_of_api(router, panel)
    add_csrf_api(router, panel)


API: RouteOptions = {"tags": [API_TAG], "responses": ERRORS}


def known_underlying(panel: Panel, underlying: str) -> str:
    known = governed_underlyings(open_store(panel.history_dir), panel.policy())
    return pick_underlying(known, underlying)  # type: ignore[return-value]


def etag_header(panel: Panel, symbol: str) -> dict[str, str]:
    """The live config's version as an ETag: send it back as If-Match with a change."""
    try:
        return {"ETag": f'"{live_version(panel.target(symbol))}"'}
    except (ValueError, PanelError):
        return {}


def if_match(request: Request) -> str | None:
    """The version an API caller saw (``If-Match: "<ETag>"``), None without one or with ``*`` (no check)."""
    expected = (request.headers.get("if-match") or "").strip().removeprefix("W/").strip('"')[:64] or None
    return None if expected == "*" else expected


def _shown_settings(policy: Any) -> dict[str, Any]:
    """The policy's settings for any viewer: the store's address without its password."""
    from calibration_policy.redact import mask

    settings = policy.model_dump(mode="json")
    return {**settings, "store": mask(settings["store"]) if settings.get("store") else None}


def add_status_api(router: APIRouter, panel: Panel) -> None:
    @router.get("/api/status", name="calibration_policy_ui.api_status", response_model=StatusOut, **API)
    def api_status(underlying: Symbol) -> Any:
        """Current values with when each last changed, the latest run, and the policy in words."""
        symbol = known_underlying(panel, underlying)
        policy = panel.policy()
        latest = open_store(panel.history_dir).latest(symbol, limit=1)
        run = latest[0] if latest else None
        label = labeler(policy, run)
        live = live_state(panel, policy, symbol, label)
        return JSONResponse(
            StatusOut(
                underlying=symbol,
                title=get_domain(policy.domain).title,
                target=live.target_name,
                current=[
                    ScopeValueOut(scope=r.scope, label=r.label, value=r.value, last_updated=r.last_updated)
                    for r in live.current
                ],
                current_error=live.error,
                latest_run=RunOut.of(run) if run else None,
                pending_suggestions=[s.suggestion.suggestion_id for s in live.suggestions],
                policy=PolicyOut(explanation=policy.explain(), settings=_shown_settings(policy)),
            ).model_dump(mode="json"),
            headers={**NO_STORE, **etag_header(panel, symbol)},
        )

    @router.get("/api/runs", name="calibration_policy_ui.api_runs", response_model=RunsPage, **API)
    def api_runs(
        underlying: Symbol,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 10,
        before: Annotated[
            str | None, Query(max_length=200, description="A page's next_before: the runs older than it.")
        ] = None,
    ) -> Any:
        """Runs of one underlying, newest first, a page at a time (follow ``next_before``)."""
        symbol = known_underlying(panel, underlying)
        store = open_store(panel.history_dir)
        try:
            runs = store.latest(symbol, limit=limit + 1, offset=offset if not before else 0, before=before or None)
        except HistoryError as error:
            raise PanelError(400, str(error)) from None
        more = len(runs) > limit
        runs = runs[-limit:]  # the newest ``limit``; the one beyond only says there is a next page
        page = RunsPage(
            underlying=symbol,
            total=store.count(symbol),
            offset=offset,
            limit=limit,
            before=before or None,
            runs=[RunOut.of(r) for r in reversed(runs)],
            next_before=cursor_of(runs[0]) if more else None,
        )
        return JSONResponse(page.model_dump(mode="json"), headers=NO_STORE)


def add_force_api(router: APIRouter, panel: Panel) -> None:
    async def csrf(request: Request) -> None:
        await check_csrf(request, panel.signer, panel.trusted_origins)

    options: RouteOptions = {**API, "dependencies": [Depends(csrf)]}

    @router.post("/api/force-apply", name="calibration_policy_ui.api_force", response_model=ForceApplyOut, **options)
    def api_force(request: Request, body: ForceApplyIn) -> Any:
        """Apply the latest (or the given) run now, whatever the rules say; archived like any change.

        With ``If-Match: "<ETag of /api/status>"`` a change made since is never overwritten: 409, nothing changed.
        With ``force_requires_approval`` the values wait as a suggestion for a second person (``applied`` false)."""
        symbol = known_underlying(panel, body.underlying)
        policy = panel.policy()
        outcome = force_apply(
            symbol,
            target=panel.target(symbol),
            run_id=body.run_id,
            use=body.use,
            expected_version=if_match(request),
            context=panel.context(panel.actor(request), "api", policy),
        )
        what = get_domain(policy.domain).name.replace("_", " ")
        result = ForceApplyOut(
            applied=outcome.applied,
            reason=outcome.decision.reason,
            values=outcome.decision.values,
            change_id=outcome.change.change_id if outcome.change else None,
            run=RunOut.of(outcome.run),
            message=f"Applied calibration from {outcome.run.timestamp:%Y-%m-%d %H:%M} UTC to {what} ({symbol})."
            if outcome.applied
            else (
                f"The force-apply waits for a second person's approval as suggestion "
                f"{outcome.run.pending_suggestion}; the live values are unchanged."
            ),
        )
        return JSONResponse(result.model_dump(mode="json"), headers={**NO_STORE, **etag_header(panel, symbol)})


def as_of_answer(panel: Panel, symbol: str, moment: Any) -> AsOfOut:
    """What was live for ``symbol`` at ``moment``, from the archive of changes."""
    target = panel.target(symbol)
    archive = open_archive(panel.archive_dir, target.name)
    periods = archive.periods()
    period = archive.as_of(moment) if periods else None
    if not periods:
        return AsOfOut(
            underlying=symbol,
            at=moment,
            values=target.values(target.load()),
            since=None,
            until=None,
            change_id=None,
            reason=None,
            message="No change has been recorded, so the current values have been live since before records began.",
        )
    if period is None:
        first = periods[0].since
        return AsOfOut(
            underlying=symbol,
            at=moment,
            values=None,
            since=None,
            until=first,
            change_id=None,
            reason=None,
            message=f"The archive does not reach back that far; its first record starts {first:%Y-%m-%d %H:%M} UTC.",
        )
    since = period.since.strftime("%Y-%m-%d %H:%M UTC") if period.since else "before records began"
    return AsOfOut(
        underlying=symbol,
        at=moment,
        values=period.values,
        since=period.since,
        until=period.until,
        change_id=period.change.change_id if period.change else None,
        reason=period.change.reason if period.change else None,
        message=f"These values were live from {since}" + ("" if period.until else " and still are") + ".",
    )


def add_as_of_api(router: APIRouter, panel: Panel) -> None:
    @router.get("/api/as-of", name="calibration_policy_ui.api_as_of", response_model=AsOfOut, **API)
    def api_as_of(
        underlying: Symbol,
        at: Annotated[
            str,
            Query(
                min_length=1,
                max_length=40,
                description="YYYY-MM-DD (the end of that UTC day) or an ISO time; UTC when no zone is given.",
            ),
        ],
    ) -> Any:
        """What was live at a moment, from the archive of changes."""
        out = as_of_answer(panel, known_underlying(panel, underlying), parse_moment(at, "at"))
        return JSONResponse(out.model_dump(mode="json"), headers=NO_STORE)


def add_csrf_api(router: APIRouter, panel: Panel) -> None:
    @router.get("/api/csrf-token", name="calibration_policy_ui.api_csrf", response_model=CsrfOut, **API)
    def api_csrf(request: Request) -> Any:
        """A token for ``X-CSRF-Token``; the matching cookie is set with this response."""
        token = csrf_token(request, panel.signer)
        response = JSONResponse({"csrf_token": token}, headers=NO_STORE)
        set_csrf_cookie(request, response, token)
        return response
