"""Smoothing: one value per scope from the runs in the window, by the policy's strategy."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from .errors import CalibrationPolicyError
from .models import CalibrationRun
from .naming import sequence_key
from .policy import CalibrationUpdatePolicy


def _qualifies(run: CalibrationRun, policy: CalibrationUpdatePolicy) -> bool:
    """A thin or low-vega day is noise; by default it must not leak into later smoothing."""
    if not policy.smoothing_skips_thin_runs:
        return True
    if "min_sample_size" in policy.rules and run.sample_size < policy.min_sample_size:
        return False
    if "min_vega_sum" in policy.rules and run.vega_sum is not None and run.vega_sum < policy.min_vega_sum:
        return False
    return True


def window_runs(
    history: Iterable[CalibrationRun], current_run: CalibrationRun, policy: CalibrationUpdatePolicy
) -> list[CalibrationRun]:
    """Runs of the same underlying and domain within the window ending at ``current_run``.

    The current run is always included, exactly once, whether or not ``history`` holds it;
    later runs are left out, so replaying the past gives the answer it gave then; earlier runs
    too thin to pass the evidence rules are left out unless the policy says otherwise.
    """
    start = current_run.timestamp - timedelta(days=policy.smoothing_window_days)
    seen = {current_run.run_id} if current_run.run_id else set()
    picked = [current_run]
    for run in history:
        if run is current_run or (run.run_id and run.run_id in seen):
            continue
        if run.underlying != current_run.underlying or run.domain != current_run.domain:
            continue
        if start <= run.timestamp <= current_run.timestamp and _qualifies(run, policy):
            picked.append(run)
            if run.run_id:
                seen.add(run.run_id)
    picked.sort(key=lambda r: (r.timestamp, sequence_key(r.run_id)))  # …_10 after …_9, not before _2
    # The current run is the newest point even if another run shares its timestamp (found by identity:
    # comparing models field by field was a tenth of a replay's time).
    return [run for run in picked if run is not current_run] + [current_run]


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
