"""How the engine names what went wrong: its error, a run, a rule and the plugin that registered it."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import CalibrationPolicyError
from ..models import CalibrationRun


class EngineError(CalibrationPolicyError):
    """A plugin's batch form answered something the engine cannot use; names the plugin and the run."""


def run_named(run: CalibrationRun) -> str:
    return run.run_id or f"{run.underlying} at {run.timestamp.isoformat()}"


def runs_named(runs: Sequence[CalibrationRun]) -> str:
    first = run_named(runs[0])
    return f"run {first}" if len(runs) == 1 else f"{len(runs)} runs from {first}"


def rule_named(name: str) -> str:
    """ "Rule 'min_notional' of plugin quote-spreads": a person fixing it must know whose code to open
    (a built-in is named alone)."""
    from ..plugins import DEFAULT_PLUGINS, collect

    owner = collect("rules").owner.get(name)
    return f"Rule {name!r}" if owner is None or owner in DEFAULT_PLUGINS else f"Rule {name!r} of plugin {owner}"
