"""``calibration-policy db upgrade`` and ``db status``: the PostgreSQL store's schema, from a terminal."""

from __future__ import annotations

import click

from calibration_policy.cli import emit_json, json_option
from calibration_policy.errors import StoreError
from calibration_policy.redact import mask
from calibration_policy.stores import resolve, scheme_of, store_setting

from .schema import status, upgrade

url_option = click.option(
    "--store",
    "url",
    metavar="URL",
    help="The database: postgresql://user:pw@host/db (default $CALIBRATION_STORE, else `store` in the policy file).",
)


def _policy_file_store() -> str | None:
    """The store the policy *file* in force names, read from the file alone: loading the policy would ask the
    database for its versions first, and before `db upgrade` it has no tables to ask."""
    import os

    from calibration_policy.paths import POLICY_ENV, POLICY_FILE_NAME, data_root
    from calibration_policy.policy import CalibrationUpdatePolicy

    path = os.environ.get(POLICY_ENV) or data_root() / POLICY_FILE_NAME
    return resolve(CalibrationUpdatePolicy.from_toml(path).store) if os.path.isfile(path) else None


def _url(url: str | None) -> str:
    """The database of a `db` command: --store, else $CALIBRATION_STORE, else the policy file's `store`."""
    url = resolve(url) if url else store_setting() or _policy_file_store()
    if not url or scheme_of(url) != "postgresql":
        raise StoreError(
            "Say which database: --store postgresql://user:password@host:5432/dbname "
            "(or set CALIBRATION_STORE, or `store` in the policy file)."
        )
    return url


def add_commands(cli: click.Group) -> None:
    @cli.group()
    def db() -> None:
        """The PostgreSQL store's tables: create or upgrade them, or see their state."""

    @db.command("upgrade")
    @url_option
    def db_upgrade(url: str | None) -> None:
        """Create the tables, or bring them to this version's schema. Safe to run again, and from two
        machines at once."""
        url = _url(url)
        done = upgrade(url, say=lambda line: click.echo(line, err=True))
        now = status(url)
        if done:
            click.echo(
                f"Upgraded {now['database']} to schema version {now['schema_version']} "
                f"({len(done)} migration{'s' if len(done) != 1 else ''} applied)."
            )
        else:
            click.echo(f"{now['database']} is up to date (schema version {now['schema_version']}); nothing to do.")

    @db.command("status")
    @url_option
    @json_option
    def db_status(url: str | None, as_json: bool) -> None:
        """Where the database is, its schema version against this code's, and how many records it holds.
        Exit code 1 when it needs `db upgrade`."""
        url = _url(url)
        now = status(url)
        if as_json:
            emit_json(now)
        else:
            state = (
                "up to date"
                if now["up_to_date"]
                else "needs `calibration-policy db upgrade`"
                if now["schema_version"] < now["code_version"]
                else "NEWER than this calibration-policy: upgrade calibration-policy here"
            )
            click.echo(
                f"Database {now['database']} (store URL {mask(url)}): schema version {now['schema_version']}, "
                f"this code's {now['code_version']} — {state}."
            )
            for table, n in now["counts"].items():
                click.echo(f"  {table.replace('_', ' ')}: {n:,}")
        if not now["up_to_date"]:
            raise click.exceptions.Exit(1)
