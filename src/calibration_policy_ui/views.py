"""What the panel shows, computed from the core: the page is a template over these records.

Everything here reads through the core's public pieces (status report, run store, archive,
review store), so the panel can never disagree with the CLI about what is live or why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from calibration_policy import CalibrationRun, CalibrationUpdatePolicy, open_store
from calibration_policy.archive import change_words
from calibration_policy.errors import DataFolderError, HistoryError, TargetError
from calibration_policy.history import cursor_of
from calibration_policy.humanize import fmt_value_set
from calibration_policy.naming import check_underlying
from calibration_policy.pipeline import live_version
from calibration_policy.plugins import get_domain, rules
from calibration_policy.review import Suggestion
from calibration_policy.status import ScopeValue, status_report
from calibration_policy.stores import open_reviews
from calibration_policy.watch import change_when, verdicts, worse_words

from .chart import Chart, ChartPoint, build_chart
from .errors import PanelError
from .panel import Panel

logger = logging.getLogger(__name__)

PAGE_SIZE = 10
CHART_RUNS = 40
MAX_PAGE = 1_000_000

RULE_LABELS = {
    "bounds": "Within the allowed range",
    "max_step": "Step size",
    "min_delta": "Change large enough",
}


def evidence_words(domain_name: str) -> tuple[str, str]:
    """What the domain's sample counts and what its second evidence figure measures ("fills", "notional")."""
    try:
        domain = get_domain(domain_name)
        return domain.sample_unit, domain.evidence_label
    except ValueError:  # a domain whose plugin is gone: its runs still show
        return "samples", "total vega"


