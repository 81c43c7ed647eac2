"""Errors a user can act on.

Every error is a ``ValueError`` subclass (so callers that already catch ``ValueError`` keep
working) and carries one plain-English sentence naming what is wrong and what to do.
"""

from __future__ import annotations


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
        super().__init__(
            f"Unknown {kind} {name!r:.60}. Known names: {', '.join(self.known) or '(none)'}."
        )


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


class PermissionDeniedError(CalibrationPolicyError):
    """The person may not do this (a missing permission, or the four-eyes rule); nothing was changed."""

    def __init__(self, message: str, *, actor: str | None = None, action: str | None = None,
                 domain: str | None = None) -> None:
        self.actor, self.action, self.domain = actor, action, domain
        super().__init__(message)


class PermissionCheckError(CalibrationPolicyError):
    """The host's permission check failed (raised, or answered something that is not True/False)."""
