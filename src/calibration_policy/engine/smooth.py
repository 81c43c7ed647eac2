"""Smoothing over arrays: every run's window at once, laid out as one flat array of points.

A window is the run being smoothed and the earlier runs of its underlying within
``smoothing_window_days`` (thin runs skipped as the policy says). All windows of a batch are
handed to the strategy together, in compressed rows: ``times`` and ``values`` hold every window's
points one window after another (oldest first, the smoothed run last), and window ``k`` is
``[offsets[k], offsets[k + 1])``. A strategy with a ``batch`` form smooths them all in a few numpy
operations; one without is called once per window, with exactly the arrays its ``fn`` always got.
The live path smooths a batch of one window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..errors import CalibrationPolicyError
from ..models import CalibrationRun
from ..naming import sequence_key
from ..policy import CalibrationUpdatePolicy
from .clock import times_ns
from .errors import EngineError, run_named, runs_named
from .gates import passing

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def window_runs(
    history: Iterable[CalibrationRun], current_run: CalibrationRun, policy: CalibrationUpdatePolicy
) -> list[CalibrationRun]:
    """Runs of the same underlying and domain within the window ending at ``current_run``.

    The current run is always included, exactly once, whether or not ``history`` holds it;
    later runs are left out, so replaying the past gives the answer it gave then; earlier runs
    that fail one of the policy's evidence gates are left out unless the policy says otherwise
    (:mod:`.gates`).
    """
    start = current_run.timestamp - timedelta(days=policy.smoothing_window_days)
    candidates = [
        run
        for run in history
        if run is not current_run
        and run.underlying == current_run.underlying
        and run.domain == current_run.domain
        and start <= run.timestamp <= current_run.timestamp
    ]
    seen = {current_run.run_id} if current_run.run_id else set()
    picked = [current_run]
    for run, keep in zip(candidates, passing(candidates, policy).tolist()):
        if keep and not (run.run_id and run.run_id in seen):
            picked.append(run)
            if run.run_id:
                seen.add(run.run_id)
    picked.sort(key=lambda r: (r.timestamp, sequence_key(r.run_id)))  # …_10 after …_9, not before _2
    # The current run is the newest point even if another run shares its timestamp (found by identity:
    # comparing models field by field was a tenth of a replay's time).
    return [run for run in picked if run is not current_run] + [current_run]


class Smoothed:
    """The smoothed values of many runs as columns: ``values[scope]`` one number per target run (NaN: the
    run has no such scope), ``scopes`` in the order the targets name them; ``recommended[scope]`` the
    recommended values of every run the targets were smoothed among (NaN: none). A run's dictionary
    (:meth:`row`) is built only when read."""

    def __init__(self, scopes: tuple[str, ...], values: dict[str, Any], recommended: dict[str, Any]) -> None:
        self.scopes, self.values, self.recommended = scopes, values, recommended

    def row(self, k: int) -> dict[str, float]:
        found = {}
        for scope in self.scopes:
            value = float(self.values[scope][k])
            if value == value:  # not NaN: the run has the scope
                found[scope] = value
        return found

    def rows(self) -> list[dict[str, float]]:
        """Every target's dictionary, in order."""
        import numpy as np

        count = len(next(iter(self.values.values()))) if self.values else 0
        lists = {scope: values.tolist() for scope, values in self.values.items()}
        present = {scope: (~np.isnan(values)).tolist() for scope, values in self.values.items()}
        return [{scope: lists[scope][k] for scope in self.scopes if present[scope][k]} for k in range(count)]


