"""``calibration-policy users add|list|remove``: who may sign in to ``serve`` (see :mod:`calibration_policy.users`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from calibration_policy.hookspecs import hookimpl

if TYPE_CHECKING:
    import click


def _password(click: object) -> str:
    """Typed twice at a terminal; otherwise the first line of stdin (``echo … | users add NAME``)."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)  # type: ignore[attr-defined]
    return sys.stdin.readline().rstrip("\r\n")


@hookimpl
def register_commands(cli: click.Group) -> None:
    import click

    from calibration_policy.cli import emit_json, json_option, load_policy
    from calibration_policy.users import UsersError, users_file

    @cli.group()
    def users() -> None:
        """Who may sign in to `serve`: names, hashed passwords and roles (the data root's users.json)."""

    @users.command("add")
    @click.argument("name")
    @click.option(
        "--role",
        "roles",
        multiple=True,
        metavar="ROLE",
        help="A role of the policy's [permissions] table (repeat for more).",
    )
    def add(name: str, roles: tuple[str, ...]) -> None:
        """Add NAME, or give NAME a new password and roles. The password is asked for (twice) at a terminal,
        else read from the first line of stdin."""
        table = getattr(load_policy(None, None), "permissions", None)
        unknown = [r for r in roles if table is None or r not in table.roles]
        if unknown:
            known = ", ".join(table.roles) if table is not None else "none: the policy has no [permissions] table"
            raise UsersError(
                f"The role {unknown[0]!r:.40} is not in the policy's [permissions] table (roles: {known})."
            )
        store = users_file()
        user = store.add(name, _password(click), roles)
        click.echo(
            f"{user.name} may sign in to serve ({', '.join(user.roles) or 'no roles of their own'}); saved in {store.path}."
        )

    @users.command("list")
    @json_option
    def list_users(as_json: bool) -> None:
        """Everyone in the users file, with their roles (never a password or its hash)."""
        found = users_file().users()
        if as_json:
            emit_json([{"name": u.name, "roles": list(u.roles)} for u in found])
            return
        if not found:
            click.echo(f"No users in {users_file().path}; add one with `calibration-policy users add NAME`.")
        for user in found:
            click.echo(f"{user.name}: {', '.join(user.roles) or '(no roles of their own)'}")

    @users.command("remove")
    @click.argument("name")
    def remove(name: str) -> None:
        """Take NAME out of the users file: they can no longer sign in."""
        users_file().remove(name)
        click.echo(f"{name} can no longer sign in to serve.")
