"""Built-in smoothing strategies: time-aware EWMA and rolling median.

They run on numpy and plain floats, not pandas: importing pandas (and the pyarrow it pulls in)
cost a fresh process more than the whole rest of a decision. numpy itself is imported inside
the functions, so building a policy (which loads this plugin to check names) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from calibration_policy.hookspecs import hookimpl
from calibration_policy.specs import Smoother

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class EwmaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    half_life_days: PositiveFloat = Field(7.0, le=36_500)  # 100 years: longer is a plain mean of any window


def half_life_ns(days: float) -> int:
    """The half-life in whole nanoseconds, the resolution of ``times``.

    Spelled as ``pandas.Timedelta(days=days)`` computes it (days → hours → seconds → ns, then
    truncated), so the result matches pandas' ``ewm`` to the last bit; never 0, which would
    divide by zero (a half-life under 1 ns already gives every older point zero weight).
    """
    return max(1, int(((days * 24) * 3600) * 1_000_000_000))


def ewma(times: npt.NDArray[np.datetime64], values: npt.NDArray[np.float64], options: EwmaOptions) -> float:
    """Exponentially weighted mean where weight halves every ``half_life_days`` of age.

    Weights come from the timestamps, not the row count, so a missing day or an irregular gap
    weighs exactly as much as the elapsed time says; runs sharing a timestamp weigh the same.

    This is pandas' ``Series.ewm(halflife=…, times=…, adjust=True).mean()`` at the last point,
    step for step (``ewm`` in pandas/_libs/window/aggregations.pyx, with ``com=1`` as pandas
    sets it when ``times`` is given): between consecutive points the accumulated weight decays
    by ``0.5 ** (Δt / halflife)``, then the new point joins with weight 1. Mathematically that
    is ``Σ 0.5**(age_i/h)·v_i / Σ 0.5**(age_i/h)``; doing it pandas' way keeps the two equal to
    the last bit (the property tests check it) rather than merely close.
    """
    import numpy as np

    # pandas turns the int64 nanoseconds into float64 *before* differencing; so do we, to match
    # it exactly (float64 holds today's times to 256 ns, 2262's to 1 µs: nothing against days).
    nanoseconds = times.astype("datetime64[ns]", copy=False).view(np.int64)
    deltas = np.diff(nanoseconds.astype(np.float64)) / float(half_life_ns(options.half_life_days))
    # Python's float ** is C pow(), as in pandas' compiled loop (numpy's vectorised power may
    # differ in the last bit); at most a few hundred points, so a plain loop costs microseconds.
    decays = [0.5**delta for delta in deltas.tolist()]
    points = values.tolist()
    weighted, old_weight = points[0], 1.0
    for decay, value in zip(decays, points[1:]):
        old_weight *= decay
        if weighted != value:  # as pandas: a constant series stays exactly constant
            weighted = (old_weight * weighted + value) / (old_weight + 1.0)
        old_weight += 1.0
    return float(weighted)


def rolling_median(times: npt.NDArray[np.datetime64], values: npt.NDArray[np.float64], options: None) -> float:
    """Median of the window: one wild day cannot move it at all."""
    import numpy as np

    return float(np.median(values))


@hookimpl
def register_smoothers(register):
    register(
        Smoother(
            "ewma",
            ewma,
            "Exponentially weighted average",
            "Recent runs count more; a run's weight halves every half_life_days of age.",
            options=EwmaOptions,
        )
    )
    register(
        Smoother(
            "rolling_median", rolling_median, "Rolling median", "The median of the window; one wild day cannot move it."
        )
    )