def smooth_series(
    runs: Sequence[CalibrationRun],
    policy: CalibrationUpdatePolicy,
    targets: Sequence[int] | None = None,
    *,
    times: npt.NDArray[np.int64] | None = None,
    keep: npt.NDArray[np.bool_] | None = None,
    columns: bool = False,
) -> Any:
    """The smoothed values of ``runs[i]`` for every ``i`` in ``targets`` (default: all), each over
    its own window among ``runs[:i + 1]``: one dictionary per target, or with ``columns=True`` a
    :class:`Smoothed` (the same numbers as columns, for the scan; no dictionary built).

    ``runs`` are one underlying's, in the order they were recorded (timestamp, then number); each
    scope of a target is smoothed over the runs of its window that have a finite value for it.
    ``keep`` is :func:`.gates.passing` of ``runs`` when the caller already has it.
    """
    import numpy as np

    from ..plugins import get_smoother

    smoother = get_smoother(policy.smoothing)
    options = policy.validated_smoothing_options()
    n = len(runs)
    wanted = np.arange(n) if targets is None else np.asarray(targets, dtype=np.int64)
    if not len(wanted):
        return Smoothed((), {}, {}) if columns else []
    stamps = times_ns([run.timestamp for run in runs]) if times is None else times
    keep = passing(runs, policy) if keep is None else keep
    window_ns = timedelta(days=policy.smoothing_window_days) // timedelta(microseconds=1) * 1000
    first = np.searchsorted(stamps, stamps[wanted] - window_ns, side="left")  # earliest run in each window
    recommended = [run.recommended for run in runs]
    wanted_list = wanted.tolist()
    scopes: dict[str, None] = {}
    for i in wanted_list:
        scopes.update(dict.fromkeys(recommended[i]))
    found: dict[str, Any] = {}
    seen: dict[str, Any] = {}
    for scope in scopes:
        column = seen[scope] = _column(recommended, scope)
        has = np.array([scope in recommended[i] for i in wanted_list], dtype=bool)
        rows = np.flatnonzero(has)
        out = found[scope] = np.full(len(wanted), np.nan)
        if not len(rows):
            continue
        targets_here = wanted[rows]
        points = np.flatnonzero(keep & ~np.isnan(column))  # runs that may join a window for this scope
        start = np.searchsorted(points, first[rows], side="left")
        stop = np.searchsorted(points, targets_here, side="left")  # earlier runs only; the target joins last
        lengths = stop - start + 1
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        position = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
        earlier = position < np.repeat(lengths - 1, lengths)
        flat = np.repeat(targets_here, lengths)
        picked = np.repeat(start, lengths) + position
        flat[earlier] = points[picked[earlier]]
        values = column[flat]
        out[rows] = _call(
            smoother, stamps[flat].view("datetime64[ns]"), values, offsets, options, runs, targets_here, scope
        )
    smoothed = Smoothed(tuple(scopes), found, seen)
    return smoothed if columns else smoothed.rows()


def _column(recommended: Sequence[Mapping[str, Any]], scope: str) -> npt.NDArray[np.float64]:
    """Every run's value for ``scope`` as floats, NaN where it has none or no finite number."""
    import numpy as np

    values = [found.get(scope, math.nan) for found in recommended]
    if not all(type(value) is float for value in values):  # numpy would read "1.2" as a number
        return np.array([_finite(value) for value in values], dtype=np.float64)
    column = np.array(values, dtype=np.float64)
    column[~np.isfinite(column)] = math.nan
    return column


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else math.nan


def _call(smoother, times, values, offsets, options, runs, targets, scope) -> npt.NDArray[np.float64]:
    """The strategy over every window: its batch form when it has one, else its ``fn`` window by window."""
    import numpy as np

    count = len(offsets) - 1
    if smoother.batch is None:
        bounds = offsets.tolist()
        answer = np.empty(count, dtype=np.float64)
        for k in range(count):
            value = smoother.fn(times[bounds[k] : bounds[k + 1]], values[bounds[k] : bounds[k + 1]], options)
            answer[k] = _scalar(smoother, value, runs[int(targets[k])], scope)
        return answer
    try:
        answer = smoother.batch(times, values, offsets, options)
    except Exception as error:  # a plugin's bug: stop, naming it and the runs it was smoothing
        raise EngineError(
            f"Smoothing strategy {smoother.name!r} failed in its batch form while smoothing "
            f"{runs_named([runs[int(k)] for k in targets])}: {type(error).__name__}: {error}."
        ) from error
    answer = np.asarray(answer)
    if answer.shape != (count,) or answer.dtype.kind not in "fiu":
        raise EngineError(
            f"Smoothing strategy {smoother.name!r} returned {_shape(answer)} from its batch form for "
            f"{count} windows ({runs_named([runs[int(k)] for k in targets])}); it must return one number per window."
        )
    answer = answer.astype(np.float64, copy=False)
    bad = np.flatnonzero(~np.isfinite(answer))
    if len(bad):
        k = int(bad[0])
        raise EngineError(
            f"Smoothing strategy {smoother.name!r} returned {answer[k]} from its batch form for {scope} of run "
            f"{run_named(runs[int(targets[k])])}; a smoothed value must be a finite number."
        )
    return answer


def _scalar(smoother, value: Any, run: CalibrationRun, scope: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise CalibrationPolicyError(
            f"Smoothing strategy {smoother.name!r} returned {value!r:.40} for {scope} of run {run_named(run)}; "
            "a smoothed value must be a finite number."
        )
    return number


def _shape(answer: Any) -> str:
    return f"an array of shape {answer.shape} ({answer.dtype})" if hasattr(answer, "shape") else type(answer).__name__
