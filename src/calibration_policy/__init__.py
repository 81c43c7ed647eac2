"""calibration-policy: decide when a recalibrated parameter actually goes live, and say why.

The public names below load on first use (PEP 562), so ``import calibration_policy`` stays
cheap for a host or a cron job that only needs part of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CalibrationUpdatePolicy": "policy",
    "CalibrationRun": "models",
    "Decision": "models",
    "RuleVerdict": "models",
    "ScopeChange": "models",
    "record_calibration_result": "steps",  # not "pipeline": a cron job that only records skips the change kinds
    "load_recent_calibration_history": "steps",
    "open_store": "stores",
    "Store": "stores",
    "active_store": "stores",
    "StoreType": "specs",
    "StoreError": "errors",
    "HistoryStore": "history",
    "get_smoothed_multipliers": "smoothing",
    "should_apply_update": "decide",
    "run_update": "pipeline",
    "force_apply": "pipeline",
    "UpdateOutcome": "pipeline",
    "UpdateOptions": "pipeline",
    "replay": "replay",
    "ReplayResult": "replay",
    "RuleContext": "decide",
    "BatchContext": "engine",
    "BatchVerdict": "engine",
    "EngineError": "engine",
    "Domain": "domain",
    "Extracted": "domain",
    "hookimpl": "hookspecs",
    "Smoother": "specs",
    "Rule": "specs",
    "TargetFactory": "specs",
    "PluginError": "errors",
    "get_plugin_manager": "plugins",
    "CalibrationPolicyError": "errors",
    "HistoryError": "errors",
    "DataFolderError": "errors",
    "foreign_files": "folders",
    "InvalidNameError": "errors",
    "InvalidRunError": "errors",
    "PolicyError": "errors",
    "ReviewError": "errors",
    "StaleChangeError": "errors",
    "SettledError": "errors",
    "TargetError": "errors",
    "UnknownPluginError": "errors",
    "PermissionDeniedError": "errors",
    "PermissionCheckError": "errors",
    "PermissionsTable": "permissions",
    "live_config_copy": "paths",
    # what a host calls to govern its own live config and review changes (plugin authors: calibration_policy.plugin)
    "Target": "target",
    "JsonFileTarget": "target",
    "approve_suggestion": "pipeline",
    "modify_suggestion": "pipeline",
    "reject_suggestion": "pipeline",
    "roll_back": "pipeline",
    "propose_policy": "pipeline",
    "review_policy": "pipeline",
    "set_policy": "pipeline",
    "roll_back_policy": "pipeline",
    "status_report": "status",
    "Context": "context",
    "Governor": "governor",
    "Change": "governor",
    "Event": "events",
    "ChangeType": "specs",
    "Deliverer": "specs",
    "Endpoint": "notify",
    "Sent": "delivery",
    "deliver_pass": "delivery",
    "deliveries_for": "delivery",
    "open_outbox": "stores",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'calibration_policy' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from .context import Context
    from .decide import RuleContext, should_apply_update
    from .delivery import Sent, deliver_pass, deliveries_for
    from .domain import Domain, Extracted
    from .engine import BatchContext, BatchVerdict, EngineError
    from .errors import (
        CalibrationPolicyError,
        DataFolderError,
        HistoryError,
        InvalidNameError,
        InvalidRunError,
        PermissionCheckError,
        PermissionDeniedError,
        PluginError,
        PolicyError,
        ReviewError,
        SettledError,
        StaleChangeError,
        StoreError,
        TargetError,
        UnknownPluginError,
    )
    from .events import Event
    from .folders import foreign_files
    from .governor import Change, Governor
    from .history import HistoryStore
    from .hookspecs import hookimpl
    from .models import CalibrationRun, Decision, RuleVerdict, ScopeChange
    from .notify import Endpoint
    from .paths import live_config_copy
    from .permissions import PermissionsTable
    from .pipeline import (
        UpdateOptions,
        UpdateOutcome,
        approve_suggestion,
        force_apply,
        load_recent_calibration_history,
        modify_suggestion,
        propose_policy,
        record_calibration_result,
        reject_suggestion,
        review_policy,
        roll_back,
        roll_back_policy,
        run_update,
        set_policy,
    )
    from .plugins import get_plugin_manager
    from .policy import CalibrationUpdatePolicy
    from .replay import ReplayResult, replay
    from .smoothing import get_smoothed_multipliers
    from .specs import ChangeType, Deliverer, Rule, Smoother, StoreType, TargetFactory
    from .status import status_report
    from .stores import Store, active_store, open_outbox, open_store
    from .target import JsonFileTarget, Target
