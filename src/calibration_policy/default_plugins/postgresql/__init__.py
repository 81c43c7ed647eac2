"""The PostgreSQL store, a store plugin like any other: ``store = "postgresql://…"`` selects it.

Needs the ``postgresql`` extra (psycopg 3 and psycopg_pool): ``pip install 'calibration-policy[postgresql]'``.
Adds ``calibration-policy db upgrade`` and ``db status``.
"""

from __future__ import annotations

from typing import Any

from calibration_policy import StoreType, hookimpl
from calibration_policy.errors import StoreError


def open_postgresql(url: str) -> Any:
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise StoreError(
            "The PostgreSQL store needs psycopg 3 and psycopg_pool: pip install 'calibration-policy[postgresql]'."
        ) from None
    from .store import PostgresStore

    return PostgresStore(url)


@hookimpl
def register_stores(register):
    register(
        StoreType(
            "postgresql",
            open_postgresql,
            label="PostgreSQL",
            description="One database shared by several machines: transactions, row and advisory locks.",
        )
    )


@hookimpl
def register_commands(cli):
    from .commands import add_commands

    add_commands(cli)
