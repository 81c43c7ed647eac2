"""``calibration-policy weights …``: analyse trades, suggest, review, roll back and look back.

Registered by the ``scoring_weights`` default plugin through the ``register_commands`` hook, so
the core CLI knows nothing about weights. Also adds ``calibration-policy as-of``, which answers
"what was live on date X" for any archived target.
"""

from __future__ import annotations

import functools
import getpass
import shlex
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click
from rich.table import Column

from calibration_policy import pipeline
from calibration_policy.cli import (
    Callback,
    again,
    data_option,
    emit_json,
    json_option,
    print_table,
    spinner,
)
from calibration_policy.context import Context
from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.pipeline import (
    approve_suggestion,
    modify_suggestion,
    reject_suggestion,
)
from calibration_policy.review import Suggestion
from calibration_policy.stores import open_archive, open_reviews

from .analysis import MODEL_NAME, TRADING_THRESHOLD, default_trades_file, two_places
from .as_of import _as_of, _period_dict, _period_text, _weights_text, _when, weights_shown
from .budget import budget_for
from .domain import DOMAIN_NAME, FACTORS, weights_target
from .evidence import WIDTH, Unmeasured
from .flow import live_weights, run_auto, suggest_weights
from .preview import SYNTHETIC, is_synthetic, preview
from .settings import load_weights_settings


