"""Who may do what: permissions by action and domain, the four-eyes rule, and the one check.

Every change function (``run_update``, ``force_apply``, approve, modify, reject, rollback) calls
:func:`check` first, with who acts (``actor``) and from where (``via``), before anything is
written. The answer comes from, in this order:

1. a host callable ``permissions(user, action, domain) -> bool`` (passed to ``create_router`` or
   to the change function), or
2. the ``permission_allowed`` plugins: the built-in one reads the ``[permissions]`` table of the
   policy TOML (roles → actions; users, groups, everyone → roles), validated when the policy loads;
   a host's plugin may answer beside it, and any refusal wins, or
3. no opinion from anyone: **everyone who is signed in may do everything** (the behaviour before
   permissions).
"""

from __future__ import annotations

import functools
import getpass
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .errors import CalibrationPolicyError, PermissionCheckError, PermissionDeniedError

ACTIONS = ("view", "propose", "approve", "reject", "modify", "force_apply", "roll_back", "change_policy")
ACTION_TEXT = {
    "view": "view",
    "propose": "propose changes to",
    "approve": "approve changes to",
    "reject": "reject changes to",
    "modify": "modify suggested",
    "force_apply": "force-apply",
    "roll_back": "roll back",
    "change_policy": "change the policy for",
}
VIAS = ("panel", "api", "cli", "auto", "python", "watch")
Via = Literal["panel", "api", "cli", "auto", "python", "watch"]
PermissionCheck = Callable[[Any, str, str], bool]

DEFAULT_TEXT = (
    "No permissions are configured, so everyone who is signed in may do everything "
    "(view, propose, approve, reject, modify, force-apply, roll back, change the policy)."
)


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    members: list[str] = Field(default_factory=list, description="User names in the group.")
    roles: list[str] = Field(default_factory=list, description="Roles every member has.")


class PermissionsTable(BaseModel):
    """The ``[permissions]`` table of the policy TOML.

    ``roles`` name actions (``"approve"`` in every domain, ``"scoring_weights:approve"`` in one,
    ``"*"`` for all); ``users``, ``groups`` and ``everyone`` give roles.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    roles: dict[str, list[str]] = Field(description="Role name → the actions it allows.")
    users: dict[str, list[str]] = Field(default_factory=dict, description="User name → roles.")
    groups: dict[str, Group] = Field(default_factory=dict, description="Group name → members and roles.")
    everyone: list[str] = Field(default_factory=list, description="Roles every signed-in user has.")

    @model_validator(mode="after")
    def _known_names(self) -> PermissionsTable:
        problems = []
        for role, actions in self.roles.items():
            for item in actions:
                action = item.rpartition(":")[2]
                if item != "*" and action not in ACTIONS:
                    problems.append(
                        f"role {role!r:.40} names the unknown action {item!r:.60} "
                        f"(known actions: {', '.join(ACTIONS)}, or * for all)"
                    )
        known = ", ".join(self.roles) or "none"
        given = [(f"user {u!r:.40}", r) for u, rs in self.users.items() for r in rs]
        given += [(f"group {g!r:.40}", r) for g, group in self.groups.items() for r in group.roles]
        given += [("everyone", r) for r in self.everyone]
        for who, role in given:
            if role not in self.roles:
                problems.append(f"{who} is given the unknown role {role!r:.40} (known roles: {known})")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def roles_of(self, user: str) -> set[str]:
        roles = set(self.everyone) | set(self.users.get(user, ()))
        for group in self.groups.values():
            if user in group.members:
                roles |= set(group.roles)
        return roles

    def allows(self, user: str, action: str, domain: str) -> bool:
        granted = {a for role in self.roles_of(user) for a in self.roles[role]}
        return bool(granted & {"*", action, f"{domain}:{action}", f"{domain}:*"})


def actor_name(user: Any) -> Any:
    """The name recorded for a host's user: a string as it is, else its ``username``/``name``/``email``/``id``.

    A number, list or other plain value is returned as it is, so the caller refuses it as a name."""
    if user is None or isinstance(user, str) or type(user).__module__ == "builtins":
        return user
    for attribute in ("username", "name", "email", "id"):
        value = getattr(user, attribute, None)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return str(user)


def os_user() -> str:
    """The login name, the CLI's default ``--actor``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def check_callable(permissions: Any) -> PermissionCheck | None:
    """At start-up: ``permissions`` must be None or a function taking (user, action, domain)."""
    if permissions is None:
        return None
    if isinstance(permissions, PermissionsTable):
        return permissions.allows
    if not callable(permissions):
        raise TypeError(
            "permissions must be a function permissions(user, action, domain) -> bool, "
            f"not {type(permissions).__name__}."
        )
    try:
        inspect.signature(permissions).bind(None, "view", "vol_surface")
    except TypeError:
        raise TypeError("permissions must take three arguments: (user, action, domain).") from None
    except ValueError:  # a builtin without a signature: trust it
        pass
    return permissions


