"""The context a change runs in: where the data is, which policy governs, who acts and from where.

Built once per process, CLI command or panel request (:meth:`Context.build`) and handed to every public
change function (``run_update(…, context=ctx)``), so the data folders are resolved once, who acts is said
once, and no function passes ``history_dir``/``archive_dir``/``suggestions_dir`` or ``actor`` by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .archive import resolve_archive_dir
from .history import resolve_history_dir
from .permissions import check, check_callable, four_eyes, governing, needed_approvals
from .policy import CalibrationUpdatePolicy
from .review import resolve_suggestions_dir
from .stores import follow
from .tamper import load_in_force

Folder = str | os.PathLike[str] | None


def policy_in_force(history_dir: Folder = None) -> CalibrationUpdatePolicy:
    """The policy in force: ``$CALIBRATION_POLICY``, else the shared store's newest version, else
    ``calibration_policy.toml`` in the data root (beside the runs' folder), else the built-in defaults.

    Loaded with the out-of-band edit check (:func:`~calibration_policy.tamper.load_in_force`), so a change made
    from Python notices (or refuses) a hand-edited policy file exactly as the CLI and the panel do."""
    return load_in_force(data_dir=resolve_history_dir(history_dir).parent)


@dataclass(frozen=True)
class Context:
    """What every change needs besides its own values.

    ``policy`` is the policy in force: its ``[permissions]``, ``require_distinct_approver``,
    ``force_requires_approval`` and ``required_approvals`` are the one source of who may do what
    (unless the host gives ``permissions``, its own ``(user, action, domain) -> bool``). ``given`` is
    the policy the caller chose for its changes (a host's own policy object, a domain's settings file):
    it decides them and may add refusals and four-eyes rules to the policy in force, never remove one."""

    policy: CalibrationUpdatePolicy
    history_dir: Path
    archive_dir: Path
    suggestions_dir: Path
    actor: Any = None
    via: str = "python"
    permissions: Any = None
    given: CalibrationUpdatePolicy | None = None
    data_dir: Path | None = None  # the data root named to build (None: each folder's own default)
    # More policies that only narrow who may do what (the panel's own policy, beside a tab's settings).
    narrowed_by: tuple[Any, ...] = ()
    # The events of the change under way (see events.record); the governor gives each change its own.
    outbox: list[Any] = field(default_factory=list, compare=False, repr=False)
    # The write-ahead intent of the change under way: it holds the change's outbox records until it is done.
    intent: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        *,
        policy: CalibrationUpdatePolicy | None = None,
        actor: Any = None,
        via: str = "python",
        permissions: Any = None,
        history_dir: Folder = None,
        archive_dir: Folder = None,
        suggestions_dir: Any = None,
        data_dir: Folder = None,
    ) -> Context:
        """A context with the folders resolved (None: the data root's, as everywhere) and the policy in force
        loaded (with its out-of-band edit check). ``policy`` is the caller's own policy for its changes (see
        the class); one that names a store is followed before anything is read. ``data_dir`` names one data
        root for every folder not given on its own, so a caller that knows its root (the panel, a plugin)
        never mixes its runs with the process's ``./data``. ``suggestions_dir`` may be a review store (its
        folder is used)."""
        follow(policy)
        suggestions_dir = getattr(suggestions_dir, "directory", suggestions_dir)
        if data_dir is not None:
            root = Path(data_dir)
            history_dir = history_dir or root / "calibration_runs"
            archive_dir = archive_dir or root / "config_archive"
            suggestions_dir = suggestions_dir or root / "suggestions"
        return cls(
            policy=policy_in_force(history_dir),
            history_dir=resolve_history_dir(history_dir),
            archive_dir=resolve_archive_dir(archive_dir),
            suggestions_dir=resolve_suggestions_dir(suggestions_dir),
            actor=actor,
            via=via,
            permissions=check_callable(permissions),
            given=policy,
            data_dir=Path(data_dir) if data_dir is not None else None,
        )

    def acting(self, default_actor: str) -> Context:
        """This context, with ``default_actor`` acting when the caller named no one (a change kind's own
        default: "policy" for an update, "user" for a forced change or a rollback, "auto mode" …)."""
        return self if self.actor is not None else replace(self, actor=default_actor)

    @property
    def rules_of_changes(self) -> CalibrationUpdatePolicy:
        """The policy that decides this context's changes: the caller's own, else the policy in force."""
        return self.given if self.given is not None else self.policy

    def rules(self, narrowing: Any = None) -> Any:
        """Who may do what: the policy in force, narrowed by the caller's own policy and by a change's
        domain settings (``narrowing``); see :func:`~calibration_policy.permissions.governing`."""
        return governing(self.policy, self.given, *self.narrowed_by, narrowing)

    def check(self, action: str, domain: str, narrowing: Any = None, actor: Any = None) -> str:
        """The permission check: the actor's name, or :class:`PermissionDeniedError` (nothing written yet)."""
        who = self.actor if actor is None else actor
        return check(
            action, actor=who, domain=domain, via=self.via, policy=self.rules(narrowing), permissions=self.permissions
        )

    def four_eyes(self, item: Any, approver: str, narrowing: Any = None, what: str | None = None) -> None:
        """The one four-eyes check: refuse the proposer, the last modifier, or a second approval by the same person."""
        four_eyes(item, approver, self.rules(narrowing), what)

    def needed_approvals(self, item: Any, narrowing: Any = None) -> int:
        return needed_approvals(item, self.rules(narrowing))
