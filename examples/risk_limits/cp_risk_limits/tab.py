"""The "Risk limits" tab of the calibration panel: the live limit of every desk and the latest runs.

Imported only when the panel builds its routes (FastAPI and Jinja are the panel's dependencies,
not the plugin's). The page is this package's own template, ``cp_risk_limits/risk_limits.html``;
it extends the panel's base template, so it sits in the host's layout like the built-in tabs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import jinja2
from fastapi import Query, Request
from fastapi.responses import HTMLResponse, Response

from calibration_policy import (
    CalibrationPolicyError,
    CalibrationUpdatePolicy,
    load_recent_calibration_history,
    status_report,
)

from .domain import DOMAIN_NAME, desk_label, limits_target, money
from .policy import limits_policy
from .source import BOOK

ROUTE = "risk_limits"  # the panel names its routes "calibration_policy_ui.<route>"
TEMPLATE = "cp_risk_limits/risk_limits.html"
RUNS_SHOWN = 10


@dataclass(frozen=True)
class LimitRow:
    desk: str
    label: str
    value: float
    last_updated: datetime | None
    realized_vol: float | None  # of the latest run, when it measured this desk


@dataclass(frozen=True)
class RunRow:
    run: Any  # a CalibrationRun
    limits: list[tuple[str, str]]  # (desk label, recommended limit as text)
    status: str


@dataclass
class RiskLimitsPage:
    book: str
    explanation: str
    target_name: str = ""
    rows: list[LimitRow] = field(default_factory=list)
    error: str | None = None
    runs: list[RunRow] = field(default_factory=list)
    latest: Any = None


def add_templates(panel: Any) -> None:
    """Let the panel's Jinja environment find this package's templates, after the host's and the panel's own."""
    env = panel.templates.env
    loaders = env.loader.loaders if isinstance(env.loader, jinja2.ChoiceLoader) else [env.loader]
    if any(getattr(loader, "package_name", None) == "cp_risk_limits" for loader in loaders):
        return
    env.loader = jinja2.ChoiceLoader([*loaders, jinja2.PackageLoader("cp_risk_limits", "templates")])


def _policy(panel: Any, options: Any) -> CalibrationUpdatePolicy:
    given = options.get("policy")
    if isinstance(given, CalibrationUpdatePolicy):
        return given
    policy = panel.policy()
    return policy if policy.domain == DOMAIN_NAME else limits_policy()


def _target(panel: Any, options: Any, policy: CalibrationUpdatePolicy, book: str) -> Any:
    if options.get("limits_path"):
        return limits_target(book, options["limits_path"])
    if panel.policy().domain == DOMAIN_NAME:
        return panel.target(book)  # the host's live config for the domain the panel governs
    return limits_target(book)


def build_page(panel: Any, options: Any) -> RiskLimitsPage:
    book = str(options.get("book") or BOOK)
    policy = _policy(panel, options)
    view = RiskLimitsPage(book=book, explanation=policy.explain())
    runs = [
        run
        for run in load_recent_calibration_history(book, limit=RUNS_SHOWN * 3, history_dir=panel.history_dir)
        if run.domain == DOMAIN_NAME
    ][-RUNS_SHOWN:]
    view.latest = runs[-1] if runs else None
    status = {
        "applied": "Applied",
        "not applied": "Not applied",
        "pending": "Waiting for approval",
        "undecided": "Undecided",
    }
    view.runs = [
        RunRow(run, [(desk_label(d), money(v)) for d, v in sorted(run.recommended.items())], status[run.status])
        for run in reversed(runs)
    ]
    measured = (view.latest.model_extra or {}).get("desks", {}) if view.latest else {}
    try:
        target = _target(panel, options, policy, book)
        view.target_name = str(getattr(target, "path", target.name))
        report = status_report(
            book, policy=policy, target=target, history_dir=panel.history_dir, archive_dir=panel.archive_dir
        )
    except CalibrationPolicyError as error:
        view.error = str(error)
        return view
    view.rows = [
        LimitRow(
            row.scope,
            desk_label(row.scope),
            row.value,
            row.last_updated,
            (measured.get(row.scope) or {}).get("realized_vol"),
        )
        for row in report.current
    ]
    return view


def add_routes(router: Any, context: Any) -> None:
    panel, options = context.panel, context.options
    add_templates(panel)

    @router.get(
        "/risk-limits/", name=f"calibration_policy_ui.{ROUTE}", response_class=HTMLResponse, include_in_schema=False
    )
    def show(request: Request, book: Annotated[str | None, Query(max_length=40)] = None) -> Response:
        view = build_page(panel, {**options, "book": book or options.get("book")})
        return panel.render(request, TEMPLATE, {"view": view, "money": money, "active_page": ROUTE, "tab_route": ROUTE})
