"""calibration-policy: decide when a recalibrated parameter actually goes live, and say why."""

from .decide import RuleContext, should_apply_update
from .domain import Domain, Extracted
from .errors import (
    CalibrationPolicyError,
    HistoryError,
    InvalidNameError,
    InvalidRunError,
    PolicyError,
    ReviewError,
    TargetError,
    UnknownPluginError,
)
from .history import HistoryStore, load_recent_calibration_history, open_store, record_calibration_result
from .hookspecs import hookimpl
from .models import CalibrationRun, Decision, RuleVerdict, ScopeChange
from .plugins import get_plugin_manager
from .policy import CalibrationUpdatePolicy
from .smoothing import get_smoothed_multipliers

__all__ = [
    "CalibrationPolicyError",
    "CalibrationRun",
    "CalibrationUpdatePolicy",
    "Decision",
    "Domain",
    "Extracted",
    "HistoryError",
    "HistoryStore",
    "InvalidNameError",
    "InvalidRunError",
    "PolicyError",
    "ReviewError",
    "RuleContext",
    "RuleVerdict",
    "ScopeChange",
    "TargetError",
    "UnknownPluginError",
    "get_plugin_manager",
    "get_smoothed_multipliers",
    "hookimpl",
    "load_recent_calibration_history",
    "open_store",
    "record_calibration_result",
    "should_apply_update",
]
