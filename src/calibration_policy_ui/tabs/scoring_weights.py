"""The scoring-weights tab: live weights, what the trades say, review, evidence on unseen trades, history."""

from __future__ import annotations

from pathlib import Path

from calibration_policy import hookimpl
from calibration_policy.default_plugins.scoring_weights.analysis import (
    default_trades_file,
)
from calibration_policy.default_plugins.scoring_weights.domain import (
    default_weights_file,
)

from ..weights import WeightsTab, add_weights_routes, settings_source
from . import PanelTab, TabContext


def add_routes(router, context: TabContext) -> None:
    options = context.options
    tab = WeightsTab(
        context.panel,
        Path(options.get("weights_path") or default_weights_file()),
        Path(options.get("trades_path") or default_trades_file()),
        settings_source(options.get("settings")),
    )
    add_weights_routes(router, tab)


@hookimpl
def register_panel_tabs(register):
    register(
        PanelTab(
            "scoring_weights",
            "Scoring weights",
            add_routes,
            route="weights",
            description="The trade-scoring model's four weights: suggestions, review, evidence, history.",
        )
    )
