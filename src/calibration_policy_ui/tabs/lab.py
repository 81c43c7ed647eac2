"""The "Try a policy" tab: edit thresholds, replay them over the recorded runs beside the live policy,
read the differing decisions in plain words, and propose the candidate for approval.

A candidate never goes live from here: proposing writes a pending policy proposal; a reviewer
approves it (a new, archived policy version with who and why) or rejects it.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from fastapi import Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.pipeline import propose_policy, review_policy
from calibration_policy.policy_versions import PolicyProposals, PolicyVersions, decision_settings

from ..errors import PanelError
from ..lab_form import candidate_policy, form_fields
from ..security import check_csrf, clear_flash, read_flash, set_flash
from . import TabContext


def try_policy(panel, underlying: str | None, form: dict[str, Any], since: str | None = None) -> dict[str, Any]:
    """Replay the live policy and the candidate over ``underlying``'s runs: figures, chart, differences."""
    from calibration_policy.lab import compare
    from calibration_policy.replay import load_history
    from calibration_policy.stores import open_store

    current = panel.policy()
    view: dict[str, Any] = {
        "groups": form_fields(current),  # the inputs of each rule of the policy, in the domain's words
        "form": {k: v for k, v in form.items() if v is not None},
        "underlyings": open_store(panel.history_dir).underlyings(),
        "underlying": underlying,
        "since": since or "",
        "error": None,
        "result": None,
    }
    if not view["underlyings"]:
        view["error"] = "There are no calibration runs yet: nothing to replay."
        return view
    underlying = view["underlying"] = (underlying or view["underlyings"][0]).upper()
    if not form:
        return view
    try:
        candidate = candidate_policy(current, form)
        start = datetime.combine(date.fromisoformat(since), time.min, tzinfo=UTC) if since else None
        runs = load_history(panel.history_dir, underlying)
        comparison = compare(
            runs,
            {"current": current, "candidate": candidate},
            archive_dir=panel.archive_dir,
            since=start,
            target_name=lambda name: panel.target(name).name,
        )
    except (CalibrationPolicyError, ValueError) as error:
        view["error"] = str(error)
        return view
    now, cand = comparison.results["current"], comparison.results["candidate"]
    current_by_run = {d.run_id: d for d in now.decisions}
    changed = []
    for d in cand.decisions:
        was = current_by_run.get(d.run_id)
        if was is not None and (was.applied != d.applied or (d.applied and was.decision.values != d.decision.values)):
            changed.append(
                {
                    "date": d.timestamp.date().isoformat(),
                    "current": ("applies: " if was.applied else "holds: ") + was.reason,
                    "candidate": ("applies: " if d.applied else "holds: ") + d.reason,
                }
            )
    view["result"] = {
        "rows": [{"policy": name, **r.figures.to_dict()} for name, r in comparison.results.items()],
        "svg": comparison.svg(
            underlying,
            "global"
            if any("global" in d.recommended for d in cand.decisions)
            else next(iter(cand.decisions[0].recommended)),
        ),
        "changed": changed,
        "candidate": candidate,
        "candidate_json": json.dumps(decision_settings(candidate)),  # never the store's URL (and password) in a page
        "explain": candidate.explain(),
        "evidence": {"underlying": underlying, **{n: r.figures.to_dict() for n, r in comparison.results.items()}},
    }
    return view


def add_routes(router, context: TabContext) -> None:
    """The tab's page, its proposal routes (propose, approve, reject), and the proposals as JSON."""
    add_lab_page(router, context.panel)
    add_proposal_routes(router, context.panel)
    add_policy_api(router, context.panel)


class SettingChangeOut(BaseModel):
    setting: str = Field(description='A setting, nested tables dotted: "permissions.users.mallory".')
    before: Any = Field(description="Its value in the policy in force (null: not set).")
    after: Any = Field(description="Its value once approved (null: not set).")
    sensitive: str | None = Field(
        description='Why a reviewer must look twice ("who may do what", "four-eyes", "where the records are kept").'
    )


class ProposalOut(BaseModel):
    proposal_id: str
    at: datetime
    proposer: str
    reason: str
    status: Literal["pending", "approved", "rejected"]
    reviewer: str | None
    version_id: str | None
    changes: list[SettingChangeOut] = Field(
        description="Every setting approving it changes in the policy in force (for a settled one: what it changed)."
    )


def _proposal_out(proposals, proposal) -> ProposalOut:
    approved = proposal.status == "approved" and proposal.version_id
    changes = proposals.versions.changed_by(proposal.version_id) if approved else proposals.diff(proposal.proposal_id)
    return ProposalOut(**proposal.to_dict(), changes=[c.to_dict() for c in changes])


