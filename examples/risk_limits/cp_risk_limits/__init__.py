"""cp-risk-limits: per-desk position limits recalibrated from realized volatility.

A calibration-policy plugin written only against the public hooks, installed through the
``calibration_policy`` entry point. It registers:

- the ``risk_limits`` domain (desks → position limits) and its live file (``data/risk_limits.json``);
- the ``realized-vol`` source: limit = risk budget / annualized realized volatility;
- the ``max_cut_pct`` rule: never cut a limit by more than ``max_cut_pct`` percent in one update;
- the ``calibration-policy risk-limits show`` command;
- the panel's "Risk limits" tab (only where the panel is installed).

Nothing here imports the panel, FastAPI or click at import time: each hook imports what it needs.
"""

from __future__ import annotations

from typing import Any

from calibration_policy.plugin import Rule, TargetFactory, hookimpl

from .domain import DOMAIN_NAME, RiskLimitsDomain, limits_target
from .policy import limits_policy
from .rule import RULE_NAME, MaxCutOptions, max_cut_pct
from .source import RealizedVolSource

__version__ = "0.1.0"
__all__ = ["RealizedVolSource", "RiskLimitsDomain", "MaxCutOptions", "limits_policy", "limits_target", "max_cut_pct"]


@hookimpl
def register_domains(register):
    register(RiskLimitsDomain())


@hookimpl
def register_sources(register):
    register(RealizedVolSource())


@hookimpl
def register_targets(register):
    register(
        TargetFactory(DOMAIN_NAME, limits_target, "Desk limits file", "A flat JSON file of desk → position limit.")
    )


@hookimpl
def register_rules(register):
    register(
        Rule(
            RULE_NAME,
            max_cut_pct,
            "Gradual cuts",
            "No desk's limit is cut by more than max_cut_pct percent in one update; a deeper cut is made "
            "over several updates.",
            options=MaxCutOptions,
        )
    )


@hookimpl
def register_commands(cli):
    from .commands import risk_limits  # click only when the CLI is built

    cli.add_command(risk_limits)


def _add_tab_routes(router: Any, context: Any) -> None:
    from .tab import add_routes  # FastAPI and Jinja only when the panel builds its routes

    add_routes(router, context)


@hookimpl
def register_panel_tabs(register):
    from calibration_policy_ui.tabs import PanelTab

    register(
        PanelTab(
            "risk_limits",
            "Risk limits",
            _add_tab_routes,
            route="risk_limits",
            description="The live position limit of every desk and the latest limits calibrations.",
        )
    )
