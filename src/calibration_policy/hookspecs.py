"""The hooks a plugin can implement. Built-ins in ``default_plugins`` use exactly these.

A plugin is any module or object with ``@hookimpl`` functions, installed through the
``calibration_policy`` entry-point group or registered with ``get_plugin_manager().register``.
Each ``register_*`` hook gets a ``register`` callback to call once per thing it offers, with a
record from :mod:`calibration_policy.specs` (or, for domains and sources, an object with a
``name``), as in simonw/llm's ``register_models``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("calibration_policy")
hookimpl = pluggy.HookimplMarker("calibration_policy")

Register = Callable[[Any], None]


@hookspec
def register_smoothers(register: Register) -> None:
    """Register smoothing strategies: ``register(Smoother(name, fn, label, description, options=Model))``.

    ``fn(times, values, options) -> float`` gets two numpy arrays of the same length, oldest
    first and the current run last: ``times``, 1-D ``datetime64[ns]`` in UTC (runs may share a
    time), and ``values``, 1-D ``float64``, all finite; ``options`` is the validated options model
    (or None). Prefer numpy or plain Python: a strategy that imports pandas makes every fresh
    process pay for that import.
    """


@hookspec
def register_rules(register: Register) -> None:
    """Register apply rules: ``register(Rule(name, fn, label, description, options=Model))``; ``fn(context) -> RuleVerdict``."""


@hookspec
def register_domains(register: Register) -> None:
    """Register parameter domains (IV multipliers, scoring weights…): ``register(DomainSubclass())``."""


@hookspec
def register_sources(register: Register) -> None:
    """Register calibration sources: objects with ``name``, ``calibrate(underlying, date)`` and, for replays, ``dates``/``underlyings``."""


@hookspec
def register_targets(register: Register) -> None:
    """Register live-config targets: ``register(TargetFactory(domain, factory))``; ``factory(underlying, path=None) -> Target``."""


@hookspec
def register_stores(register: Register) -> None:
    """Register stores: ``register(StoreType(scheme, open))``; ``open(url) -> Store`` (see :mod:`calibration_policy.stores`).

    The store in use is chosen by one setting, ``store = "<scheme>://…"`` in the policy file or
    ``$CALIBRATION_STORE``; without it, the built-in file store keeps everything in the data folder.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``calibration-policy`` CLI: ``cli`` is its click group (``@cli.command()``), as in llm."""


@hookspec
def register_change_kinds(register: Register) -> None:
    """Register a plugin's own kinds of change: ``register(ChangeType(name, ChangeSubclass, label))``.

    A change kind is run through ``Governor(ctx).execute(change)`` like the built-in ones, so it is
    permission-checked, settled if interrupted (or if it raises), validated and announced."""


@hookspec
def register_deliverers(register: Register) -> None:
    """Register ways to deliver notifications: ``register(Deliverer(name, send, label))`` (see
    :class:`calibration_policy.specs.Deliverer`); a ``[[notify]]`` table names one with ``deliverer``.

    Events reach a deliverer from the durable outbox (``calibration-policy outbox run``), retried with
    backoff for at least a day, so ``send`` only says what became of one attempt."""


@hookspec
def permission_allowed(actor: str, action: str, domain: str, policy: Any) -> bool | None:
    """Whether ``actor`` may do ``action`` (``propose``, ``approve``, ``change_policy``…) on ``domain``:
    True, False, or None for no opinion (as datasette's ``permission_allowed``). Any False refuses; else
    any True allows; no opinion at all allows (no permissions configured). The built-in answer reads the
    ``[permissions]`` table of ``policy`` (``default_plugins/default_permissions.py``); a host that passes
    its own ``permissions`` callable replaces them all."""


@hookspec
def decision_made(run: Any, decision: Any, policy: Any) -> None:
    """Called after every decision about a run (applied, waiting or not applied; an update, a force,
    a person's approval, modification or rejection, a domain's suggestion or auto mode), e.g. to notify a chat."""


@hookspec
def change_made(event: Any) -> None:
    """Called once every change is durable, with a :class:`calibration_policy.events.Event`: who, via,
    kind, status, domain, target, before → after, reason (``event.to_dict()`` is JSON-safe)."""
