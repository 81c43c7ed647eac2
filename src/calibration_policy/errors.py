"""Errors a user can act on.

Every error is a ``ValueError`` subclass (so callers that already catch ``ValueError`` keep
working) and carries one plain-English sentence naming what is wrong and what to do.
"""

from __future__ import annotations

import os


class CalibrationPolicyError(ValueError):
    """Base class: bad input or bad state, explained in plain English."""


class InvalidNameError(CalibrationPolicyError):
    """An underlying, source or id that is unsafe to use as part of a file name."""


class InvalidRunError(CalibrationPolicyError):
    """A calibration result or run record that cannot be stored as valid JSON."""


class PolicyError(CalibrationPolicyError):
    """A policy (thresholds, smoothing, rules) that does not validate."""


class UnknownPluginError(PolicyError):
    """A smoother, rule, domain or source name nobody registered; lists the known ones."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        hint = ""
        if kind in HOST_PROVIDED:  # the host's plugins register these; a command run outside the host lacks them
            hint = (
                " The host's plugins register it: pass --plugins-dir DIR (or set CALIBRATION_PLUGINS_DIR) "
                "to the folder of its plugins, or install the plugin's package."
            )
        super().__init__(f"Unknown {kind} {name!r:.60}. Known names: {', '.join(self.known) or '(none)'}.{hint}")


HOST_PROVIDED = ("calibration source", "live-config target")


class HistoryError(CalibrationPolicyError):
    """The history store cannot be read or written (permissions, disk full, …)."""


class DataFolderError(HistoryError):
    """A data folder (history, archive, suggestions) is damaged: a file in its place, or unreadable."""


class TargetError(CalibrationPolicyError):
    """The live config (the target) is missing, corrupt or cannot be written."""


class ReviewError(CalibrationPolicyError):
    """A suggestion cannot be approved, modified, rejected or rolled back as asked."""


class PluginError(PolicyError):
    """A plugin raised in a hook, registered something malformed, or took a name already taken."""


class StaleChangeError(CalibrationPolicyError):
    """A change based on values that someone else changed meanwhile; nothing was changed."""


class SettledError(ReviewError, StaleChangeError):
    """The suggestion was already approved, modified, rejected or expired (another reviewer got there first, or a
    newer one superseded it); nothing was changed. The panel answers 409, as for any change based on a stale view."""


class AppliedButNotRecorded(TargetError):
    """The new values are live, but a record of the change (archive, run, suggestion) could not be written."""


def live_but_not_recorded(target_name: str, what: str, error: ValueError, remedy: str) -> AppliedButNotRecorded:
    """The error for a failure *after* the config was replaced: never "nothing was changed"."""
    if isinstance(error, AppliedButNotRecorded):
        return error
    reason = str(error).removesuffix(" Nothing was changed.").rstrip(".")
    link: BaseException | None = error
    while link is not None:  # the OS error behind it, even when re-raised "from None"
        if isinstance(link, OSError) and link.errno:
            reason = os.strerror(link.errno)
            break
        link = link.__cause__ or link.__context__
    return AppliedButNotRecorded(f"The new values are live in {target_name}, but {what} failed ({reason}); {remedy}")


class PermissionDeniedError(CalibrationPolicyError):
    """The person may not do this (a missing permission, or the four-eyes rule); nothing was changed."""

    def __init__(
        self, message: str, *, actor: str | None = None, action: str | None = None, domain: str | None = None
    ) -> None:
        self.actor, self.action, self.domain = actor, action, domain
        super().__init__(message)


class PermissionCheckError(CalibrationPolicyError):
    """The host's permission check failed (raised, or answered something that is not True/False)."""


class StoreError(CalibrationPolicyError):
    """The configured store cannot be used: a malformed URL, a server that is down or refuses the
    password, a schema newer than this code, a connection lost mid-change (nothing half-written)."""


class InputLimitError(CalibrationPolicyError):
    """Input beyond what the library accepts: nested too deep, or a date outside the supported range."""
