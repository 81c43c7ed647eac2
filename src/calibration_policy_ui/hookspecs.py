"""The panel's own hook: a plugin adds a tab (its routes and its page) to the calibration panel.

Modelled on datasette's ``register_routes``: the hook belongs to the same ``calibration_policy``
plugin system as the core's hooks, so one plugin module (installed through the
``calibration_policy`` entry point) can register a domain, its rules, its CLI command and its tab.
A core without the panel installed simply never calls this hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("calibration_policy")


@hookspec
def register_panel_tabs(register: Callable[[Any], None]) -> None:
    """Register panel tabs: ``register(PanelTab(name, title, add_routes, route=...))``."""