def _reviewer(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise CalibrationPolicyError("Say who is reviewing with --by NAME.") from None


def _print_analysis(analysis: Mapping[str, Any]) -> None:
    """An analysis (``WeightsAnalysis.to_dict()``, as runs and suggestions keep it): its message, one row
    per factor, then why each weight moves (a sentence too long for a table cell)."""
    suggested = analysis.get("suggested_weights")
    factors = analysis.get("factors", [])
    click.echo(f"{analysis.get('message', '')}\n")
    columns: list[str | Column] = [
        "Factor",
        *(Column(name, justify="right") for name in ("Corr", "Win avg", "Loss avg", "Predictive", "Current")),
    ]
    if suggested:
        columns += [Column("Suggested", justify="right"), Column("Change", justify="right")]

    def average(value):
        return "–" if value is None else f"{value:.2f}"

    current = weights_shown({row["factor"]: row["current_weight"] for row in factors})
    proposed = weights_shown({row["factor"]: row["suggested_weight"] for row in factors}) if suggested else {}
    rows = []
    for row in factors:
        cells = [
            row["factor"],
            two_places(row["correlation"]),
            average(row["winners_avg"]),
            average(row["losers_avg"]),
            "yes" if row["is_predictive"] else "no",
            current[row["factor"]],
        ]
        if suggested:
            cells += [proposed[row["factor"]], f"{row['change']:+.4f}"]
        rows.append(cells)
    print_table(columns, rows)
    lines = ["", *(f"{row['factor']} — {row['rationale']}" for row in factors)] if suggested else []
    lines += [f"Note: {row['note']}." for row in factors if row.get("note")]
    if analysis.get("adjustments"):
        lines.append("Adjusted: " + "; ".join(analysis["adjustments"]) + ".")
    if analysis.get("estimated_improvement"):
        lines += ["", "Estimated improvement: " + analysis["estimated_improvement"]["text"]]
    if lines:
        click.echo("\n".join(_wrapped(line) for line in lines))


def _wrapped(text: str) -> str:
    """A sentence on lines that fit 100 columns, later lines indented."""
    return textwrap.fill(text, WIDTH, subsequent_indent="  ", break_on_hyphens=False) if text else text


def _print_suggestion(item: Suggestion) -> None:
    click.echo(f"Suggestion {item.suggestion_id} ({item.status}), made {_when(item.created_at)}\n{item.reason}\n")
    analysis = item.details.get("analysis")
    if analysis:
        _print_analysis(analysis)
        click.echo()
    lines = [f"Suggested: {_weights_text(item.values)}", f"Live when suggested: {_weights_text(item.current_values)}"]
    if item.status == "expired":
        lines.append(f"Expired: {item.expired_reason}")
    elif item.status != "pending":
        lines.append(
            f"{item.status.capitalize()} at {_when(item.reviewed_at)} by {item.reviewer}"
            + (f": {item.notes}" if item.notes else "")
        )
        if item.applied_values:
            lines.append(f"Applied: {_weights_text(item.applied_values)} (change {item.change_id})")
    click.echo("\n".join(lines))


# -- options every weights command takes ----------------------------------------------------------------


@dataclass(frozen=True)
class Places:
    """Where a weights command reads and writes."""

    weights: str
    settings: str | None
    history_dir: str | None
    archive_dir: str | None
    suggestions_dir: str | None

    def target(self):
        return weights_target(path=self.weights)

    def policy(self):
        """The weights policy (its rules); its [permissions] and four-eyes settings narrow the policy in force's."""
        return load_weights_settings(self.settings).policy

    def context(self, actor: Any, policy: Any = None) -> Context:
        """What a weights command's change runs in: these folders, the weights policy, who acts, from the CLI."""
        return Context.build(
            policy=policy or self.policy(),
            actor=actor,
            via="cli",
            history_dir=self.history_dir,
            archive_dir=self.archive_dir,
            suggestions_dir=self.suggestions_dir,
        )


_PLACE_OPTIONS = [
    click.option(
        "--weights", metavar="FILE", help="The live weights JSON file (default: scoring_weights.json in the data root)."
    ),
    click.option(
        "--settings",
        metavar="FILE",
        help="Weights settings TOML with [policy] and [auto] (default $CALIBRATION_WEIGHTS_SETTINGS, "
        "else scoring_weights.toml in the data root, else built-in).",
    ),
    click.option(
        "--history-dir", metavar="DIR", help="Where runs are kept (default: calibration_runs in the data root)."
    ),
    click.option(
        "--archive-dir",
        metavar="DIR",
        help="Where replaced weights are kept (default: config_archive in the data root).",
    ),
    click.option(
        "--suggestions-dir", metavar="DIR", help="Where suggestions wait (default: suggestions in the data root)."
    ),
    data_option,
    json_option,
]


def _places(command: Callable[..., None]) -> Callable[..., None]:
    """Add the options every weights command takes; the command gets the folders as one ``Places``."""

    @functools.wraps(command)
    def run(
        weights: str,
        settings: str | None,
        history_dir: str | None,
        archive_dir: str | None,
        suggestions_dir: str | None,
        **rest: Any,
    ) -> None:
        command(Places(weights, settings, history_dir, archive_dir, suggestions_dir), **rest)

    for option in reversed(_PLACE_OPTIONS):
        run = option(run)
    return run


def _trades_options(command: Callback) -> Callback:
    command = click.option(
        "--threshold",
        type=float,
        default=TRADING_THRESHOLD,
        show_default=True,
        help="Trading threshold for the improvement estimate.",
    )(command)
    return click.option(
        "--trades",
        metavar="FILE",
        callback=lambda ctx, param, value: value or str(default_trades_file()),
        help="Trades Parquet file (default: trades.parquet in the data root).",
    )(command)


def _review_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option("--notes", help="Why, in a sentence; kept with the suggestion and the archive.")(
        _places(command)
    )
    command = click.option("--actor", "--by", "by", metavar="NAME", help="Who reviews (default: your login name).")(
        command
    )
    return click.argument("suggestion_id", metavar="SUGGESTION")(command)


def _again(command: str, places: Places) -> str:
    """A command to run next, on the same data root and the same folders this one used."""
    flags = [
        ("--weights", places.weights),
        ("--settings", places.settings),
        ("--history-dir", places.history_dir),
        ("--archive-dir", places.archive_dir),
        ("--suggestions-dir", places.suggestions_dir),
    ]
    return again(command) + "".join(f" {flag} {shlex.quote(str(value))}" for flag, value in flags if value)


def _suggest_hint(places: Places) -> str:
    """``weights suggest`` as it will work here: it needs a trades table."""
    command = _again("weights suggest", places)
    return command if default_trades_file().is_file() else command + " --trades FILE"


def _chosen(places: Places, suggestion_id: str) -> str:
    """An id, or ``pending``: the one suggestion waiting (a newer one expires the older). The weights commands
    are the scoring-weights aliases of ``review …``: another domain's suggestion is sent there."""
    if suggestion_id != "pending":
        item = open_reviews(places.suggestions_dir).get(suggestion_id)
        if item.domain != DOMAIN_NAME:
            from calibration_policy.plugins import get_domain

            what = get_domain(item.domain).parameter_label_plural
            raise CalibrationPolicyError(
                f"Suggestion {suggestion_id} suggests {what} for {item.target}, not for {DOMAIN_NAME}; nothing was "
                f"changed (review it with `calibration-policy review {click.get_current_context().info_name} "
                f"{suggestion_id}`)."
            )
        return suggestion_id
    waiting = open_reviews(places.suggestions_dir).all(target=places.target().name, status="pending")
    if not waiting:
        raise CalibrationPolicyError(f"No suggestion is waiting for review; make one with: {_suggest_hint(places)}")
    return waiting[-1].suggestion_id


def _print_review(item: Suggestion, who: str, as_json: bool) -> None:
    if as_json:
        emit_json(item.model_dump(mode="json"))
    elif item.status == "pending":
        if item.modified_by == who and not item.approvals:
            click.echo(
                f"Suggestion {item.suggestion_id} modified by {who}; it now waits for another person's approval "
                "(four-eyes rule); the live weights are unchanged."
            )
        else:
            click.echo(
                f"Approval of suggestion {item.suggestion_id} by {who} recorded ({len(item.approvals)} of "
                f"{item.required_approvals}); it waits for another person's approval; the live weights are unchanged."
            )
    elif item.applied_values:
        click.echo(
            f"Suggestion {item.suggestion_id} {item.status} by {who}; live weights now {_weights_text(item.applied_values)} "
            f"(previous ones archived as change {item.change_id})."
        )
    else:
        click.echo(f"Suggestion {item.suggestion_id} rejected by {who}; the live weights are unchanged.")


# -- commands ---------------------------------------------------------------------------------------


@click.group()
def weights() -> None:
    """Scoring-model weights (the CLI shows this group through a LazyGroup with its own help)."""


@weights.command()
@_trades_options
@click.option("--min-trades", type=int, default=100, show_default=True, help="Fewest trades for a suggestion.")
@click.option(
    "--evidence/--no-evidence",
    default=True,
    show_default=True,
    help="Also measure the weights that would go live on later trades they never saw "
    "(walk-forward, bootstrap, shuffled baseline).",
)
@click.option("--details", is_flag=True, help="Also show the out-of-sample figures fold by fold.")
@_places
def analyze(
    places: Places, trades: str, threshold: float, min_trades: int, evidence: bool, details: bool, as_json: bool
) -> None:
    """How each factor predicted PnL, the weights that would go live, and whether they hold on unseen trades."""
    target = places.target()
    with spinner("Analysing the trades…"):
        seen = preview(
            trades,
            live_weights(target),
            load_weights_settings(places.settings),
            target_name=target.name,
            history_dir=places.history_dir,
            threshold=threshold,
            min_trades=min_trades,
            evidence=evidence,
        )
    if as_json:
        emit_json({**seen.analysis.to_dict(), **seen.to_dict()})
        return
    if seen.synthetic:
        click.echo(f"{_wrapped(SYNTHETIC)}\n")
    _print_analysis(seen.analysis.to_dict())
    if isinstance(seen.evidence, Unmeasured):
        click.echo("\n" + _wrapped(f"Out-of-sample check: {seen.evidence.problem}"))
    elif seen.evidence is not None:
        click.echo(f"\nWould go live through {seen.route}.\n{seen.evidence.text(details=details)}")
    if seen.budget is not None:
        click.echo(f"\nAuto mode's budget for this weights file: {seen.budget.text()}.")


@weights.command()
@_trades_options
@click.option("--actor", "by", metavar="NAME", help="Who proposes (default: your login name).")
@_places
def suggest(places: Places, trades: str, threshold: float, by: str | None, as_json: bool) -> None:
    """Analyse, record the run and leave a suggestion for review."""
    settings = load_weights_settings(places.settings)
    with spinner("Analysing the trades…"):
        outcome = suggest_weights(
            trades,
            places.target(),
            threshold=threshold,
            context=places.context(_reviewer(by), settings.policy),
        )
    if as_json:
        emit_json(outcome.to_dict())
        return
    if is_synthetic(trades):
        click.echo(f"{_wrapped(SYNTHETIC)}\n")
    if outcome.analysis:
        _print_analysis(outcome.analysis.to_dict())
        click.echo()
    click.echo(outcome.message)


@weights.command()
@_trades_options
@click.option(
    "--actor", default="auto mode", show_default=True, metavar="NAME", help="Who auto mode acts as (needs propose)."
)
@_places
def auto(places: Places, trades: str, threshold: float, actor: str, as_json: bool) -> None:
    """One auto-mode step (for cron): suggest when enough new trades, maybe apply."""
    settings = load_weights_settings(places.settings)
    with spinner("Analysing the trades…"):
        outcome = run_auto(
            trades,
            places.target(),
            settings.auto,
            threshold=threshold,
            context=places.context(actor, settings.policy),
        )
    if as_json:
        emit_json(outcome.to_dict())
        return
    if is_synthetic(trades):
        click.echo(_wrapped(SYNTHETIC))
    click.echo(outcome.message)
    if settings.auto.enabled and settings.auto.out_of_sample_gate and not settings.auto.require_approval:
        target = places.target()
        budget = budget_for(settings.auto, places.history_dir, MODEL_NAME, target.name)
        click.echo(f"Auto mode's budget for {target.name}: {budget.text()}.")


@weights.command()
@click.argument("suggestion_id", metavar="SUGGESTION", required=False)
@_places
def show(places: Places, suggestion_id: str | None, as_json: bool) -> None:
    """Show the live weights and what waits for review, or one SUGGESTION."""
    store = open_reviews(places.suggestions_dir)
    if suggestion_id:
        item = store.get(suggestion_id)
        emit_json(item.model_dump(mode="json")) if as_json else _print_suggestion(item)
        return
    target = places.target()
    current = live_weights(target)
    pending = store.all(target=target.name, status="pending")
    if as_json:
        emit_json({"current": current, "pending": [p.model_dump(mode="json") for p in pending]})
        return
    click.echo(f"Live weights ({target.path}): {_weights_text(current)}")
    if not pending:
        click.echo("No suggestion is waiting for review.")
    for item in pending:
        click.echo()
        _print_suggestion(item)
        click.echo(f"\nApprove: {_again(f'weights approve {item.suggestion_id}', places)}")


@weights.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "modified", "rejected", "expired"]),
    help="Only suggestions in this state.",
)
@_places
def list_suggestions(places: Places, status: str | None, as_json: bool) -> None:
    """Weight suggestions, newest first."""
    items = open_reviews(places.suggestions_dir).all(target=places.target().name, status=status)
    if as_json:
        emit_json([item.model_dump(mode="json") for item in items])
        return
    if not items:
        click.echo(f"No weight suggestions yet — run `{_suggest_hint(places)}`.")
        return
    print_table(
        [Column("Suggestion", no_wrap=True), Column("Status", no_wrap=True), "Made", "Reviewer", "Weights"],
        [
            [item.suggestion_id, item.status, _when(item.created_at), item.reviewer or "–", _weights_text(item.values)]
            for item in reversed(items)
        ],
    )


