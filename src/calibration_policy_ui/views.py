"""What the panel shows, computed from the core: the page is a template over these records.

Everything here reads through the core's public pieces (status report, run store, archive,
review store), so the panel can never disagree with the CLI about what is live or why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from calibration_policy import CalibrationRun, CalibrationUpdatePolicy, open_store
from calibration_policy.errors import DataFolderError, HistoryError, TargetError
from calibration_policy.history import cursor_of
from calibration_policy.naming import check_underlying
from calibration_policy.plugins import get_domain
from calibration_policy.review import ReviewStore, Suggestion
from calibration_policy.status import ScopeValue, status_report

from .chart import Chart, ChartPoint, build_chart
from .errors import PanelError
from .panel import Panel

PAGE_SIZE = 10
CHART_RUNS = 40
MAX_PAGE = 1_000_000

RULE_LABELS = {
    "min_sample_size": "Enough options in the sample",
    "min_vega_sum": "Enough total vega",
    "bounds": "Within the allowed range",
    "max_step": "Step size",
    "min_delta": "Change large enough",
}


@dataclass(frozen=True)
class Badge:
    kind: str  # applied | not-applied | pending | undecided: a CSS class, never the only cue
    icon: str  # file name under static/icons
    text: str


@dataclass(frozen=True)
class Check:
    label: str
    passed: bool
    text: str
    needs: str | None


@dataclass(frozen=True)
class ScopeRow:
    scope: str
    label: str
    recommended: float | None
    smoothed: float | None
    live: float | None


@dataclass(frozen=True)
class SuggestionView:
    suggestion: Suggestion
    rows: list[ScopeRow]


@dataclass
class PanelPage:
    underlyings: list[str]
    underlying: str | None
    title: str
    explanation: str
    policy: CalibrationUpdatePolicy
    live: "LiveState | None" = None
    latest: CalibrationRun | None = None
    latest_rows: list[ScopeRow] = field(default_factory=list)
    history: list[CalibrationRun] = field(default_factory=list)
    page: int = 1
    pages: int = 1
    total: int = 0
    newer: dict | None = None  # the query of the "Newer runs" link (a keyset cursor), None on the newest page
    older: dict | None = None  # the query of the "Older runs" link, None on the oldest page
    chart: Chart | None = None
    scope: str = "global"
    scopes: list[tuple[str, str]] = field(default_factory=list)


def badge(run: CalibrationRun) -> Badge:
    if run.status == "applied":
        return Badge("applied", "check.svg", "Applied (forced by user)" if run.forced else "Applied")
    if run.status == "pending":
        return Badge("pending", "clock.svg", "Waiting for approval")
    if run.status == "not applied":
        return Badge("not-applied", "dash.svg", "Not applied")
    return Badge("undecided", "dash.svg", "Not decided yet")


def checklist(run: CalibrationRun) -> list[Check]:
    """Each rule's verdict as stored with the run: passed or not, its numbers, what it would take."""
    verdicts = (run.decision or {}).get("verdicts") or []
    return [
        Check(RULE_LABELS.get(v.get("code", ""), str(v.get("code", "rule")).replace("_", " ").capitalize()),
              bool(v.get("passed")), str(v.get("text", "")), v.get("needs"))
        for v in verdicts if isinstance(v, dict)
    ]


def live_after(run: CalibrationRun, scope: str) -> float | None:
    """The value live right after ``run``'s decision: what it applied, else what it found live."""
    if run.applied and run.applied_values and scope in run.applied_values:
        return run.applied_values[scope]
    for change in (run.decision or {}).get("scopes") or []:
        if isinstance(change, dict) and change.get("scope") == scope:
            return change.get("old")
    return None


def pick_underlying(known: list[str], requested: str | None) -> str | None:
    """The requested symbol (checked), else the first with history; unknown ones are a 404."""
    if requested is None or requested == "":
        return known[0] if known else None
    symbol = check_underlying(requested)
    if symbol not in known:
        listed = ", ".join(known) if known else "none yet"
        raise PanelError(404, f"There are no calibration runs for {symbol}. Underlyings with runs: {listed}.")
    return symbol


def labeler(policy: CalibrationUpdatePolicy, latest: CalibrationRun | None):
    domain = get_domain(policy.domain)
    details = {"bands": latest.bands} if latest is not None else None
    return lambda scope: domain.scope_label(scope, details)


@dataclass(frozen=True)
class LiveState:
    """What is live for one underlying; ``error`` says why it could not be read (the rest still shows)."""

    current: list[ScopeValue]
    error: str | None
    target_name: str | None
    suggestions: list[SuggestionView]