def add_policy_api(router, panel) -> None:
    from ..api import API, NO_STORE

    @router.get(
        "/api/policy/proposals",
        name="calibration_policy_ui.api_policy_proposals",
        response_model=list[ProposalOut],
        **API,
    )
    def api_policy_proposals() -> Any:
        """The policy proposals waiting for review, each with every setting it would change."""
        proposals = PolicyProposals(panel.data_dir)
        out = [_proposal_out(proposals, p).model_dump(mode="json") for p in proposals.pending()]
        return JSONResponse(out, headers=NO_STORE)

    @router.get(
        "/api/policy/proposals/{proposal_id}",
        name="calibration_policy_ui.api_policy_proposal",
        response_model=ProposalOut,
        **API,
    )
    def api_policy_proposal(proposal_id: Annotated[str, Path(max_length=80)]) -> Any:
        """One policy proposal and every setting it changes (or, once approved, changed)."""
        proposals = PolicyProposals(panel.data_dir)
        try:
            proposal = proposals.get(proposal_id)
        except CalibrationPolicyError as error:
            raise PanelError(404, str(error)) from None
        return JSONResponse(_proposal_out(proposals, proposal).model_dump(mode="json"), headers=NO_STORE)


def _back(panel, request: Request, message: str, kind: str = "success") -> Response:
    response = RedirectResponse(panel.link(request, "lab"), status_code=303)
    set_flash(request, response, panel.signer, message, kind)
    return response


def _under_review(proposals, proposal) -> tuple[Any, list[Any], str | None]:
    """A pending proposal with every setting it changes, or why it cannot be read as a policy any more."""
    try:
        return proposal, proposals.diff(proposal.proposal_id), None
    except CalibrationPolicyError as error:
        return proposal, [], str(error)


def add_lab_page(router, panel) -> None:
    @router.get("/lab", name="calibration_policy_ui.lab", response_class=HTMLResponse, include_in_schema=False)
    def lab_page(request: Request) -> Response:
        query = request.query_params
        names = [field.name for group in form_fields(panel.policy()) for field in group.fields]
        form = {k: query.get(k) for k in names if k in query}
        view = try_policy(panel, query.get("underlying"), form, query.get("since"))
        data_dir = panel.data_dir
        proposals = PolicyProposals(data_dir)
        context = {
            "view": view,
            "flash": read_flash(request, panel.signer),
            "user": panel.user(request),
            "proposals": [_under_review(proposals, p) for p in proposals.pending()],
            "versions": list(reversed(PolicyVersions(data_dir).versions()))[:10],
        }
        response = panel.render(
            request, "calibration_policy_ui/lab.html", context, 400 if view["error"] and form else 200
        )
        clear_flash(request, response)
        return response


def add_proposal_routes(router, panel) -> None:
    async def csrf(request: Request) -> None:
        await check_csrf(request, panel.signer, panel.trusted_origins)

    back = functools.partial(_back, panel)

    @router.post(
        "/lab/propose", name="calibration_policy_ui.lab_propose", dependencies=[Depends(csrf)], include_in_schema=False
    )
    def propose(
        request: Request,
        candidate: str = Form(max_length=20_000),
        reason: str = Form(max_length=2000),
        evidence: str = Form("", max_length=20_000),
    ) -> Response:
        from calibration_policy.limits import loads
        from calibration_policy.policy import CalibrationUpdatePolicy

        try:
            policy = CalibrationUpdatePolicy.from_dict(loads(candidate, "The candidate policy"))
            found = loads(evidence, "The evidence") if evidence else None
            proposal = propose_policy(
                policy,
                reason=reason,
                evidence=found,
                context=panel.context(panel.actor(request) or "someone", "panel"),
            )
        except (CalibrationPolicyError, ValueError) as error:
            return back(request, f"Not proposed: {error}", "error")
        return back(
            request, f"Proposed for approval ({proposal.proposal_id}); nothing changes until a reviewer approves it."
        )

    def review(request: Request, proposal_id: str, notes: str, approve: bool) -> Response:
        try:
            done = review_policy(
                proposal_id,
                approve=approve,
                notes=notes,
                context=panel.context(panel.actor(request) or "reviewer", "panel"),
            )
        except CalibrationPolicyError as error:
            return back(request, str(error), "error")
        if approve:
            return back(request, f"Approved: policy version {done.version_id} is live.")
        return back(request, "Rejected; the live policy is unchanged.")

    @router.post(
        "/lab/proposals/{proposal_id}/approve",
        name="calibration_policy_ui.lab_approve",
        dependencies=[Depends(csrf)],
        include_in_schema=False,
    )
    def approve(request: Request, proposal_id: str, notes: str = Form("", max_length=2000)) -> Response:
        return review(request, proposal_id, notes, True)

    @router.post(
        "/lab/proposals/{proposal_id}/reject",
        name="calibration_policy_ui.lab_reject",
        dependencies=[Depends(csrf)],
        include_in_schema=False,
    )
    def reject(request: Request, proposal_id: str, notes: str = Form("", max_length=2000)) -> Response:
        return review(request, proposal_id, notes, False)
