"""The HTML routes: the panel, the force-apply confirmation, approve / reject.

Every POST answers with a 303 redirect back to the panel and a flash message (post/redirect/get),
so a reload never repeats an action. Nothing here needs JavaScript.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from calibration_policy import open_store
from calibration_policy.naming import check_underlying
from calibration_policy.plugins import get_domain
from calibration_policy.review import ReviewStore
from calibration_policy.pipeline import approve_suggestion, force_apply, live_version, reject_suggestion

from .errors import PanelError
from .panel import Panel
from .security import check_csrf, clear_flash, read_flash, set_flash
from .static_files import serve_asset
from .views import MAX_PAGE, ScopeRow, badge, build_page, checklist, live_state, labeler

Symbol = Annotated[str, Form(min_length=1, max_length=40)]
Notes = Annotated[str, Form(max_length=2000)]


def forced_waits(outcome) -> str:
    """force_requires_approval: the forced values wait for a second person."""
    return (f"The force-apply waits for a second person's approval as suggestion {outcome.run.pending_suggestion}; "
            "the live values are unchanged.")


def add_page_routes(router: APIRouter, panel: Panel) -> None:
    async def csrf(request: Request) -> None:
        await check_csrf(request, panel.signer, panel.trusted_origins)

    def done(request: Request, underlying: str, message: str, kind: str = "success") -> Response:
        response = RedirectResponse(panel.link(request, "panel", {"underlying": underlying}), status_code=303)
        set_flash(request, response, panel.signer, message, kind)
        return response

    @router.get("/", name="calibration_policy_ui.panel", response_class=HTMLResponse, include_in_schema=False)
    def show_panel(
        request: Request,
        underlying: Annotated[str | None, Query(max_length=40)] = None,
        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
        scope: Annotated[str | None, Query(max_length=64)] = None,
        before: Annotated[str | None, Query(max_length=200)] = None,
        after: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        view = build_page(panel, underlying, page, scope, before=before, after=after)
        context = {"view": view, "flash": read_flash(request, panel.signer), "user": panel.user(request),
                   "badge": badge(view.latest) if view.latest else None,
                   "checks": checklist(view.latest) if view.latest else [], "status_badge": badge,
                   "version": _version(getattr(view, "underlying", None))}
        response = panel.render(request, "calibration_policy_ui/panel.html", context)
        clear_flash(request, response)
        return response

    def confirm_page(request: Request, underlying: str, error: str | None = None, use: str = "smoothed") -> Response:
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
        scopes = sorted(set(run.recommended) | set(current), key=lambda s: (s != "global", s))
        rows = [ScopeRow(s, label(s), run.recommended.get(s), (run.smoothed or {}).get(s), current.get(s)) for s in scopes]
        context = {"run": run, "rows": rows, "badge": badge(run), "underlying": underlying, "error": error,
                   "use": use, "target_name": live.target_name, "title": get_domain(policy.domain).title,
                   "version": live_version(panel.target(underlying))}
        return panel.render(request, "calibration_policy_ui/confirm.html", context, 400 if error else 200)

    @router.get("/force-apply", name="calibration_policy_ui.confirm_force", response_class=HTMLResponse, include_in_schema=False)
    def confirm_force(request: Request, underlying: Annotated[str, Query(min_length=1, max_length=40)]) -> Response:
        return confirm_page(request, underlying)

    @router.post("/force-apply", name="calibration_policy_ui.force", dependencies=[Depends(csrf)], include_in_schema=False)
    def force(
        request: Request,
        underlying: Symbol,
        run_id: Annotated[str, Form(min_length=1, max_length=128)],
        use: Annotated[Literal["smoothed", "recommended"], Form()] = "smoothed",
        confirm: Annotated[str | None, Form(max_length=8)] = None,
        version: Annotated[str | None, Form(max_length=64)] = None,
    ) -> Response:
        if confirm != "yes":
            return confirm_page(request, underlying, "Tick the box to confirm that you want to override the policy.", use)
        policy = panel.policy()
        target = panel.target(check_underlying(underlying))
        outcome = force_apply(underlying, target=target, policy=policy, history_dir=panel.history_dir,
                              archive_dir=panel.archive_dir, run_id=run_id, use=use, expected_version=version or None,
                              actor=panel.actor(request), via="panel", permissions=panel.permissions,
                              suggestions_dir=panel.suggestions_dir)
        what = get_domain(policy.domain).name.replace("_", " ")
        if outcome.route == "propose":
            return done(request, outcome.run.underlying, forced_waits(outcome))
        return done(request, outcome.run.underlying,
                    f"Applied calibration from {outcome.run.timestamp:%Y-%m-%d %H:%M} UTC to {what} ({outcome.run.underlying}).")

    def _version(underlying: str | None) -> str | None:
        """The live config's version the page shows; a form sends it back, so a stale submit changes nothing."""
        try:
            return live_version(panel.target(check_underlying(underlying))) if underlying else None
        except (ValueError, PanelError):
            return None

    def review(request: Request, suggestion_id: str, underlying: str, reviewer: str, notes: str, approve: bool,
               version: str | None = None) -> Response:
        store = ReviewStore(panel.suggestions_dir)
        item = store.get(suggestion_id)
        symbol = check_underlying(item.underlying or underlying)
        who = panel.actor(request, reviewer)
        checks = {"via": "panel", "policy": panel.policy(), "permissions": panel.permissions}
        if approve:
            item = approve_suggestion(store, suggestion_id, target=panel.target(symbol), reviewer=who, notes=notes,
                                      archive_dir=panel.archive_dir, history_dir=panel.history_dir,
                                      expected_version=version or None, **checks)
            message = f"Approved suggestion {suggestion_id}: its values are live now."
            if item.status == "pending":
                message = (f"Your approval of suggestion {suggestion_id} is recorded ({len(item.approvals)} of "
                           f"{item.required_approvals}); it waits for another person's approval.")
        else:
            reject_suggestion(store, suggestion_id, reviewer=who, notes=notes, target=panel.target(symbol),
                              archive_dir=panel.archive_dir, history_dir=panel.history_dir,
                              expected_version=version or None, **checks)
            message = f"Rejected suggestion {suggestion_id}; the live values stay as they were."
        return done(request, symbol, message)

    @router.post("/suggestions/{suggestion_id}/approve", name="calibration_policy_ui.approve",
                 dependencies=[Depends(csrf)], include_in_schema=False)
    def approve(request: Request, suggestion_id: str, underlying: Symbol,
                reviewer: Annotated[str, Form(max_length=100)] = "", notes: Notes = "",
                version: Annotated[str | None, Form(max_length=64)] = None) -> Response:
        return review(request, suggestion_id, underlying, reviewer, notes, approve=True, version=version)

    @router.post("/suggestions/{suggestion_id}/reject", name="calibration_policy_ui.reject",
                 dependencies=[Depends(csrf)], include_in_schema=False)
    def reject(request: Request, suggestion_id: str, underlying: Symbol,
               reviewer: Annotated[str, Form(max_length=100)] = "", notes: Notes = "",
               version: Annotated[str | None, Form(max_length=64)] = None) -> Response:
        return review(request, suggestion_id, underlying, reviewer, notes, approve=False, version=version)

    @router.get("/static/{path:path}", name="calibration_policy_ui.static", include_in_schema=False)
    def static(request: Request, path: str) -> Response:
        return serve_asset(request, path)

