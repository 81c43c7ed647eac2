"""Smoothing: one value per scope from the runs in the window, by the policy's strategy."""

from __future__ import annotations

from collections.abc import Iterable

from .engine.smooth import window_runs
from .errors import CalibrationPolicyError
from .models import CalibrationRun
from .policy import CalibrationUpdatePolicy

__all__ = ["get_smoothed_multipliers", "window_runs"]


def get_smoothed_multipliers(
    history: Iterable[CalibrationRun], current_run: CalibrationRun, policy: CalibrationUpdatePolicy
) -> dict[str, float]:
    """Smoothed value per scope (``{"global": x, "<band>": y}``) for ``current_run``.

    Each scope is smoothed on its own over the runs that have a finite value for it, so a band
    missing from some runs, or a bad value, is skipped rather than fatal. This is the decision
    engine's smoothing (:mod:`calibration_policy.engine`) over a batch of one window: a replay
    smooths with the very same code.
    """
    if not isinstance(policy, CalibrationUpdatePolicy):
        raise CalibrationPolicyError("policy must be a CalibrationUpdatePolicy.")
    if not isinstance(current_run, CalibrationRun):
        raise CalibrationPolicyError(f"current_run must be a CalibrationRun, not {type(current_run).__name__}.")
    if isinstance(history, (str, bytes, dict)) or not isinstance(history, Iterable):
        raise CalibrationPolicyError(f"history must be a list of CalibrationRun, not {type(history).__name__}.")
    history = list(history)
    for item in history:
        if not isinstance(item, CalibrationRun):
            raise CalibrationPolicyError(f"history must hold only CalibrationRun records, not {type(item).__name__}.")
    from .engine import smooth_one

    return smooth_one(history, current_run, policy)
