"""The outbox's commands (``outbox run | list | redeliver``), a built-in plugin's like any other."""

from __future__ import annotations

from calibration_policy.hookspecs import hookimpl


@hookimpl
def register_commands(cli):
    from .outbox_cli import outbox  # click and the CLI load only when the CLI asks for its commands

    cli.add_command(outbox)
