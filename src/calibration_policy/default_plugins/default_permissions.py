"""Who may do what, by the policy's ``[permissions]`` table: the built-in answer to ``permission_allowed``.

No table: no opinion, so everyone who is signed in may do everything (the behaviour before permissions).
A plugin of a host (a directory service, a desk's rota) answers beside this one; any refusal wins.
"""

from __future__ import annotations

from typing import Any

from calibration_policy.hookspecs import hookimpl


@hookimpl
def permission_allowed(actor: str, action: str, domain: str, policy: Any) -> bool | None:
    table = getattr(policy, "permissions", None)
    return None if table is None else bool(table.allows(actor, action, domain))
