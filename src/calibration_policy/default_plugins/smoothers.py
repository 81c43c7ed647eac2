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


def _windows(offsets: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each window's length, and the windows ordered longest first (so the windows still open at
    step ``k`` are a prefix of that order)."""
    import numpy as np

    lengths = np.diff(offsets)
    return lengths, np.argsort(-lengths, kind="stable")


def ewma_batch(
    times: npt.NDArray[np.datetime64],
    values: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64],
    options: EwmaOptions,
) -> npt.NDArray[np.float64]:
    """:func:`ewma` of every window at once, equal to it to the last bit.

    The recurrence runs over the position in the window, for all windows together (a window of
    14 daily runs takes 14 numpy steps whatever the number of windows). The decay between two
    points is ``0.5 ** Δ`` by Python's ``pow``, as :func:`ewma` takes it, computed once per
    distinct gap (numpy's vectorised power can differ in the last bit).
    """
    import numpy as np

    lengths, order = _windows(offsets)
    seconds = times.astype("datetime64[ns]", copy=False).view(np.int64).astype(np.float64)
    gaps = np.zeros(len(values), dtype=np.float64)
    gaps[1:] = np.diff(seconds) / float(half_life_ns(options.half_life_days))  # the gap to the point before
    gaps[offsets[:-1]] = 0.0  # a window's first point has none (the gap to the window before it is unused)
    distinct = np.sort(gaps)  # the distinct gaps: a sort and a binary search (np.unique's argsort costs more)
    distinct = distinct[np.concatenate(([True], distinct[1:] != distinct[:-1]))]
    decays = np.array([0.5**gap for gap in distinct.tolist()], dtype=np.float64)[np.searchsorted(distinct, gaps)]
    starts = offsets[:-1][order]
    weighted = values[starts].copy()
    old_weight = np.ones(len(starts), dtype=np.float64)
    open_at = np.searchsorted(-lengths[order], -np.arange(1, int(lengths.max(initial=1))), side="left")
    for step, still_open in enumerate(open_at.tolist(), start=1):  # the windows longer than `step`
        at = starts[:still_open] + step
        w, value = old_weight[:still_open], values[at]
        w *= decays[at]
        now = weighted[:still_open]
        moved = now != value  # as pandas: a constant series stays exactly constant
        now[moved] = (w[moved] * now[moved] + value[moved]) / (w[moved] + 1.0)
        w += 1.0
    answer = np.empty(len(starts), dtype=np.float64)
    answer[order] = weighted
    return answer


def rolling_median(times: npt.NDArray[np.datetime64], values: npt.NDArray[np.float64], options: None) -> float:
    """Median of the window: one wild day cannot move it at all."""
    import numpy as np

    return float(np.median(values))


def rolling_median_batch(
    times: npt.NDArray[np.datetime64], values: npt.NDArray[np.float64], offsets: npt.NDArray[np.int64], options: None
) -> npt.NDArray[np.float64]:
    """:func:`rolling_median` of every window at once: one sort of a table whose rows are the windows
    (padded with NaN, which sorts last), then the middle one or two of each row averaged as
    ``numpy.median`` averages them."""
    import numpy as np

    lengths = np.diff(offsets)
    table = np.full((len(lengths), int(lengths.max(initial=1))), np.nan)
    row = np.repeat(np.arange(len(lengths)), lengths)
    table[row, np.arange(len(values)) - offsets[:-1][row]] = values
    table.sort(axis=1)
    rows = np.arange(len(lengths))
    low, high = table[rows, (lengths - 1) // 2], table[rows, lengths // 2]
    return np.where(lengths % 2 == 1, low, (low + high) / 2)


@hookimpl
def register_smoothers(register):
    register(
        Smoother(
            "ewma",
            ewma,
            "Exponentially weighted average",
            "Recent runs count more; a run's weight halves every half_life_days of age.",
            options=EwmaOptions,
            batch=ewma_batch,
        )
    )
    register(
        Smoother(
            "rolling_median",
            rolling_median,
            "Rolling median",
            "The median of the window; one wild day cannot move it.",
            batch=rolling_median_batch,
        )
    )
