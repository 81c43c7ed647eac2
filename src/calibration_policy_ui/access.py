"""Who may use which route: the panel's early refusal, before a form or a JSON body is read.

The core's change functions check again (``calibration_policy.permissions.check``) with the
actual suggestion's domain; this guard only refuses sooner, with the same function and the
same sentence, so a viewer gets a 403 even for a malformed request and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from calibration_policy.errors import PermissionDeniedError
from calibration_policy.permissions import actor_name, allowed, check

from .errors import PanelError
from .panel import Panel

PREFIX = "calibration_policy_ui."
# route name (after the prefix) → the actions that let a person use it (any one is enough)
ROUTE_ACTIONS: list[tuple[Callable[[str], bool], tuple[str, ...]]] = [
    (lambda name: name in ("lab_approve", "lab_reject"), ("change_policy",)),  # a policy proposal: a new policy version
    (lambda name: name == "api_weights_apply", ("approve", "modify")),
    (lambda name: "approve" in name, ("approve",)),
    (lambda name: "modify" in name, ("modify",)),
    (lambda name: "reject" in name, ("reject",)),
    (lambda name: "rollback" in name, ("roll_back",)),
    (lambda name: name in ("force", "api_force"), ("force_apply",)),
    (lambda name: "policy" in name or "settings" in name, ("change_policy",)),
]


def route_actions(name: str, method: str) -> tuple[str, ...]:
    """The actions a route needs: reading needs ``view``; another change (suggest, analyse, a plugin's) ``propose``."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return ("view",)
    short = name.removeprefix(PREFIX)
    for matches, actions in ROUTE_ACTIONS:
        if matches(short):
            return actions
    return ("propose",)


def permission_guard(panel: Panel) -> Callable[[Request], Any]:
    """A dependency for every route of the panel: refuse (403) what the signed-in user may not do."""

    def guard(request: Request) -> None:
        route = request.scope.get("route")
        name = getattr(route, "name", "") or ""
        if name.endswith(".static"):
            return  # the panel's CSS, JS and icons
        actor = panel.actor(request)  # the host's current_user, asked once per request
        if panel.current_user is not None and not actor_name(actor):
            # The contract: a host that says who is signed in (current_user) and answers None means nobody is.
            raise PanelError(
                401,
                "Nobody is signed in, so the calibration panel cannot say who acts: "
                "sign in to the app, then open the panel again.",
            )
        try:
            domain, policy = panel.domain_of(name)
        except PanelError:
            # The policy cannot be read: the host's callable still answers; without one, the route says why
            # (every change function loads the policy and checks its table itself).
            if panel.permissions is None:
                return
            domain, policy = "vol_surface", None
        actions = route_actions(name, request.method)
        if any(allowed(a, actor=actor, domain=domain, policy=policy, permissions=panel.permissions) for a in actions):
            return
        check(actions[0], actor=actor, domain=domain, via="panel", policy=policy, permissions=panel.permissions)
        raise PermissionDeniedError(f"Not allowed: {actions[0]} on {domain}.")  # pragma: no cover (check raised)

    return guard
