"""``calibration-policy risk-limits show``: the live limit of every desk, as text or JSON.

A click group added to the core's click group through ``register_commands(cli)``. Until the core's
CLI is on click (it passes argparse's subparsers then), :func:`add_commands` adds a ``risk-limits``
sub-command that hands the rest of the line to this same click group.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

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


def add_commands(cli: Any) -> None:
    """Add ``risk-limits`` to the core's CLI: its click group, or (older core) argparse's subparsers."""
    if isinstance(cli, click.Group):
        cli.add_command(risk_limits)
        return
    parser = cli.add_parser("risk-limits", help="desk position limits (cp-risk-limits): risk-limits show [--config FILE] [--json]",
                            add_help=False)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    parser.set_defaults(func=lambda parsed: run(parsed.args))


def run(args: list[str]) -> int:
    """Run the click group on ``args`` and return its exit code, errors as one sentence on stderr."""
    try:
        code = risk_limits.main(list(args), prog_name=PROG, standalone_mode=False)
    except click.ClickException as error:
        click.echo(f"Error: {error.format_message()}", err=True)
        return error.exit_code
    return code if isinstance(code, int) else 0
