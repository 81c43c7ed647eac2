"""The policy's rules over arrays of runs, with the live values held fixed.

Between two changes of the live values nothing a rule reads moves (the live values, when they last
changed); so the engine's scan evaluates every rule over the runs up to the next change in one go,
then moves the live values and carries on (:mod:`.scan`). A rule with a ``batch`` form answers for
all those runs in a few numpy operations; one without is asked run by run, with the same
:class:`~calibration_policy.decide.RuleContext` its ``fn`` always gets — slower, identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..decide import EPSILON, RuleContext
from ..models import CalibrationRun, RuleVerdict
from ..policy import CalibrationUpdatePolicy
from .clock import times_ns
from .errors import EngineError, rule_named, run_named, runs_named

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass
class BatchContext:
    """What a rule's batch form sees: the :class:`~calibration_policy.decide.RuleContext` of many runs.

    ``proposed[scope]`` holds one value per run (earlier rules' adjustments applied); so does
    ``current[scope]``, the live values each run is decided against (a batch holds the runs of
    many underlyings, each against its own live values; every run of a batch has the same live
    scopes); ``evidence`` holds ``sample_size`` and ``vega_sum`` as float arrays (NaN: unknown),
    ``run_time`` as ``datetime64[ns]``, and the keys the rule declares (``last_applied_at``:
    ``datetime64[ns]`` per run, NaT when nothing changed yet; ``recent_smoothed``: a list per run).
    """

    current: dict[str, npt.NDArray[np.float64]]
    proposed: dict[str, npt.NDArray[np.float64]]
    policy: CalibrationUpdatePolicy
    evidence: dict[str, Any]
    options: Any = None
    size: int = 0
    memo: dict[str, Any] = field(default_factory=dict)  # shared by the batches of one scan

    def threshold_for(self, scope: str) -> float:
        return self.once(f"threshold:{scope}", lambda: self.policy.threshold_for(scope))

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per scan (e.g. the policy's effective bounds), not once per batch."""
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def reaches(self, delta: npt.NDArray[np.float64], threshold: float) -> npt.NDArray[np.bool_]:
        """:func:`calibration_policy.decide.reaches` over an array."""
        return reaching(delta, threshold)


@dataclass
class BatchVerdict:
    """One rule over a batch: ``passed`` one bool per run; ``adjusted`` the values it sets (like
    :attr:`RuleVerdict.adjusted`), per scope one value per run, or None when it adjusts nothing."""

    passed: npt.NDArray[np.bool_]
    adjusted: dict[str, npt.NDArray[np.float64]] | None = None


@dataclass
class Evaluated:
    """The rules over a batch: whether each run passes them all, and the values each would write."""

    passed: npt.NDArray[np.bool_]
    proposed: dict[str, npt.NDArray[np.float64]]
    per_rule: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    adjusted: set[str] = field(default_factory=set)  # the scopes some rule adjusted


def evaluate(
    rules: Sequence[tuple[str, Any, Any]],
    policy: CalibrationUpdatePolicy,
    current: Mapping[str, npt.NDArray[np.float64]],
    proposed: dict[str, npt.NDArray[np.float64]],
    evidence: dict[str, Any],
    runs: Sequence[CalibrationRun],
    per_run_evidence: Callable[[int], dict[str, Any]],
    memo: dict[str, Any] | None = None,
    doing: str = "deciding",
) -> Evaluated:
    """Every rule (``(name, spec, options)`` in the policy's order) over the batch's runs; ``doing`` says in
    an error what the rules were asked for ("deciding", "choosing the runs the smoothing counts")."""
    import numpy as np

    size = len(runs)
    passed = np.ones(size, dtype=bool)
    per_rule = {}
    changed: set[str] = set()
    memo = {} if memo is None else memo
    live, scopes = dict(current), set(proposed)
    with np.errstate(over="ignore", invalid="ignore"):  # inf and NaN as Python's floats give them
        for name, spec, options in rules:
            if spec.batch is not None:
                ctx = BatchContext(live, proposed, policy, evidence, options, size, memo)
                try:
                    verdict = spec.batch(ctx)
                except Exception as error:  # a plugin's bug: stop, naming it and the runs
                    raise EngineError(
                        f"{rule_named(name)} failed in its batch form while {doing} {runs_named(runs)}: "
                        f"{type(error).__name__}: {error}."
                    ) from error
                ok, adjusted = _checked(name, verdict, runs, scopes)
            else:
                ok, adjusted = _per_run(name, spec, options, policy, current, proposed, runs, per_run_evidence, doing)
            per_rule[name] = ok
            passed &= ok
            if adjusted is not None:
                proposed = {**proposed, **adjusted}
                changed.update(adjusted)
    return Evaluated(passed, proposed, per_rule, changed)


def _per_run(name, spec, options, policy, current, proposed, runs, per_run_evidence, doing):
    """A rule without a batch form, asked once per run exactly as the live path asks it."""
    import numpy as np

    size = len(runs)
    ok = np.empty(size, dtype=bool)
    adjusted: dict[str, Any] | None = None
    columns = {scope: values.tolist() for scope, values in proposed.items()}
    lives = {scope: values.tolist() for scope, values in current.items()}
    for k in range(size):
        ctx = RuleContext(
            current={scope: values[k] for scope, values in lives.items()},
            proposed={scope: values[k] for scope, values in columns.items()},
            policy=policy,
            evidence=per_run_evidence(k),
            options=options,
        )
        try:
            verdict = spec.fn(ctx)
        except Exception as error:  # a plugin's bug: stop, naming it and the run
            raise EngineError(
                f"{rule_named(name)} failed while {doing} run {run_named(runs[k])}: {type(error).__name__}: {error}."
            ) from error
        if not isinstance(verdict, RuleVerdict):
            raise EngineError(
                f"{rule_named(name)} returned {type(verdict).__name__}, not a RuleVerdict, for run {run_named(runs[k])}."
            )
        ok[k] = verdict.passed
        if verdict.adjusted is not None:
            if adjusted is None:
                adjusted = {scope: values.copy() for scope, values in proposed.items()}
            for scope, value in verdict.adjusted.items():
                if scope not in adjusted or isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise EngineError(
                        f"{rule_named(name)} adjusted {scope!r} to {value!r:.40} for run {run_named(runs[k])}; "
                        "a rule may only set the run's own scopes to numbers."
                    )
                adjusted[scope][k] = value
    if adjusted is not None:
        _finite(name, adjusted, runs)
    return ok, adjusted


def _checked(name: str, verdict: Any, runs: Sequence[CalibrationRun], scopes: set[str]):
    """A batch form's answer, or a sentence naming the rule and the run it got wrong."""
    import numpy as np

    size = len(runs)
    if not isinstance(verdict, BatchVerdict):
        raise EngineError(
            f"{rule_named(name)} returned {type(verdict).__name__} from its batch form for {runs_named(runs)}, "
            "not a BatchVerdict."
        )
    passed = np.asarray(verdict.passed)
    if passed.shape != (size,) or passed.dtype != bool:
        raise EngineError(
            f"{rule_named(name)} returned {passed.size} pass/fail answers ({passed.dtype}) from its batch form for "
            f"{size} runs ({runs_named(runs)}); it must return one bool per run."
        )
    adjusted = None
    if verdict.adjusted is not None:
        adjusted = {}
        for scope, values in verdict.adjusted.items():
            values = np.asarray(values)
            if scope not in scopes or values.shape != (size,) or values.dtype.kind not in "fiu":
                raise EngineError(
                    f"{rule_named(name)} adjusted {scope!r} with {values.size} values from its batch form for {size} "
                    f"runs ({runs_named(runs)}); it must give one number per run for one of the runs' scopes."
                )
            adjusted[scope] = values.astype(np.float64, copy=False)
        _finite(name, adjusted, runs)
    return passed, adjusted


def _finite(name: str, adjusted: Mapping[str, Any], runs: Sequence[CalibrationRun]) -> None:
    import numpy as np

    for scope, values in adjusted.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            k = int(bad[0])
            raise EngineError(
                f"{rule_named(name)} adjusted {scope!r} to {values[k]} for run {run_named(runs[k])}; "
                "an adjusted value must be a finite number."
            )


def reaching(delta: npt.NDArray[np.float64], threshold: float) -> npt.NDArray[np.bool_]:
    """:func:`calibration_policy.decide.reaches` over an array (the same operations, so the same answers)."""
    import numpy as np

    return np.abs(delta) >= threshold - EPSILON * max(1.0, abs(threshold))


def moments(values: Sequence[datetime | None]) -> npt.NDArray[np.datetime64]:
    """Times (or None) as ``datetime64[ns]``, NaT for None: ``last_applied_at`` of a batch."""
    import numpy as np

    known = [value for value in values if value is not None]
    found = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    if known:
        found[[value is not None for value in values]] = times_ns(known).view("datetime64[ns]")
    return found


def nan_or(value: Any) -> float:
    return math.nan if value is None else float(value)
