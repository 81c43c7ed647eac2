"""Errors the agent's users can act on: each is a ``ValueError`` with one plain sentence."""

from __future__ import annotations


class AgentInputError(ValueError):
    """Bad input to the agent: a symbol, a date, a chain or a config it cannot use."""


class HarvestDataError(AgentInputError):
    """A harvested chain is missing, unreadable or lacks the columns calibration needs."""


class VolSurfaceConfigError(AgentInputError):
    """The vol surface config file is missing, corrupt or cannot be updated as asked."""