def live_state(panel: Panel, policy: CalibrationUpdatePolicy, underlying: str, label) -> LiveState:
    try:
        target = panel.target(underlying)
        report = status_report(underlying, policy=policy, target=target,
                               history_dir=panel.history_dir, archive_dir=panel.archive_dir)
        pending = ReviewStore(panel.suggestions_dir).all(target=target.name, status="pending")
    except (TargetError, DataFolderError) as error:  # the runs still show; the alert says what to repair
        return LiveState([], str(error), None, [])
    except PanelError as error:
        return LiveState([], error.message, None, [])
    suggestions = [_suggestion_view(s, label) for s in pending if s.underlying in (None, underlying)]
    return LiveState(report.current, None, target.name, suggestions)


def build_page(panel: Panel, requested: str | None, page: int = 1, scope: str | None = None,
               before: str | None = None, after: str | None = None) -> PanelPage:
    policy = panel.policy()
    store = open_store(panel.history_dir)
    # Only underlyings this panel governs: the scoring model's runs share the folder but have their own tab.
    known = [u for u in store.underlyings() if (latest := store.latest(u, limit=1)) and latest[0].domain == policy.domain]
    underlying = pick_underlying(known, requested)
    view = PanelPage(known, underlying, get_domain(policy.domain).title, policy.explain(), policy)
    if underlying is None:
        return view
    recent = store.latest(underlying, limit=CHART_RUNS)
    view.latest = recent[-1] if recent else None
    label = labeler(policy, view.latest)
    view.live = live_state(panel, policy, underlying, label)
    current_values = {row.scope: row.value for row in view.live.current}
    if view.latest is not None:
        run = view.latest
        scopes = sorted(set(run.recommended) | set(current_values), key=lambda s: (s != "global", s))
        view.latest_rows = [ScopeRow(s, label(s), run.recommended.get(s), (run.smoothed or {}).get(s),
                                     current_values.get(s)) for s in scopes]
        view.scopes = [(s, label(s)) for s in scopes if s in run.recommended]
    view.total = store.count(underlying)
    view.pages = max(1, -(-view.total // PAGE_SIZE))
    _history_page(view, store, underlying, page, before, after)
    view.scope = _pick_scope(view.scopes, scope)
    for link in (view.newer, view.older):
        if link is not None and view.scope != "global":
            link["scope"] = view.scope
    view.chart = build_chart(
        [ChartPoint(r.timestamp, r.recommended.get(view.scope), (r.smoothed or {}).get(view.scope), live_after(r, view.scope))
         for r in recent],
        label(view.scope), policy.threshold_for(view.scope),
    )
    return view


def _history_page(view: PanelPage, store, underlying: str, page: int, before: str | None, after: str | None) -> None:
    """One page of runs, newest first, found by keyset (``before``/``after`` a run's cursor): the
    oldest page costs what the newest does. ``page=N`` links still work (the index skips names)."""
    try:
        if before:
            view.page = store.position(underlying, before) // PAGE_SIZE + 1
            runs = store.latest(underlying, limit=PAGE_SIZE, before=before)
        elif after:
            newer = store.position(underlying, after) - 1 - PAGE_SIZE  # runs newer than the first one shown, less this page
            view.page = max(newer, 0) // PAGE_SIZE + 1
            runs = store.oldest(underlying, limit=PAGE_SIZE, after=after)
        elif page == view.pages and page > 1:  # the oldest page: its size is what is left over
            view.page = page
            runs = store.oldest(underlying, limit=view.total - (page - 1) * PAGE_SIZE)
        else:
            view.page = page
            runs = store.latest(underlying, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    except HistoryError as error:
        raise PanelError(400, str(error)) from None
    view.history = list(reversed(runs))
    if not view.history:
        return
    base = {"underlying": underlying}
    if view.page > 1:
        view.newer = {**base, "after": cursor_of(view.history[0])}
    if view.page < view.pages:
        view.older = {**base, "before": cursor_of(view.history[-1])}


def _pick_scope(scopes: list[tuple[str, str]], requested: str | None) -> str:
    names = [s for s, _ in scopes]
    if requested in (None, ""):
        return "global" if "global" in names or not names else names[0]
    if requested not in names:
        raise PanelError(400, f"There is no multiplier {requested!r:.40} to chart; choose one of: {', '.join(names) or 'global'}.")
    return requested  # type: ignore[return-value]


def _suggestion_view(item: Suggestion, label) -> SuggestionView:
    scopes = sorted(set(item.values) | set(item.current_values), key=lambda s: (s != "global", s))
    return SuggestionView(item, [ScopeRow(s, label(s), item.values.get(s), None, item.current_values.get(s)) for s in scopes])

