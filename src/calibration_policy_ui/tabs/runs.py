"""The runs tab: live values, the latest decision and why, the chart, history and actions, for any domain."""

from __future__ import annotations

from calibration_policy.plugins import get_domain

from ..api import add_api_routes
from ..pages import add_page_routes
from . import TabContext


def title(panel) -> str:
    """Named after what the panel's policy governs: "IV multipliers", or a plugin domain's title."""
    try:
        return get_domain(panel.policy().domain).title
    except ValueError:
        return "Calibration"


def add_routes(router, context: TabContext) -> None:
    add_page_routes(router, context.panel)
    add_api_routes(router, context.panel)