@weights.command()
@_review_options
def approve(places: Places, suggestion_id: str, by: str | None, notes: str | None, as_json: bool) -> None:
    """Put a suggestion's weights live (the old ones are archived); SUGGESTION is its id, or `pending`."""
    who = _reviewer(by)
    item = approve_suggestion(
        _chosen(places, suggestion_id),
        target=places.target(),
        notes=notes,
        context=places.context(who),
    )
    _print_review(item, who, as_json)


def _factor_options(command: Callback) -> Callback:
    for factor in reversed(FACTORS):
        command = click.option(f"--{factor}", type=float, required=True, help=f"{factor} weight, 0–1.")(command)
    return command


@weights.command()
@_factor_options
@_review_options
def modify(
    places: Places, suggestion_id: str, by: str | None, notes: str | None, as_json: bool, **values: float
) -> None:
    """Put your own weights live instead of the suggested ones."""
    who = _reviewer(by)
    item = modify_suggestion(
        _chosen(places, suggestion_id),
        values,
        target=places.target(),
        notes=notes,
        context=places.context(who),
    )
    _print_review(item, who, as_json)


@weights.command()
@_review_options
def reject(places: Places, suggestion_id: str, by: str | None, notes: str | None, as_json: bool) -> None:
    """Close a suggestion; the live weights stay."""
    who = _reviewer(by)
    _print_review(
        reject_suggestion(
            _chosen(places, suggestion_id),
            notes=notes,
            target=places.target(),
            context=places.context(who),
        ),
        who,
        as_json,
    )