BUILT_IN = "calibration_policy.default_plugins.default_permissions"


def _permission_plugins() -> list[Any]:
    from .plugins import get_plugin_manager

    return get_plugin_manager().hook.permission_allowed.get_hookimpls()


def _other_plugins() -> list[str]:
    """The permission plugins beside the built-in table, by name."""
    return [impl.plugin_name for impl in _permission_plugins() if impl.plugin_name != BUILT_IN]


def _ask_plugins(policy: Any, user: str, action: str, domain: str) -> bool:
    """Every ``permission_allowed`` plugin's answer: any False refuses; else allowed."""
    answers = []
    for impl in _permission_plugins():
        try:
            answer = impl.function(actor=user, action=action, domain=domain, policy=policy)
        except Exception as error:  # a plugin's code: say whose check failed, never a traceback for the user
            raise PermissionCheckError(
                f"The permission plugin {impl.plugin_name} failed for {user} ({action} on {domain}): "
                f"{type(error).__name__}: {str(error)[:200]}; nothing was changed."
            ) from error
        if answer is not None and not isinstance(answer, bool):
            raise PermissionCheckError(
                f"The permission plugin {impl.plugin_name} answered {answer!r:.40} for {user} ({action} on "
                f"{domain}), not True, False or None; nothing was changed."
            )
        answers.append(answer)
    return False not in answers


def source_of(policy: Any = None, permissions: Any = None) -> PermissionCheck | None:
    """What answers: the host's callable, else the permission plugins (the built-in one reads the
    policy's table); None when none could have an opinion (no table, no other plugin): everyone may."""
    if permissions is not None:
        return check_callable(permissions)
    if getattr(policy, "permissions", None) is None and not _other_plugins():
        return None
    return functools.partial(_ask_plugins, policy)


