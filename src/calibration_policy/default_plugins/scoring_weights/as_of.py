"""``calibration-policy as-of``: what any archived target held at a moment, and the period texts the
``weights`` commands print too.

Kept apart from :mod:`.commands` because it needs neither pandas nor the trades analysis: the CLI adds
this command at every start, while the ``weights`` group is imported only when the line names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from calibration_policy.archive import Period
from calibration_policy.cli import again, emit_json, json_option
from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.humanize import fmt_value_set
from calibration_policy.moments import parse_moment
from calibration_policy.plugins import sums_to_one
from calibration_policy.stores import active_store, open_archive

from .domain import DOMAIN_NAME, FACTORS


def weights_shown(values: Mapping[str, float | None], domain: str = DOMAIN_NAME) -> dict[str, str]:
    """A value set as the weights commands print one, four decimals: the weights rounded as a whole, so they add
    up to 1 on screen too (``Domain.sums_to_one``); another domain's values each as they are."""
    return fmt_value_set(values, 4, sums_to_one=sums_to_one(domain))


def _weights_text(values: dict[str, float], domain: str = DOMAIN_NAME) -> str:
    """Weights in the model's order; another target's scopes with global first."""

    def order(scope):
        return (FACTORS.index(scope) if scope in FACTORS else len(FACTORS), scope != "global", scope)

    shown = weights_shown(values, domain)
    return ", ".join(f"{scope} {shown[scope]}" for scope in sorted(values, key=order))


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "before records began"


def _period_text(period: Period, domain: str = DOMAIN_NAME) -> str:
    until = f"until {_when(period.until)}" if period.until else "still live"
    how = (
        f"{period.change.how}: {period.change.reason}"
        if period.change
        else "the values before the first recorded change"
    )
    return f"{_weights_text(period.values, domain)}\n   live from {_when(period.since)}, {until}\n   {how}"


def _period_dict(period: Period | None) -> dict[str, Any] | None:
    if period is None:
        return None
    return {
        "values": period.values,
        "since": period.since.isoformat() if period.since else None,
        "until": period.until.isoformat() if period.until else None,
        "change": period.change.model_dump(mode="json", exclude={"previous_snapshot", "new_snapshot"})
        if period.change
        else None,
    }


def _as_of(when: str, target_name: str, archive_dir: str | None, as_json: bool) -> None:
    moment = parse_moment(when, "DATE")
    archive = open_archive(archive_dir, target_name)
    period = archive.as_of(moment)
    if as_json:
        emit_json({"target": target_name, "as_of": moment.isoformat(), "period": _period_dict(period)})
        return
    if period is None:
        known = ", ".join(active_store().targets(archive_dir)) or "none yet"
        raise CalibrationPolicyError(
            f"The archive has no change of {target_name} recorded, so it cannot say what was live on {when} "
            f"(archived targets: {known})."
        )
    first = archive.entries()[0]  # what the target governs; for the original values, made later (a backfill)?
    click.echo(f"Live on {when} ({moment:%Y-%m-%d %H:%M} UTC): {_period_text(period, first.domain)}")
    if period.change is not None:
        return
    if first.made_apart:
        click.echo(
            f"   Note: the recorded changes were made from {_when(first.at)} on, for calibration runs from "
            f"{first.live_from:%Y-%m-%d} (a replay or a backfill); as-of answers by when a change was made. "
            f"Each change's run date is in `{again('history --changes')}`."
        )


@click.command("as-of")
@click.argument("when", metavar="DATE")
@click.option(
    "--target", required=True, help="The target's name: its archive folder, e.g. scoring_weights or vol_surface."
)
@click.option(
    "--archive-dir", metavar="DIR", help="Where replaced configs are kept (default: config_archive in the data root)."
)
@json_option
def as_of(when: str, target: str, archive_dir: str | None, as_json: bool) -> None:
    """Show what any archived target held at a date or a time.

    DATE is YYYY-MM-DD (the end of that UTC day) or an ISO time such as 2025-12-01T14:00Z.
    """
    _as_of(when, target, archive_dir, as_json)
