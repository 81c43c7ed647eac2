"""``calibration-policy review …`` and ``rollback``: review and roll back the changes of any domain from the CLI.

A suggestion names its domain, target and underlying, so one set of commands serves every domain a
plugin adds (the scoring weights' ``weights approve …`` are aliases of these for that one domain).
The policy in force decides who may do what; for a suggestion of another domain than that policy's,
``--policy`` names the domain's own policy file.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.hookspecs import hookimpl

if TYPE_CHECKING:
    import click

    from calibration_policy.policy import CalibrationUpdatePolicy
    from calibration_policy.review import Suggestion

STATUSES = ("pending", "approved", "modified", "rejected", "expired")


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "–"


def values_text(domain_name: str, values: dict[str, float] | None, details: dict[str, Any] | None = None) -> str:
    """``Global 1.0800, Weekly (3–10d) 1.0700``: each scope by its domain's label, global first; a set that sums
    to 1 is shown so that it does (``Domain.sums_to_one``)."""
    from calibration_policy.humanize import fmt_value_set
    from calibration_policy.plugins import get_domain, sums_to_one

    if not values:
        return "–"
    try:
        label = get_domain(domain_name).scope_label
    except ValueError:  # a suggestion of a domain no longer installed still lists
        label = lambda scope, details=None: scope  # noqa: E731
    shown = fmt_value_set(values, 4, sums_to_one=sums_to_one(domain_name))
    ordered = sorted(values, key=lambda scope: (scope != "global", scope))
    return ", ".join(f"{label(scope, details)} {shown[scope]}" for scope in ordered)


def suggestion_policy(item: Suggestion, policy_file: str | None, history_dir: str | None) -> CalibrationUpdatePolicy:
    """The policy that governs the suggestion's domain: the one in force, when it is that domain's."""
    from calibration_policy.cli import load_policy

    policy = load_policy(policy_file, history_dir)
    if policy.domain != item.domain:
        raise CalibrationPolicyError(
            f"Suggestion {item.suggestion_id} holds {item.domain} values, but the policy in force governs "
            f"{policy.domain}; pass --policy FILE with the {item.domain} policy."
        )
    return policy


def suggestion_target(item: Suggestion, config: str | None) -> Any:
    """The live config the suggestion was made for (``--config`` overrides where it is)."""
    from calibration_policy.cli import _target

    target = _target(item.domain, item.underlying or item.target, config)
    if target.name != item.target:
        raise CalibrationPolicyError(
            f"Suggestion {item.suggestion_id} was made for the live config {item.target!r}, not {target.name!r}; "
            "pass --config FILE with that config."
        )
    return target


def pick(store: Any, suggestion_id: str, underlying: str | None) -> Suggestion:
    """An id, or ``pending``: the newest suggestion waiting (for ``--underlying`` when given)."""
    if suggestion_id != "pending":
        return store.get(suggestion_id)
    waiting = [
        s for s in store.all(status="pending") if underlying is None or (s.underlying or "") == underlying.upper()
    ]
    if not waiting:
        raise CalibrationPolicyError(
            "No suggestion is waiting for review"
            + (f" for {underlying.upper()}" if underlying else "")
            + "; `calibration-policy review list` shows every suggestion."
        )
    return waiting[-1]


def print_suggestion(item: Suggestion) -> None:
    import click

    where = f"{item.domain}, {item.underlying or item.target}"
    lines = [
        f"Suggestion {item.suggestion_id} ({item.status}; {where}), made {_when(item.created_at)}",
        item.reason,
        "",
        f"Suggested: {values_text(item.domain, item.values, item.details)}",
        f"Live when suggested: {values_text(item.domain, item.current_values, item.details)}",
    ]
    if item.status == "expired":
        lines.append(f"Expired: {item.expired_reason}")
    elif item.status != "pending":
        lines.append(
            f"{item.status.capitalize()} at {_when(item.reviewed_at)} by {item.reviewer}"
            + (f": {item.notes}" if item.notes else "")
        )
        if item.applied_values:
            lines.append(
                f"Applied: {values_text(item.domain, item.applied_values, item.details)} (change {item.change_id})"
            )
    click.echo("\n".join(lines))


def print_review(item: Suggestion, who: str, as_json: bool) -> None:
    import click

    from calibration_policy.cli import emit_json

    if as_json:
        emit_json(item.model_dump(mode="json"))
    elif item.status == "pending":
        click.echo(
            f"{item.status.capitalize()}: suggestion {item.suggestion_id} has {len(item.approvals)} of "
            f"{item.required_approvals} approvals and waits for another person; the live values are unchanged."
        )
    elif item.applied_values:
        click.echo(
            f"Suggestion {item.suggestion_id} {item.status} by {who}; live now "
            f"{values_text(item.domain, item.applied_values, item.details)} (previous values archived as change "
            f"{item.change_id})."
        )
    else:
        click.echo(f"Suggestion {item.suggestion_id} {item.status} by {who}; the live values are unchanged.")


def parse_values(pairs: tuple[str, ...]) -> dict[str, float]:
    """``--set weekly=1.04`` pairs as numbers; a value that is not a plain number is refused, not coerced."""
    import math

    values: dict[str, float] = {}
    for pair in pairs:
        scope, sep, text = pair.partition("=")
        try:
            number = float(text) if sep and scope.strip() else math.nan
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise CalibrationPolicyError(f"--set {pair!r:.60} is not SCOPE=NUMBER, e.g. --set global=1.04.")
        values[scope.strip()] = number
    return values


@hookimpl
def register_commands(cli: click.Group) -> None:
    import click
    from rich.table import Column

    from calibration_policy.cli import cli_context, emit_json, policy_options, print_table
    from calibration_policy.pipeline import approve_suggestion, modify_suggestion, reject_suggestion, roll_back
    from calibration_policy.stores import open_reviews

    def reviewer(by: str | None) -> str:
        return by or getpass.getuser()

    def review_options(command):
        command = click.option("--config", metavar="FILE", help="The live config file (default: the host's).")(command)
        command = click.option("--notes", help="Why, in a sentence; kept with the suggestion and the archive.")(command)
        command = click.option("--actor", "--by", "by", metavar="NAME", help="Who reviews (default: your login name).")(
            command
        )
        command = click.option(
            "--underlying", "-u", help="With SUGGESTION `pending`: the newest waiting for this underlying."
        )(command)
        command = click.option("--suggestions-dir", metavar="DIR", help="Where suggestions are kept.")(command)
        command = policy_options(command)
        return click.argument("suggestion_id", metavar="SUGGESTION")(command)

    @cli.group()
    def review() -> None:
        """Review suggestions of any domain: list, show, approve, modify, reject."""

    @review.command("list")
    @click.option("--status", type=click.Choice(STATUSES), help="Only suggestions in this state.")
    @click.option("--underlying", "-u", help="Only this underlying's suggestions.")
    @click.option("--domain", help="Only this domain's suggestions, e.g. vol_surface.")
    @click.option("--suggestions-dir", metavar="DIR", help="Where suggestions are kept.")
    @policy_options
    def list_command(
        status: str | None,
        underlying: str | None,
        domain: str | None,
        suggestions_dir: str | None,
        policy_file: str | None,
        history_dir: str | None,
        archive_dir: str | None,
        as_json: bool,
    ) -> None:
        """Suggestions of every domain, newest first."""
        items = [
            item
            for item in open_reviews(suggestions_dir).all(status=status)
            if (underlying is None or (item.underlying or "") == underlying.upper())
            and (domain is None or item.domain == domain)
        ]
        if as_json:
            emit_json([item.model_dump(mode="json") for item in reversed(items)])
            return
        if not items:
            click.echo("No suggestions" + (f" {status}" if status else "") + " yet.")
            return
        print_table(
            [Column("Suggestion", no_wrap=True), "Domain", "For", Column("Status", no_wrap=True), "Made", "Values"],
            [
                [
                    item.suggestion_id,
                    item.domain,
                    item.underlying or item.target,
                    item.status,
                    _when(item.created_at),
                    values_text(item.domain, item.values, item.details),
                ]
                for item in reversed(items)
            ],
        )

    @review.command("show")
    @click.argument("suggestion_id", metavar="SUGGESTION")
    @click.option("--suggestions-dir", metavar="DIR", help="Where suggestions are kept.")
    @policy_options
    def show(
        suggestion_id: str,
        suggestions_dir: str | None,
        policy_file: str | None,
        history_dir: str | None,
        archive_dir: str | None,
        as_json: bool,
    ) -> None:
        """One suggestion, in any state: its values beside the live ones, why, and its review."""
        item = open_reviews(suggestions_dir).get(suggestion_id)
        emit_json(item.model_dump(mode="json")) if as_json else print_suggestion(item)

    def _review(
        change: Callable[..., Any],
        suggestion_id: str,
        underlying: str | None,
        by: str | None,
        notes: str | None,
        config: str | None,
        suggestions_dir: str | None,
        policy_file: str | None,
        history_dir: str | None,
        archive_dir: str | None,
        as_json: bool,
        values: Mapping[str, float] | None = None,
    ) -> None:
        """approve / modify / reject: pick the suggestion, run the change on its own target under its own
        domain's policy, print what happened."""
        store, who = open_reviews(suggestions_dir), reviewer(by)
        item = pick(store, suggestion_id, underlying)
        own_values = () if values is None else ({**item.values, **values},)
        context = cli_context(
            suggestion_policy(item, policy_file, history_dir), who, history_dir, archive_dir, suggestions_dir
        )
        done = change(
            item.suggestion_id, *own_values, target=suggestion_target(item, config), notes=notes, context=context
        )
        print_review(done, who, as_json)

    @review.command("approve")
    @review_options
    def approve(suggestion_id: str, **options: Any) -> None:
        """Put a suggestion's values live (the old ones are archived); SUGGESTION is its id, or `pending`."""
        _review(approve_suggestion, suggestion_id, **options)

    @review.command("modify")
    @click.option("--set", "pairs", multiple=True, required=True, metavar="SCOPE=VALUE", help="A value to put live.")
    @review_options
    def modify(suggestion_id: str, pairs: tuple[str, ...], **options: Any) -> None:
        """Put your own values live instead of the suggested ones (the domain checks them first)."""
        _review(modify_suggestion, suggestion_id, values=parse_values(pairs), **options)

    @review.command("reject")
    @review_options
    def reject(suggestion_id: str, **options: Any) -> None:
        """Close a suggestion; the live values stay."""
        _review(reject_suggestion, suggestion_id, **options)

    @cli.command("rollback")
    @click.argument("to", metavar="CHANGE")
    @click.option("--underlying", "-u", required=True, help="The underlying whose live config to roll back.")
    @click.option("--config", metavar="FILE", help="The live config file (default: the host's).")
    @click.option("--actor", "--by", "by", metavar="NAME", help="Who rolls back (default: your login name).")
    @click.option("--notes", help="Why, in a sentence; kept in the archive.")
    @policy_options
    def rollback(
        to: str,
        underlying: str,
        config: str | None,
        by: str | None,
        notes: str | None,
        policy_file: str | None,
        history_dir: str | None,
        archive_dir: str | None,
        as_json: bool,
    ) -> None:
        """Make an archived value set of any domain live again (itself an archived change).

        CHANGE is the id of the change that made the set live (see `history --changes`), or original.
        """
        from calibration_policy.cli import _target, load_policy

        policy = load_policy(policy_file, history_dir)
        entry = roll_back(
            _target(policy.domain, underlying, config),
            to,
            domain=policy.domain,
            notes=notes,
            context=cli_context(policy, reviewer(by), history_dir, archive_dir),
        )
        if as_json:
            emit_json(entry.model_dump(mode="json"))
        else:
            click.echo(
                f"{entry.reason}; live now {values_text(policy.domain, entry.new_values)} (change {entry.change_id})."
            )