def allowed(action: str, *, actor: Any, domain: str, policy: Any = None, permissions: Any = None) -> bool:
    """Whether ``actor`` may do ``action`` in ``domain`` (for hiding buttons; :func:`check` is what counts)."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown action {action!r:.40}; known actions: {', '.join(ACTIONS)}.")
    answer = source_of(policy, permissions)
    if answer is None:
        return True
    name = actor_name(actor)
    try:
        verdict = answer(actor if permissions is not None else name, action, domain)
    except PermissionCheckError:
        raise
    except Exception as error:  # the host's code: say whose check failed, never a traceback for the user
        raise PermissionCheckError(
            f"The host's permission check failed for {name} ({action} on {domain}): "
            f"{type(error).__name__}: {str(error)[:200]}; nothing was changed."
        ) from error
    if not isinstance(verdict, bool):
        raise PermissionCheckError(
            f"The host's permission check answered {verdict!r:.40} for {name} ({action} on "
            f"{domain}), not True or False; nothing was changed."
        )
    return verdict


def check(
    action: str, *, actor: Any, domain: str, via: str = "python", policy: Any = None, permissions: Any = None
) -> str:
    """The one check every change function makes first. Returns the actor's name, or raises
    :class:`PermissionDeniedError` naming the missing permission (nothing has been written yet)."""
    if via not in VIAS:
        raise ValueError(f"via must be one of {', '.join(VIAS)}, not {via!r:.40}.")
    name = actor_name(actor)
    if name is not None and not isinstance(name, str):
        raise CalibrationPolicyError(f"Say who is acting with a name, not {type(name).__name__}; nothing was changed.")
    if not name or not name.strip():
        if source_of(policy, permissions) is None:
            return "user"  # no permissions configured and no name: as before permissions existed
        raise PermissionDeniedError(
            "Say who is acting: nobody is signed in; nothing was changed.", action=action, domain=domain
        )
    if not allowed(action, actor=actor, domain=domain, policy=policy, permissions=permissions):
        raise PermissionDeniedError(
            f"{name} may not {ACTION_TEXT[action]} the {_what(domain)} (missing permission: {action} "
            f"on {domain}); nothing was changed.",
            actor=name,
            action=action,
            domain=domain,
        )
    return str(name).strip()


def _what(domain: str) -> str:
    """ "IV multipliers", "weights": what the domain governs, for a sentence."""
    try:
        from .plugins import get_domain

        return get_domain(domain).parameter_label_plural
    except Exception:  # an unknown or failing domain plugin: its name still says it
        return domain.replace("_", " ")


def four_eyes(item: Any, approver: str, policy: Any = None, what: str | None = None) -> None:
    """Refuse an approval by the person who proposed or last modified ``item`` (a suggestion, a policy proposal),
    or who already approved it. Names compare as people write them: "Ana" and "ana " are one person."""
    distinct = bool(getattr(item, "distinct_approver", False) or getattr(policy, "require_distinct_approver", False))
    what = what or f"suggestion {getattr(item, 'suggestion_id', '')}"
    same = str(approver).strip().casefold()
    if distinct:
        for role, who in (
            ("proposed", getattr(item, "proposed_by", None)),
            ("last modified", getattr(item, "modified_by", None)),
        ):
            if who and str(who).strip().casefold() == same:
                raise PermissionDeniedError(
                    f"{approver} {role} {what}, so another person must approve it (four-eyes rule); "
                    "nothing was changed.",
                    actor=approver,
                    action="approve",
                    domain=getattr(item, "domain", None),
                )
    if any(str(a.get("by", "")).strip().casefold() == same for a in getattr(item, "approvals", []) or []):
        raise PermissionDeniedError(
            f"{approver} already approved {what}; it needs another person's approval; nothing was changed.",
            actor=approver,
            action="approve",
            domain=getattr(item, "domain", None),
        )


@dataclass(frozen=True)
class Narrowed:
    """Several ``[permissions]`` tables that must all allow: the policy in force's, then a domain's own."""

    tables: tuple[Any, ...]

    def allows(self, user: str, action: str, domain: str) -> bool:
        return all(table.allows(user, action, domain) for table in self.tables)


@dataclass(frozen=True)
class Governing:
    """Who may do what for one change: the policy in force, narrowed (never widened) by a domain's own
    settings file (the scoring weights' ``[policy]``). It reads like a policy to :func:`check`,
    :func:`four_eyes` and :func:`needed_approvals`."""

    permissions: Narrowed | None
    require_distinct_approver: bool
    force_requires_approval: bool
    required_approvals: int


def governing(in_force: Any, *narrowing: Any) -> Any:
    """The one source of who may do what: ``in_force``'s ``[permissions]`` and four-eyes settings; each
    ``narrowing`` policy (a caller's own, a domain's settings) may add refusals and four-eyes rules, never
    remove one."""
    extra = [p for p in narrowing if p is not None and p is not in_force and p != in_force]
    if not extra:
        return in_force
    policies = [p for p in (in_force, *extra) if p is not None]
    tables = tuple(t for p in policies if (t := getattr(p, "permissions", None)) is not None)
    return Governing(
        permissions=Narrowed(tables) if tables else None,
        require_distinct_approver=any(getattr(p, "require_distinct_approver", False) for p in policies),
        force_requires_approval=any(getattr(p, "force_requires_approval", False) for p in policies),
        required_approvals=max(int(getattr(p, "required_approvals", 1) or 1) for p in policies),
    )


def needed_approvals(item: Any, policy: Any = None) -> int:
    return max(int(getattr(item, "required_approvals", 1) or 1), int(getattr(policy, "required_approvals", 1) or 1))


def explain(policy: Any = None, host_callable: bool = False) -> str:
    """Who may do what, in plain English, for the panel's policy text and ``explain``."""
    table = getattr(policy, "permissions", None)
    others = [] if host_callable else _other_plugins()
    if host_callable:
        text = "Who may do what is decided by the host application's permission check."
    elif table is None:
        text = DEFAULT_TEXT if not others else "No permissions table is configured."
    else:
        parts = [
            f"{role} may {', '.join(a.replace('_', ' ') if a != '*' else 'do everything' for a in actions) or 'do nothing'}"
            for role, actions in table.roles.items()
        ]
        text = "Permissions: " + "; ".join(parts) + "."
    if others:
        text += (
            f" The permission plugin{'s' if len(others) > 1 else ''} {', '.join(others)} also decide; any refusal wins."
        )
    rules = []
    if getattr(policy, "require_distinct_approver", False):
        rules.append("a suggestion must be approved by someone other than the person who proposed or last modified it")
    if getattr(policy, "force_requires_approval", False):
        rules.append("a force-apply waits for a second person's approval")
    if int(getattr(policy, "required_approvals", 1) or 1) > 1:
        rules.append(f"a suggestion needs {policy.required_approvals} different approvers")
    if rules:
        text += " Four-eyes: " + "; ".join(rules) + "."
    return text
