"""The decision engine, batch-first: one code path for a live decision and a replay of years.

A live decision is a replay of length one (as a Prometheus rule is a range query whose start is
its end). The steps, each over arrays of runs:

1. **smooth** (:func:`smooth_series`): every run's window at once, by the strategy's ``batch``
   form (``Smoother(..., batch=fn)``) or its ``fn`` window by window;
2. **check** (:mod:`.rules`): the stateless rules that lead the policy (``Rule(..., stateless=True)``:
   sample size, vega, bounds) once over every run; the others over the runs ahead with the live
   values held fixed; each by its ``batch`` form (``Rule(..., batch=fn)``) or its ``fn`` run by run;
3. **scan** (:func:`scan_together`): the one loop that carries state — the simulated live values, when
   they last changed, each run's route — moving the live values at each apply; every
   underlying's :class:`Scan` moves forward together, so one batch asks the rules about the runs
   ahead of all of them (the live values one per run); when every rule has a batch form, the scan's
   state is kept as arrays over every underlying (:mod:`.columns`);
4. **explain**: a run's :class:`~calibration_policy.models.Decision` (every verdict's text) is
   built from the rules' own ``fn`` only when it is read, and checked against what the batch forms said.

A plugin's batch form that raises, returns the wrong shape or a non-finite number stops the
engine with an :class:`EngineError` naming the plugin and the run; nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..models import CalibrationRun, Decision
from ..policy import CalibrationUpdatePolicy
from .clock import times_ns
from .errors import EngineError
from .rules import BatchContext, BatchVerdict, evaluate, moments
from .scan import APPLY, PROPOSE, ROUTES, SETTLE, Prepared, Scan, agree, scan_together
from .scan import written as written_by
from .smooth import smooth_series, window_runs

__all__ = [
    "APPLY",
    "PROPOSE",
    "ROUTES",
    "SETTLE",
    "BatchContext",
    "BatchVerdict",
    "EngineError",
    "Prepared",
    "Scan",
    "decide_one",
    "scan_together",
    "smooth_one",
    "smooth_series",
    "times_ns",
    "window_runs",
]


def smooth_one(
    history: Iterable[CalibrationRun], current_run: CalibrationRun, policy: CalibrationUpdatePolicy
) -> dict[str, float]:
    """The live path's smoothing: a batch of one window (the runs of :func:`window_runs`)."""
    runs = window_runs(history, current_run, policy)
    return smooth_series(runs, policy, [len(runs) - 1])[0]


def decide_one(
    run: CalibrationRun,
    current: Mapping[str, float],
    values: Mapping[str, float],
    policy: CalibrationUpdatePolicy,
    evidence: Mapping[str, Any],
    scope_labels: Mapping[str, str] | None = None,
) -> Decision:
    """The live path's decision: the rules over a batch of one run, with its reasons rendered (a live
    decision is always read), the two checked to agree."""
    import numpy as np

    from ..decide import should_apply_update
    from ..plugins import get_rule

    decision = should_apply_update(current, values, policy, evidence, scope_labels=scope_labels)  # checks the input
    rules = [(name, get_rule(name), policy.validated_rule_options(name)) for name in policy.rules]
    found = dict(evidence)
    batch_evidence = {
        **found,
        "sample_size": np.array([_nan_if_none(found.get("sample_size"))], dtype=np.float64),
        "vega_sum": np.array([_nan_if_none(found.get("vega_sum"))], dtype=np.float64),
    }
    if "run_time" in found:
        batch_evidence["run_time"] = times_ns([found["run_time"]]).view("datetime64[ns]")
    if "last_applied_at" in found:
        batch_evidence["last_applied_at"] = moments([found["last_applied_at"]])
    if "recent_smoothed" in found:
        batch_evidence["recent_smoothed"] = [found["recent_smoothed"]]
    proposed = {scope: np.array([float(value)], dtype=np.float64) for scope, value in values.items()}
    live = {str(scope): float(value) for scope, value in current.items()}
    batch_live = {scope: np.array([value], dtype=np.float64) for scope, value in live.items()}
    evaluated = evaluate(rules, policy, batch_live, proposed, batch_evidence, [run], lambda k: found)
    passes = {name: bool(ok[0]) for name, ok in evaluated.per_rule.items()}
    written = None
    if evaluated.passed[0]:
        written = written_by(live, {scope: float(v[0]) for scope, v in evaluated.proposed.items()}, policy)
    agree(decision, passes, written, run)
    return decision


def _nan_if_none(value: Any) -> float:
    return float("nan") if value is None else float(value)
