"""Panel tabs: what a tab plugin registers, and how the router finds every installed tab.

A tab is a :class:`PanelTab`: ``add_routes(router, context)`` adds its pages and JSON routes to the
panel's router, so they share the host's auth, the CSRF checks, the templates and the layout. The
built-in tabs (the runs of any domain, the scoring weights, the policy lab) are registered through this
same hook by the panel's own plugin module (``calibration_policy_ui.commands``, an entry point like any
third party's), so a tab is found the same way whoever wrote it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from calibration_policy.plugins import KINDS, Kind, collect, get_plugin_manager

from .. import hookspecs


@dataclass(frozen=True)
class TabContext:
    """What a tab gets to build its routes: the shared panel and the options the host gave for it."""

    panel: Any  # calibration_policy_ui.panel.Panel
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PanelTab:
    """One tab of the panel. ``route`` names its main page (for the navigation), e.g. ``panel``."""

    name: str
    title: str | Callable[[Any], str]  # or panel -> title, e.g. the governed domain's
    add_routes: Callable[[Any, TabContext], None]
    route: str = ""
    description: str = ""
    replaces: bool = False
    order: int = 100  # its place in the navigation, lowest first (the built-ins: 0 to 20); ties keep load order


def lazy(module: str, name: str = "add_routes") -> Callable[..., Any]:
    """``module.name``, imported on first call: a tab plugin's module can then register its tab without
    importing FastAPI, so the core's CLI keeps loading it where the panel is not installed."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__qualname__ = f"{module}.{name}"
    return call


def register_tab_kind() -> None:
    """Make panel tabs a kind of thing plugins register, as smoothers and rules are, so that
    ``calibration-policy plugins`` lists them whether or not a panel was built in this process."""
    KINDS.setdefault("panel_tabs", Kind("register_panel_tabs", "panel tab", PanelTab))


def installed_tabs() -> dict[str, PanelTab]:
    """Every tab the installed plugins register, in navigation order; a broken or clashing tab plugin is
    refused alone (the others keep working, and the refusal is logged naming the plugin)."""
    pm = get_plugin_manager()
    register_tab_kind()
    if not pm.hook.__dict__.get("register_panel_tabs") or pm.hook.register_panel_tabs.spec is None:
        pm.add_hookspecs(hookspecs)
    found = collect("panel_tabs").found
    return {name: found[name] for name in sorted(found, key=lambda name: found[name].order)}
