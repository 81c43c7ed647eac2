"""The hooks a plugin can implement. Built-ins in ``default_plugins`` use exactly these.

A plugin is any module or object with ``@hookimpl`` functions, installed through the
``calibration_policy`` entry-point group or registered with ``get_plugin_manager().register``.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("calibration_policy")
hookimpl = pluggy.HookimplMarker("calibration_policy")

Register = Callable[..., None]


@hookspec
def register_smoothers(register: Register) -> None:
    """Register smoothing strategies: ``register(name, fn, options=PydanticModel | None)``.

    ``fn(times, values, options) -> float`` gets two numpy arrays of the same length, oldest
    first and the current run last: ``times``, 1-D ``datetime64[ns]`` in UTC (runs may share a
    time), and ``values``, 1-D ``float64``, all finite; ``options`` is the validated options model
    (or None). It returns the smoothed value. The arrays are fresh for each call. Prefer numpy or
    plain Python: a strategy that imports pandas makes every fresh process pay for that import.
    """


@hookspec
def register_rules(register: Register) -> None:
    """Register apply rules: ``register(name, fn)``; ``fn(context) -> RuleVerdict``."""


@hookspec
def register_domains(register: Register) -> None:
    """Register parameter domains (IV multipliers, scoring weights…): ``register(domain)``."""


@hookspec
def decision_made(run: Any, decision: Any, policy: Any) -> None:
    """Called after every decision (applied or not), e.g. to notify a chat or log it."""


@hookspec
def register_sources(register: Register) -> None:
    """Register calibration sources (the host's calibration): ``register(source)``.

    A source has ``name`` (``live``, ``harvested``…), ``calibrate(underlying, date) -> result``
    and, for replays, ``dates(underlying) -> list[date]`` and ``underlyings() -> list[str]``.
    """


@hookspec
def register_targets(register: Register) -> None:
    """Register live-config targets: ``register(domain_name, factory)``;
    ``factory(underlying, path=None) -> Target`` (``path`` overrides the host's default file)."""


@hookspec
def register_commands(commands: Any) -> None:
    """Add sub-commands to the ``calibration-policy`` CLI (``commands`` is argparse's subparsers)."""
