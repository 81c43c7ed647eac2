"""Smoothing: one value per scope from the runs in the window, by the policy's strategy."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .errors import CalibrationPolicyError
from .models import CalibrationRun
from .naming import sequence_key
from .plugins import get_smoother
from .policy import CalibrationUpdatePolicy

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT64 = 2**63


def _times_ns(moments: list[datetime]) -> npt.NDArray[np.datetime64]:
    """UTC times as ``datetime64[ns]``, counted exactly from the epoch in integers.

    numpy would wrap a time outside 1677-09-21 … 2262-04-11 around silently, so such a time
    is an error naming it rather than a wrong weight.
    """
    import numpy as np

    counts = [(moment - _EPOCH) // timedelta(microseconds=1) * 1000 for moment in moments]
    for moment, count in zip(moments, counts):
        if not -_INT64 < count < _INT64:
            raise CalibrationPolicyError(
                f"Cannot smooth a run at {moment.isoformat()}: smoothing counts time in nanoseconds, "
                "which reach only from 1677-09-21 to 2262-04-11."
            )
    return np.array(counts, dtype=np.int64).view("datetime64[ns]")


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
    missing from some runs, or a bad value, is skipped rather than fatal. The strategy gets numpy
    arrays (see the ``register_smoothers`` hook), never pandas: a decision must not pay for
    importing it. numpy is imported here, on first use, so importing this module stays cheap.
    """
    import numpy as np

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
    smoother = get_smoother(policy.smoothing)
    options = policy.validated_smoothing_options()
    runs = window_runs(history, current_run, policy)
    smoothed: dict[str, float] = {}
    recommended = [run.recommended for run in runs]
    all_times = _times_ns([run.timestamp for run in runs])  # once per window, shared by its scopes
    for scope in current_run.recommended:
        points = [
            (i, float(value))
            for i, values in enumerate(recommended)
            if isinstance(value := values.get(scope), (int, float)) and math.isfinite(value)
        ]
        times = all_times if len(points) == len(runs) else all_times[[i for i, _ in points]]
        values = np.array([v for _, v in points], dtype=np.float64)
        value = float(smoother.fn(times, values, options))
        if not math.isfinite(value):
            raise CalibrationPolicyError(f"Smoothing strategy {policy.smoothing!r} returned {value} for {scope}.")
        smoothed[scope] = value
    return smoothed