@weights.command("history")
@_places
def weights_history(places: Places, as_json: bool) -> None:
    """Every weight set that was live, with when, who and why."""
    periods = open_archive(places.archive_dir, places.target().name).periods()
    if as_json:
        emit_json([_period_dict(p) for p in reversed(periods)])
        return
    if not periods:
        click.echo("No weights change has been recorded yet.")
        return
    click.echo(
        f"Weight sets that were live, newest first (roll back with `{_again('weights rollback CHANGE', places)}`):\n"
    )
    for period in reversed(periods):
        click.echo(f"[{period.change.change_id if period.change else 'original'}] {_period_text(period)}")


@weights.command("rollback")
@click.argument("to", metavar="CHANGE")
@click.option("--actor", "--by", "by", metavar="NAME", help="Who rolls back (default: your login name).")
@click.option("--notes", help="Why, in a sentence; kept in the archive.")
@_places
def roll_back(places: Places, to: str, by: str | None, notes: str | None, as_json: bool) -> None:
    """Make an archived weight set live again (itself an archived change).

    CHANGE is the id of the change that made the set live (see `weights history`), or original.
    """
    entry = pipeline.roll_back(
        places.target(),
        to,
        domain=DOMAIN_NAME,
        notes=notes,
        context=places.context(_reviewer(by)),
    )
    emit_json(entry.model_dump(mode="json")) if as_json else click.echo(
        f"{entry.reason}; live weights now {_weights_text(entry.new_values)} (change {entry.change_id})."
    )


@weights.command("as-of")
@click.argument("when", metavar="DATE")
@_places
def weights_as_of(places: Places, when: str, as_json: bool) -> None:
    """Show the weights that were live at a date or a time.

    DATE is YYYY-MM-DD (the end of that UTC day) or an ISO time such as 2025-12-01T14:00Z.
    """
    _as_of(when, places.target().name, places.archive_dir, as_json)
