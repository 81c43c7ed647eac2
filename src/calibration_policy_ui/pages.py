"""The HTML routes: the panel, the force-apply confirmation, approve / reject, undo (roll back).

Every POST answers with a 303 redirect back to the panel and a flash message (post/redirect/get),
so a reload never repeats an action. Nothing here needs JavaScript.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from calibration_policy import open_store, pipeline
from calibration_policy.errors import StaleChangeError
from calibration_policy.naming import check_underlying
from calibration_policy.pipeline import (
    ForcedValues,
    approve_suggestion,
    force_apply,
    reject_suggestion,
)
from calibration_policy.plugins import get_domain
from calibration_policy.stores import open_reviews

from .errors import PanelError, RouteOptions
from .panel import Panel
from .security import check_csrf, clear_flash, read_flash, set_flash
from .static_files import serve_asset
from .views import (
    MAX_PAGE,
    badge,
    build_page,
    checklist,
    glossary,
    labeler,
    live_state,
    run_rows,
    setting_rows,
)

Symbol = Annotated[str, Form(min_length=1, max_length=40)]
Notes = Annotated[str, Form(max_length=2000)]


def forced_waits(outcome) -> str:
    """force_requires_approval: the forced values wait for a second person."""
    return (
        f"The force-apply waits for a second person's approval as suggestion {outcome.run.pending_suggestion}; "
        "the live values are unchanged."
    )


def add_page_routes(router: APIRouter, panel: Panel) -> None:
    """The HTML routes, each group built by a small named builder."""
    actions = PageActions(panel)
    add_panel_page(router, panel, actions)
    add_force_routes(router, panel, actions)
    add_review_routes(router, panel, actions)
    add_rollback_route(router, panel, actions)
    add_static_route(router)


class PageActions:
    """What the page routes share: the CSRF check, the post/redirect/get answer, the panel render."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel

    async def csrf(self, request: Request) -> None:
        await check_csrf(request, self.panel.signer, self.panel.trusted_origins)

    def done(
        self, request: Request, underlying: str, message: str, kind: str = "success", anchor: str = ""
    ) -> Response:
        url = self.panel.link(request, "panel", {"underlying": underlying}) + anchor
        response = RedirectResponse(url, status_code=303)
        set_flash(request, response, self.panel.signer, message, kind)
        return response

    def show(
        self,
        request: Request,
        underlying: str | None,
        page: int = 1,
        scope: str | None = None,
        error: dict | None = None,
        status: int = 200,
        before: str | None = None,
        after: str | None = None,
    ) -> Response:
        panel = self.panel
        view = build_page(panel, underlying, page, scope, before=before, after=after)
        context = {
            "view": view,
            "flash": None if error else read_flash(request, panel.signer),
            "user": panel.user(request),
            "badge": badge(view.latest) if view.latest else None,
            "error": error,
            "checks": checklist(view.latest) if view.latest else [],
            "status_badge": badge,
            "settings": setting_rows(view.policy),
            "words": glossary(view.policy),
            # the live config's version the page shows; approve/reject send it back (stale → 409)
            "version": getattr(getattr(view, "live", None), "version", None),
        }
        response = panel.render(request, "calibration_policy_ui/panel.html", context, status)
        if not error:
            clear_flash(request, response)
        return response


