"""Everything a plugin author needs, in one module: ``from calibration_policy.plugin import ...``.

A plugin (a domain, its rules and smoothers, its live config, its store, its commands) is written
against these names only; the rest of the package is private and may change. What a *host* calls
(``run_update``, the review functions, ``status_report``…) is in :mod:`calibration_policy` itself.
"""

from __future__ import annotations

from .decide import RuleContext
from .domain import Domain, Extracted
from .errors import CalibrationPolicyError, InvalidRunError, PluginError, TargetError
from .hookspecs import hookimpl, hookspec
from .models import Decision, RuleVerdict, ScopeChange
from .specs import ChangeType, Deliverer, Rule, Smoother, StoreType, TargetFactory
from .target import JsonFileTarget, Target

__all__ = [
    "CalibrationPolicyError",
    "ChangeType",
    "Deliverer",
    "Decision",
    "Domain",
    "Extracted",
    "InvalidRunError",
    "JsonFileTarget",
    "PluginError",
    "Rule",
    "RuleContext",
    "RuleVerdict",
    "ScopeChange",
    "Smoother",
    "StoreType",
    "Target",
    "TargetError",
    "TargetFactory",
    "hookimpl",
    "hookspec",
]
