"""``calibration-policy risk-limits show``: the live limit of every desk, as text or JSON.

A click group added to the core's click group through ``register_commands(cli)``.
"""

from __future__ import annotations

import json

import click

from .domain import DEFAULT_LIMITS_FILE, desk_label, limits_target, money

PROG = "calibration-policy risk-limits"


class InputProblem(click.ClickException):
    """Bad input (a missing or broken limits file): one sentence on stderr, exit 2 like the core's."""

    exit_code = 2


@click.group("risk-limits")
def risk_limits() -> None:
    """Desk position limits recalibrated from realized volatility (the cp-risk-limits plugin)."""


@risk_limits.command("show")
@click.option("--config", metavar="FILE", help=f"The live limits file (default: {DEFAULT_LIMITS_FILE}).")
@click.option("--json", "as_json", is_flag=True, help="Print stable JSON instead of text.")
def show(config: str | None, as_json: bool) -> None:
    """Print the live position limit of every desk."""
    target = limits_target(path=config)
    try:
        limits = target.values(target.load())
    except ValueError as error:  # the core's TargetError: missing, not JSON, a limit that is not a number
        raise InputProblem(str(error)) from None
    if as_json:
        click.echo(json.dumps({"path": str(target.path), "limits": limits}, indent=2, sort_keys=True))
        return
    if not limits:
        click.echo(f"{target.path} holds no desk limits yet.")
        return
    click.echo(f"Live position limits in {target.path}:")
    width = max(len(desk_label(desk)) for desk in limits)
    for desk in sorted(limits):
        click.echo(f"  {desk_label(desk):<{width}}  {money(limits[desk]):>15}")
