"""Panel tabs: what a tab plugin registers, and how the router finds every installed tab.

A tab is a :class:`PanelTab`: ``add_routes(router, context)`` adds its pages and JSON routes to the
panel's router, so they share the host's auth, the CSRF checks, the templates and the layout. The
built-in tabs (the runs of any domain, the scoring weights) are plugins of this same hook.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from calibration_policy.plugins import KINDS, Kind, collect, get_plugin_manager

from .. import hookspecs

BUILT_IN_TABS = (
    "calibration_policy_ui.tabs.runs",
    "calibration_policy_ui.tabs.scoring_weights",
    "calibration_policy_ui.tabs.lab",
)


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


def installed_tabs() -> dict[str, PanelTab]:
    """Every tab installed, built-ins first; a broken or clashing tab plugin is refused alone."""
    pm = get_plugin_manager()
    if "panel_tabs" not in KINDS:
        KINDS["panel_tabs"] = Kind("register_panel_tabs", "panel tab", PanelTab)
    if not pm.hook.__dict__.get("register_panel_tabs") or pm.hook.register_panel_tabs.spec is None:
        pm.add_hookspecs(hookspecs)
    for module in BUILT_IN_TABS:
        if not pm.has_plugin(module):
            pm.register(importlib.import_module(module), name=module)
    registry = collect("panel_tabs")
    built_in = [name for name, owner in registry.owner.items() if owner in BUILT_IN_TABS]
    return {name: registry.found[name] for name in built_in + [n for n in registry.found if n not in built_in]}