def add_panel_page(router: APIRouter, panel: Panel, actions: PageActions) -> None:
    @router.get("/", name="calibration_policy_ui.panel", response_class=HTMLResponse, include_in_schema=False)
    def show_panel(
        request: Request,
        underlying: Annotated[str | None, Query(max_length=40)] = None,
        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
        scope: Annotated[str | None, Query(max_length=64)] = None,
        before: Annotated[str | None, Query(max_length=200)] = None,
        after: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        return actions.show(request, underlying, page, scope, before=before, after=after)


def confirm_page(
    panel: Panel, request: Request, underlying: str, error: str | None = None, use: str = "smoothed", status: int = 400
) -> Response:
    policy = panel.policy()
    underlying = check_underlying(underlying)
    latest = open_store(panel.history_dir).latest(underlying, limit=1)
    if not latest:
        raise PanelError(404, f"There is no calibration run for {underlying} to apply yet; run an update first.")
    run = latest[0]
    label = labeler(policy, run)
    live = live_state(panel, policy, underlying, label)
    if live.error:
        raise PanelError(409, live.error)
    current = {row.scope: row.value for row in live.current}
    rows = run_rows(run, current, label, get_domain(policy.domain).sums_to_one)
    context = {
        "run": run,
        "rows": rows,
        "badge": badge(run),
        "underlying": underlying,
        "error": error,
        "use": use,
        "target_name": live.target_name,
        "title": get_domain(policy.domain).title,
        "version": live.version,
    }
    return panel.render(request, "calibration_policy_ui/confirm.html", context, status if error else 200)


def add_force_routes(router: APIRouter, panel: Panel, actions: PageActions) -> None:
    @router.get(
        "/force-apply", name="calibration_policy_ui.confirm_force", response_class=HTMLResponse, include_in_schema=False
    )
    def confirm_force(request: Request, underlying: Annotated[str, Query(min_length=1, max_length=40)]) -> Response:
        return confirm_page(panel, request, underlying)

    @router.post(
        "/force-apply",
        name="calibration_policy_ui.force",
        dependencies=[Depends(actions.csrf)],
        include_in_schema=False,
    )
    def force(
        request: Request,
        underlying: Symbol,
        run_id: Annotated[str, Form(min_length=1, max_length=128)],
        use: Annotated[ForcedValues, Form()] = "smoothed",
        confirm: Annotated[str | None, Form(max_length=8)] = None,
        version: Annotated[str | None, Form(max_length=64)] = None,
    ) -> Response:
        if confirm != "yes":
            return confirm_page(
                panel, request, underlying, "Tick the box to confirm that you want to override the policy.", use
            )
        policy = panel.policy()
        target = panel.target(check_underlying(underlying))
        try:
            outcome = force_apply(
                underlying,
                target=target,
                run_id=run_id,
                use=use,
                expected_version=version or None,
                context=panel.context(panel.actor(request), "panel", policy),
            )
        except StaleChangeError as error:  # beside the confirm button, on the page re-drawn with the values live now
            return confirm_page(panel, request, underlying, str(error), use, status=409)
        what = get_domain(policy.domain).name.replace("_", " ")
        if outcome.route == "propose":
            return actions.done(request, outcome.run.underlying, forced_waits(outcome))
        return actions.done(
            request,
            outcome.run.underlying,
            f"Applied calibration from {outcome.run.timestamp:%Y-%m-%d %H:%M} UTC to {what} ({outcome.run.underlying}).",
        )


def add_review_routes(router: APIRouter, panel: Panel, actions: PageActions) -> None:
    def review(
        request: Request,
        suggestion_id: str,
        underlying: str,
        reviewer: str,
        notes: str,
        approve: bool,
        version: str | None = None,
    ) -> Response:
        store = open_reviews(panel.suggestions_dir)
        item = store.get(suggestion_id)
        governed = panel.policy().domain
        if item.domain != governed:  # refused before a live config is even looked up, let alone written
            raise PanelError(
                404,
                f"Suggestion {suggestion_id} suggests {get_domain(item.domain).parameter_label_plural}, not "
                f"{get_domain(governed).parameter_label_plural}: review it where those are governed; "
                "nothing was changed.",
            )
        symbol = check_underlying(item.underlying or underlying)
        who = panel.actor(request, reviewer)
        target, context = panel.target(symbol), panel.context(who, "panel")
        try:
            if approve:
                item = approve_suggestion(
                    suggestion_id, target=target, notes=notes, expected_version=version or None, context=context
                )
            else:
                reject_suggestion(
                    suggestion_id, target=target, notes=notes, expected_version=version or None, context=context
                )
        except (
            StaleChangeError
        ) as error:  # shown in that suggestion's form, on the page re-drawn with the values live now
            still = store.get(suggestion_id).status == "pending"  # else (superseded meanwhile) at the top of the page
            return actions.show(
                request,
                symbol,
                status=409,
                error={"field": "review" if still else "page", "suggestion_id": suggestion_id, "message": str(error)},
            )
        if not approve:
            message = f"Rejected suggestion {suggestion_id}; the live values stay as they were."
        elif item.status == "pending":
            message = (
                f"Your approval of suggestion {suggestion_id} is recorded ({len(item.approvals)} of "
                f"{item.required_approvals}); it waits for another person's approval."
            )
        else:
            message = f"Approved suggestion {suggestion_id}: its values are live now."
        return actions.done(request, symbol, message, anchor="#calibration-panel")  # replaces the form's own anchor

    post: RouteOptions = {"dependencies": [Depends(actions.csrf)], "include_in_schema": False}

    @router.post("/suggestions/{suggestion_id}/approve", name="calibration_policy_ui.approve", **post)
    def approve(
        request: Request,
        suggestion_id: str,
        underlying: Symbol,
        reviewer: Annotated[str, Form(max_length=100)] = "",
        notes: Notes = "",
        version: Annotated[str | None, Form(max_length=64)] = None,
    ) -> Response:
        return review(request, suggestion_id, underlying, reviewer, notes, approve=True, version=version)

    @router.post("/suggestions/{suggestion_id}/reject", name="calibration_policy_ui.reject", **post)
    def reject(
        request: Request,
        suggestion_id: str,
        underlying: Symbol,
        reviewer: Annotated[str, Form(max_length=100)] = "",
        notes: Notes = "",
        version: Annotated[str | None, Form(max_length=64)] = None,
    ) -> Response:
        return review(request, suggestion_id, underlying, reviewer, notes, approve=False, version=version)


def add_rollback_route(router: APIRouter, panel: Panel, actions: PageActions) -> None:
    @router.post(
        "/rollback",
        name="calibration_policy_ui.rollback",
        dependencies=[Depends(actions.csrf)],
        include_in_schema=False,
    )
    def roll_back(
        request: Request,
        underlying: Symbol,
        to: Annotated[str, Form(min_length=1, max_length=128)],
        change: Annotated[str, Form(max_length=128)] = "",
        reviewer: Annotated[str, Form(max_length=100)] = "",
        version: Annotated[str | None, Form(max_length=64)] = None,
    ) -> Response:
        """Undo a change: make the values live before it live again (itself an archived change).

        ``version`` is the live config the page showed: a change made since is never undone blindly (409)."""
        symbol = check_underlying(underlying)
        who = panel.actor(request, reviewer.strip())
        if who is None:  # shown next to the undo button that was pressed, which the page scrolls to
            error = {
                "field": "rollback",
                "change": change,
                "message": "Say who is undoing this change: type your name.",
            }
            return actions.show(request, symbol, error=error, status=400)
        policy = panel.policy()
        try:
            entry = pipeline.roll_back(
                panel.target(symbol),
                to,
                domain=policy.domain,
                expected_version=version or None,
                context=panel.context(who, "panel", policy),
            )
        except StaleChangeError as error:  # beside the undo button that was pressed, which the page scrolls to
            return actions.show(
                request,
                symbol,
                status=409,
                error={"field": "rollback" if change else "page", "change": change, "message": str(error)},
            )
        # The anchor replaces the form's own (#cp-change-…), so the page opens at its top, on the message.
        return actions.done(
            request, symbol, entry.reason.replace("Applied: rolled", "Rolled", 1) + ".", anchor="#calibration-panel"
        )


def add_static_route(router: APIRouter) -> None:
    @router.get("/static/{path:path}", name="calibration_policy_ui.static", include_in_schema=False)
    def static(request: Request, path: str) -> Response:
        return serve_asset(request, path)