def rule_labels(domain_name: str) -> dict[str, str]:
    """Every rule's name for a person: the built-in rules' in the domain's words ("Enough fills in the sample",
    "Enough notional"), a plugin's as it registered it ("Widening capped")."""
    sample, evidence = evidence_words(domain_name)
    return {
        **{name: rule.label for name, rule in rules().items() if rule.label},
        "min_sample_size": f"Enough {sample} in the sample",
        "min_vega_sum": f"Enough {evidence}",
        **RULE_LABELS,
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
    idle: bool = False  # nothing to check (no limit set): shown as "Not set", not as "Passed"
    partly: str | None = None  # passed for some scopes only ("2 of 4"): shown as "Passed for 2 of 4"


@dataclass(frozen=True)
class ScopeRow:
    scope: str
    label: str
    recommended: float | None
    smoothed: float | None
    live: float | None
    # Each column's figure as the page shows it ({"recommended": "0.249", …}): a column is one value set, rounded
    # as a whole where the domain's values sum to 1 (humanize.fmt_value_set), so the shown figures do too.
    shown: dict[str, str] = field(default_factory=dict)


COLUMNS = ("recommended", "smoothed", "live")


def scope_rows(
    scopes: list[str], label, columns: Mapping[str, Mapping[str, float | None] | None], sums_to_one: bool
) -> list[ScopeRow]:
    """One row per scope of the value sets in ``columns`` (by ``COLUMNS`` name; a column not given is empty)."""
    sets = {name: {scope: (columns.get(name) or {}).get(scope) for scope in scopes} for name in COLUMNS}
    shown = {name: fmt_value_set(values, 3, sums_to_one=sums_to_one) for name, values in sets.items()}
    return [
        ScopeRow(
            scope,
            label(scope),
            sets["recommended"][scope],
            sets["smoothed"][scope],
            sets["live"][scope],
            {name: shown[name][scope] for name in COLUMNS},
        )
        for scope in scopes
    ]


def run_rows(run: CalibrationRun, live: Mapping[str, float], label, sums_to_one: bool) -> list[ScopeRow]:
    """A run's recommended and smoothed values beside the live ones, global first."""
    scopes = sorted(set(run.recommended) | set(live), key=lambda s: (s != "global", s))
    columns = {"recommended": run.recommended, "smoothed": run.smoothed, "live": live}
    return scope_rows(scopes, label, columns, sums_to_one)


@dataclass(frozen=True)
class SuggestionView:
    suggestion: Suggestion
    rows: list[ScopeRow]

    @property
    def run_time(self) -> datetime | None:
        """When the calibration behind it ran (a backfill suggests long after), so the heading names the run."""
        stamp = (self.suggestion.details or {}).get("calibration_timestamp")
        try:
            return datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
        except ValueError:
            return None


@dataclass
class PanelPage:
    underlyings: list[str]
    underlying: str | None
    title: str
    explanation: str
    policy: CalibrationUpdatePolicy
    live: LiveState | None = None
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
    rule: str = ""  # what decides, one sentence with the live thresholds
    changes: list[ChangeRow] = field(default_factory=list)  # newest first
    since: object = None  # when the live values went live (the archive's last change); None: before records began
    watch_notice: WatchNotice | None = None  # what the watch after apply did to the live values, or asks of a person

    @property
    def policy_changed_since(self) -> bool:
        """Whether the live values went live automatically under another policy than the one in force now (each
        decided run records its policy's fingerprint): "applied automatically by the policy" beside "then a person
        approves it" read as a contradiction."""
        from calibration_policy.policy_versions import policy_fingerprint

        if not self.changes or self.changes[0].kind != "update":
            return False
        applied = next((run for run in (self.latest, *self.history) if run is not None and run.applied), None)
        decided_by = getattr(applied, "policy_version", None)
        return decided_by is not None and decided_by != policy_fingerprint(self.policy)

    @property
    def parameter_label(self) -> str:
        """The value column's heading in the domain's words, with its unit: "IV multiplier", "Spread markup (bp)"."""
        try:
            return get_domain(self.policy.domain).value_heading()
        except ValueError:
            return "Value"

    @property
    def evidence_label(self) -> str:
        """What the domain's second evidence figure measures ("total vega", "notional")."""
        try:
            return str(get_domain(self.policy.domain).evidence_label)
        except ValueError:
            return "total vega"

    def evidence_amount(self, amount: float) -> str:
        try:
            return get_domain(self.policy.domain).evidence_amount(amount)
        except ValueError:
            return f"{amount:,.0f}"

    @property
    def sample_unit(self) -> str:
        """What the domain's sample counts ("options", "trades", "fills")."""
        try:
            return str(get_domain(self.policy.domain).sample_unit)
        except ValueError:
            return "samples"

    @property
    def dates_differ(self) -> bool:
        """Whether the scopes went live at different times (each row's ``live_since``); else the one "Live since"
        says it for all."""
        current = self.live.current if self.live is not None else []
        return any(row.live_since != self.since for row in current)


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
    labels = rule_labels(run.domain)
    return [
        Check(
            labels.get(v.get("code", ""), str(v.get("code", "rule")).replace("_", " ").capitalize()),
            bool(v.get("passed")),
            str(v.get("text", "")),
            v.get("needs"),
            bool(v.get("idle")),
            v.get("partly") if isinstance(v.get("partly"), str) else None,
        )
        for v in verdicts
        if isinstance(v, dict)
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
    version: str | None = None  # the live config's version (pipeline.live_version): forms send it back with a change
    shown: dict[str, str] = field(default_factory=dict)  # each live value as the page shows it (a set: fmt_value_set)


def live_state(panel: Panel, policy: CalibrationUpdatePolicy, underlying: str, label) -> LiveState:
    try:
        target = panel.target(underlying)
        version = live_version(
            target
        )  # before reading the values: a change in between makes a submit stale, never blind
        report = status_report(
            underlying, policy=policy, target=target, history_dir=panel.history_dir, archive_dir=panel.archive_dir
        )
        pending = open_reviews(panel.suggestions_dir).all(target=target.name, status="pending")
    except (TargetError, DataFolderError) as error:  # the runs still show; the alert says what to repair
        return LiveState([], str(error), None, [])
    except PanelError as error:
        return LiveState([], error.message, None, [])
    sums_to_one = get_domain(policy.domain).sums_to_one
    suggestions = [_suggestion_view(s, label, sums_to_one) for s in pending if s.underlying in (None, underlying)]
    shown = fmt_value_set({row.scope: row.value for row in report.current}, 3, sums_to_one=sums_to_one)
    return LiveState(report.current, None, target.name, suggestions, version, shown)


def governed_underlyings(store, policy: CalibrationUpdatePolicy) -> list[str]:
    """Only underlyings this panel governs: the scoring model's runs share the folder but have their own tab,
    so its internal run name never shows up as an "underlying"."""
    return [
        u for u in store.underlyings() if (latest := store.latest(u, limit=1)) and latest[0].domain == policy.domain
    ]


def build_page(
    panel: Panel,
    requested: str | None,
    page: int = 1,
    scope: str | None = None,
    before: str | None = None,
    after: str | None = None,
) -> PanelPage:
    policy = panel.policy()
    store = open_store(panel.history_dir)
    # Only underlyings this panel governs: the scoring model's runs share the folder but have their own tab.
    known = governed_underlyings(store, policy)
    underlying = pick_underlying(known, requested)
    view = PanelPage(
        known, underlying, get_domain(policy.domain).title, policy.explain(), policy, rule=rule_sentence(policy)
    )
    if underlying is None:
        return view
    recent = store.latest(underlying, limit=CHART_RUNS)
    view.latest = recent[-1] if recent else None
    label = labeler(policy, view.latest)
    view.live = live_state(panel, policy, underlying, label)
    current_values = {row.scope: row.value for row in view.live.current}
    entries = archive_changes(panel, view.live.target_name)
    view.since = entries[-1].live_from if entries else None
    name = view.live.target_name
    watched = verdicts(panel.archive_dir, panel.history_dir, name, policy) if entries and name else {}
    sums_to_one = get_domain(policy.domain).sums_to_one
    view.changes = change_rows(
        entries,
        label,
        watched=watched,
        data_dir=panel.history_dir.parent if panel.history_dir else None,
        sums_to_one=sums_to_one,
    )
    view.watch_notice = watch_notice(entries, watched, {sv.suggestion.suggestion_id for sv in view.live.suggestions})
    if view.latest is not None:
        view.latest_rows = run_rows(view.latest, current_values, label, sums_to_one)
        view.scopes = [(row.scope, row.label) for row in view.latest_rows if row.scope in view.latest.recommended]
    view.total = store.count(underlying)
    view.pages = max(1, -(-view.total // PAGE_SIZE))
    _history_page(view, store, underlying, page, before, after)
    view.scope = _pick_scope(view.scopes, scope, get_domain(policy.domain).parameter_label)
    for link in (view.newer, view.older):
        if link is not None and view.scope != "global":
            link["scope"] = view.scope
    view.chart = build_chart(
        [
            ChartPoint(
                r.timestamp,
                r.recommended.get(view.scope),
                (r.smoothed or {}).get(view.scope),
                live_after(r, view.scope),
            )
            for r in recent
        ],
        label(view.scope),
        policy.threshold_for(view.scope),
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
            newer = (
                store.position(underlying, after) - 1 - PAGE_SIZE
            )  # runs newer than the first one shown, less this page
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


def _pick_scope(scopes: list[tuple[str, str]], requested: str | None, what: str) -> str:
    """The scope to chart; ``what`` names a value in the domain's words ("spread markup") when none matches."""
    names = [s for s, _ in scopes]
    if requested in (None, ""):
        return "global" if "global" in names or not names else names[0]
    if requested not in names:
        raise PanelError(
            400, f"There is no {what} {requested!r:.40} to chart; choose one of: {', '.join(names) or 'global'}."
        )
    return requested


def _suggestion_view(item: Suggestion, label, sums_to_one: bool) -> SuggestionView:
    scopes = sorted(set(item.values) | set(item.current_values), key=lambda s: (s != "global", s))
    columns = {"recommended": item.values, "live": item.current_values}
    return SuggestionView(item, scope_rows(scopes, label, columns, sums_to_one))


# --- the first screen: four answers; and the changes timeline ------------------------------------

CHANGE_WHY = {
    "update": "Policy",
    "force": "Forced",
    "approve": "Approved",
    "modify": "Approved with changes",
    "rollback": "Rolled back",
    "auto": "Auto",
}


def rule_sentence(policy: CalibrationUpdatePolicy) -> str:
    """What decides, in one plain sentence with the live thresholds, built from the policy's rules.

    The built-in rules read their own options; a plugin rule speaks through its label and options,
    so a rule the panel has never heard of still appears in the sentence.
    """
    from calibration_policy.humanize import fmt_count, fmt_num, fmt_settings
    from calibration_policy.plugins import get_rule

    domain = get_domain(policy.domain)
    banded = policy.domain == "vol_surface"
    clauses: list[str] = []
    for name in policy.rules:
        if name == "min_sample_size":
            clauses.append(f"the run has at least {fmt_count(policy.min_sample_size)} {domain.sample_unit}")
        elif name == "min_vega_sum":
            clauses.append(f"their {domain.evidence_label} is at least {domain.evidence_amount(policy.min_vega_sum)}")
        elif name == "bounds" and (limits := policy.effective_bounds()) is not None:
            clauses.append(f"the value stays within {fmt_num(limits.min)}–{fmt_num(limits.max)}")
        elif name == "min_delta":
            average = (
                f"(the last {policy.smoothing_window_days:g} days of runs, {policy.smoothing_phrase(detail=False)})"
            )
            least, band = fmt_num(policy.min_delta_global), fmt_num(policy.min_delta_band)
            if not banded:
                text = f"the smoothed {domain.parameter_label} {average} moves at least {least} from the live one"
            elif band == least:
                text = f"the smoothed global or band value {average} moves at least {least} from the live one"
            else:
                text = f"the smoothed global value {average} moves at least {least} from the live one, or a DTE band's at least {band}"
            clauses.append(text)
        elif name not in ("max_step", "bounds"):
            rule = get_rule(name)
            settings = fmt_settings(policy.validated_rule_options(name))
            clauses.append(f"“{rule.label or name.replace('_', ' ')}” passes" + (f" ({settings})" if settings else ""))
    if not clauses:
        sentence = "A new value goes live whenever a run produces one"
    else:
        sentence = (
            "A new value goes live only when "
            + (", ".join(clauses[:-1]) + " and " if len(clauses) > 1 else "")
            + clauses[-1]
        )
    if policy.max_step is not None and "max_step" in policy.rules:
        sentence += f"; one update moves it by at most {fmt_num(policy.max_step)}"
    if policy.require_approval:
        sentence += ", and then a person approves it"
    return sentence + "."


def _domain_words(domain: Any) -> list[tuple[str, str]]:
    """The domain plugin's own glossary; a broken one is said in its place, and the page still shows."""
    try:
        return [(str(word), str(meaning)) for word, meaning in domain.glossary]
    except Exception as error:  # a plugin's bug: one line of the glossary, never the whole page
        logger.warning("The %s domain's glossary could not be read", domain.name, exc_info=True)
        return [
            (
                f"{domain.title or domain.name} words",
                f"The {domain.name} plugin's glossary could not be read ({type(error).__name__}: "
                f"{str(error)[:120]}); ask whoever maintains that plugin.",
            )
        ]


def glossary(policy: CalibrationUpdatePolicy) -> list[tuple[str, str]]:
    """The page's words explained for a reader who is not a quant: the domain's own, then those every domain shares."""
    domain = get_domain(policy.domain)
    things = domain.parameter_label_plural
    window = f"{policy.smoothing_window_days:g}"
    return [
        *_domain_words(domain),
        (
            "Calibration run",
            f"One comparison of the market with the model, usually once a day. It recommends new "
            f"{things}; whether they go live is the policy's decision.",
        ),
        (
            "Recommended, smoothed, live",
            f"Recommended: what one run found. Smoothed: the runs of the last {window} days, "
            f"{policy.smoothing_phrase(detail=False)}, so that one noisy day cannot move the live value. "
            f"Live: what the system uses now.",
        ),
        (
            "Policy",
            "The rules under “What decides” that a new value must pass before it goes live; every setting "
            "is listed under Policy, at the end of the page.",
        ),
        (
            "Force-apply",
            f"Makes a run's {things} live although the policy said no. It is recorded with your name "
            "and can be undone from the list of changes.",
        ),
    ]


@dataclass(frozen=True)
class ChangeRow:
    """One change of a live config: before → after, when, by whom, why; ``undo_to`` rolls back to before."""

    change_id: str
    live_from: object  # when the values went live in the data's time (the run it applied), else when it was made
    recorded: object  # when the change was written, shown only when it differs from live_from by more than a day
    actor: str
    why: str
    reason: str
    # (label, before, after, before as shown, after as shown), only what moved; each side is shown as the value set
    # it belongs to (humanize.fmt_value_set)
    diffs: list[tuple[str, float | None, float | None, str, str]]
    undo_to: str | None
    kind: str = ""
    watch: str | None = None  # the watch after apply, in words ("Watching: 3 of 6 runs; …")
    deliveries: tuple[dict, ...] = ()  # its notifications: endpoint, state (sent, retrying, failed …), last code

    @property
    def how(self) -> str:
        """How the values went live, as words after "Live since …": "applied automatically by the policy"."""
        return change_words(self.kind, self.actor)


def change_rows(
    entries: list,
    label,
    limit: int = 10,
    watched: dict | None = None,
    data_dir: object = None,
    sums_to_one: bool = False,
) -> list[ChangeRow]:
    """The newest ``limit`` changes, newest first; each can be undone by rolling back to the set before it.
    ``watched``: the watch after apply of each watched change, by change id; each row also says what became
    of its notifications (the outbox of ``data_dir``, None: the data root's). ``sums_to_one``: the domain's
    value sets must add up to 1 (``Domain.sums_to_one``)."""
    rows = []
    for i, entry in enumerate(entries):
        scopes = sorted(set(entry.previous_values) | set(entry.new_values), key=lambda s: (s != "global", s))
        before = fmt_value_set(entry.previous_values, 3, sums_to_one=sums_to_one)
        after = fmt_value_set(entry.new_values, 3, sums_to_one=sums_to_one)
        diffs = [
            (label(s), entry.previous_values.get(s), entry.new_values.get(s), before.get(s, "–"), after.get(s, "–"))
            for s in scopes
            if entry.previous_values.get(s) != entry.new_values.get(s)
        ]
        undo_to = entries[i - 1].change_id if i > 0 else "original"
        rows.append(
            ChangeRow(
                entry.change_id,
                entry.live_from,
                entry.at if entry.made_apart else None,
                _person(entry.by or entry.actor),
                CHANGE_WHY.get(entry.kind, entry.kind.capitalize()),
                entry.reason,
                diffs,
                undo_to,
                entry.kind,
                watched[entry.change_id].words if watched and entry.change_id in watched else None,
            )
        )
    shown = list(reversed(rows))[:limit]
    from calibration_policy.delivery import deliveries_by_change

    told = deliveries_by_change((row.change_id for row in shown), data_dir)
    return [replace(row, deliveries=tuple(told[row.change_id])) for row in shown]


def _person(actor: str) -> str:
    return {"policy": "the policy (automatic)", "auto": "auto mode", "user": "a panel user"}.get(actor, actor)


@dataclass(frozen=True)
class WatchNotice:
    """What the watch after apply did to the live values (or asks a person to do), for the top of the first screen."""

    text: str
    suggestion_id: str | None = None  # a proposed roll back waiting for approval: the notice links to it


def watch_notice(entries: list, watched: dict, waiting: set[str]) -> WatchNotice | None:
    """The notice when the newest change is a roll back the watch made (or a person approved from the watch's
    proposal), or when the live change failed its watch and its roll back waits for a person; else None."""
    if not entries:
        return None
    last = entries[-1]
    undone = getattr(last, "watch_of", None)
    if undone:
        change = next((e for e in entries if e.change_id == undone), None)
        verdict = watched.get(undone)
        if change is None or verdict is None:
            return None
        who = "The watch" if last.actor == "watch" else f"{last.by or last.actor}, approving the watch's proposal,"
        return WatchNotice(
            f"{who} rolled back the change of {change_when(change)}: {worse_words(verdict, 'after it')}, so the "
            f"values before it are live again (change {last.change_id})."
        )
    verdict = watched.get(last.change_id)
    if verdict is None or verdict.state != "failed":
        return None
    found = f"The watch found that the change of {change_when(last)} fits worse: {worse_words(verdict, 'after it')}."
    if verdict.suggestion_id in waiting:
        return WatchNotice(f"{found} A roll back to the values before it waits for approval.", verdict.suggestion_id)
    if verdict.action == "roll_back" and not verdict.rolled_back_by:
        return WatchNotice(f"{found} The watch may not roll it back: a person must (Undo in the list of changes).")
    return None


def archive_changes(panel: Panel, target_name: str | None) -> list:
    from calibration_policy.stores import open_archive

    if target_name is None:
        return []
    try:
        return open_archive(panel.archive_dir, target_name).entries()
    except (DataFolderError, OSError):
        return []


PLAIN_SETTINGS = {
    "domain": "What this policy governs",
    "min_delta_global": "Smallest change of the global value worth applying",
    "min_delta_band": "Smallest change of a band worth applying",
    "band_min_delta": "Bands with their own smallest change",
    "smoothing_window_days": "Runs from this many days back count in the smoothing",
    "smoothing": "How runs are smoothed",
    "smoothing_options": "Settings of the smoothing",
    "smoothing_skips_thin_runs": "Runs without enough data are left out of the smoothing",
    "rules": "Rules every update must pass, in this order",
    "max_step": "Largest move in one update",
    "bounds": "Allowed range of a value",
    "apply_scopes": "When an update applies, it writes",
    "require_approval": "A person approves every update before it goes live",
    "store": "Where runs, suggestions and the archive are kept",
    "rule_options": "Settings of the plugin rules",
    "watch_runs": "Runs after a change that check it against the values it replaced (0: no watch)",
    "watch_test": "The watch's test (sign, Wilcoxon signed-rank, or a permutation test per scope)",
    "watch_alpha": "The watch's significance level",
    "watch_tolerance": "The new values count as worse only when worse by more than",
    "watch_hard_limit": "The watch fails a change at once after runs in a row this much worse",
    "watch_action": "What a failed watch does",
}
SMOOTHING_NAMES = {
    "ewma": "exponentially weighted average (recent runs count more)",
    "rolling_median": "median of the runs",
}


def setting_rows(policy: CalibrationUpdatePolicy) -> list[tuple[str, str]]:
    """Every policy setting as a plain phrase and a plain value: yes/no, "no limit", names not codes."""
    from calibration_policy.plugins import get_rule
    from calibration_policy.redact import mask

    def plain(value: object) -> str:
        if value is None:
            return "not set"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, float):
            return f"{value:,.6g}"
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, (list, tuple)):
            return ", ".join(plain(v) for v in value) or "none"
        if isinstance(value, dict):
            return "; ".join(f"{str(k).replace('_', ' ')}: {plain(v)}" for k, v in value.items()) or "none"
        return str(value).replace("_", " ")

    def rule_label(name: str) -> str:
        try:
            return labels.get(name) or get_rule(name).label or name.replace("_", " ")
        except ValueError:
            return name.replace("_", " ")

    special = {
        "domain": lambda v: get_domain(v).title,
        "smoothing_window_days": lambda v: f"{v:g} days",
        "smoothing": lambda v: SMOOTHING_NAMES.get(v, plain(v)),
        "rules": lambda v: ", ".join(rule_label(n) for n in v) or "none",
        "max_step": lambda v: "no limit" if v is None else plain(v),
        "bounds": lambda v: (
            (
                f"the built-in safe range, {plain(b.min)}–{plain(b.max)}"
                if (b := policy.effective_bounds())
                else "no limit"
            )
            if v is None
            else plain(v)
        ),
        "apply_scopes": lambda v: (
            "all smoothed values together" if v == "all" else "only the values that changed enough"
        ),
        "store": lambda v: "the data folder" if v is None else mask(v),  # never a password on a screen
    }
    fields = type(policy).model_fields
    sample, evidence = evidence_words(policy.domain)
    labels = rule_labels(policy.domain)
    words = {"min_sample_size": f"Fewest {sample} a run needs", "min_vega_sum": f"Least {evidence} a run needs"}
    rows = []
    for key, value in policy.model_dump().items():
        info = fields.get(key)
        label = (
            words.get(key)
            or PLAIN_SETTINGS.get(key)
            or (info.description if info is not None and info.description else key.replace("_", " ").capitalize())
        )
        rows.append((label.rstrip("."), special[key](value) if key in special else plain(value)))
    return rows
