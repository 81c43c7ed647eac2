"""The one explicit scan for state: the simulated live values, when they last changed, and the
route of each run (apply, propose for approval, settle).

Nothing a rule reads changes between two applies, so the scan asks the rules (over arrays, see
:mod:`.rules`) about the runs ahead with the live values held fixed, takes the first run that
applies, moves the live values, and asks again from the run after it. The reasons are not
written during the scan: :meth:`Scan.decision` builds a run's :class:`~calibration_policy.models.Decision`
(every rule's verdict and text, from the rule's own ``fn``) only when someone reads it, and checks
that it says what the scan did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..decide import reaches, should_apply_update
from ..models import CalibrationRun, Decision
from ..policy import CalibrationUpdatePolicy
from .rules import Evaluated, evaluate
from .smooth import EngineError, _run_named, times_ns

if TYPE_CHECKING:
    pass

SETTLE, APPLY, PROPOSE = 0, 1, 2
ROUTES = ("settle", "apply", "propose")


class _Recent(Sequence):
    """``recent_smoothed`` of one run: the smoothed values of the runs before it, without a copy per run."""

    def __init__(self, items: list[tuple[datetime, dict[str, float]]], start: int, stop: int) -> None:
        self._items, self._start, self._stop = items, start, stop

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, index):
        return self._items[self._start : self._stop][index]

    def __iter__(self):
        for i in range(self._start, self._stop):
            yield self._items[i]


class Prepared:
    """What a scan reads of one underlying's runs whatever the policy's thresholds, as arrays: built
    once and shared by every candidate that smooths alike (``tune``)."""

    def __init__(self, runs: Sequence[CalibrationRun], smoothed: Sequence[dict[str, float]], first: int = 0) -> None:
        import numpy as np

        n = len(runs)
        self.runs, self.smoothed, self.first = runs, smoothed, first
        self.times = times_ns([run.timestamp for run in runs])
        self.sample = np.array([run.sample_size for run in runs], dtype=np.float64)
        self.vega = np.array([math.nan if run.vega_sum is None else run.vega_sum for run in runs], dtype=np.float64)
        self.recent = [(run.timestamp, values) for run, values in zip(runs, smoothed)]
        scopes = dict.fromkeys(scope for values in smoothed[first:] for scope in values)
        self.columns = {
            scope: np.array([values.get(scope, math.nan) for values in smoothed], dtype=np.float64) for scope in scopes
        }
        recommended = dict.fromkeys(scope for run in runs[first:] for scope in run.recommended)
        self.recommended = {
            scope: np.array([run.recommended.get(scope, math.nan) for run in runs], dtype=np.float64)
            for scope in recommended
        }
        self.recorded = [j for j in range(first, n) if "apply" in (runs[j].decision or {})]
        # the end of each run's stretch of runs with the same scopes, in the same order (one array per scope)
        self.stretch_end = np.empty(n, dtype=np.int64)
        end = n
        for j in range(n - 1, -1, -1):
            if j + 1 < n and list(smoothed[j]) != list(smoothed[j + 1]):
                end = j + 1
            self.stretch_end[j] = end


class Scan:
    """Every run of one underlying under one policy: the route and live values of each, and its
    decision on demand."""

    def __init__(
        self,
        runs: Sequence[CalibrationRun],
        smoothed: Sequence[dict[str, float]],
        policy: CalibrationUpdatePolicy,
        start: Mapping[str, float],
        last_applied: datetime | None,
        evidence_keys: set[str],
        first: int = 0,
        prepared: Prepared | None = None,
    ) -> None:
        import numpy as np

        from ..plugins import get_rule

        self.prepared = prepared if prepared is not None else Prepared(runs, smoothed, first)
        self.runs, self.smoothed, self.policy, self.first = runs, smoothed, policy, first
        self.evidence_keys = evidence_keys
        n = len(runs)
        self.route = np.zeros(n, dtype=np.int8)
        self.live_before: list[dict[str, float]] = [{}] * n
        self.values: dict[int, dict[str, float]] = {}  # what each applied (or proposed) run writes
        self.last_applied: list[datetime | None] = [None] * n
        self._chunks: list[tuple[int, int, dict[str, Any]]] = []  # (from, to, each rule's verdicts): for the check
        self._decisions: dict[int, Decision] = {}
        self._memo: dict[str, Any] = {}
        self._rules = [(name, get_rule(name), policy.validated_rule_options(name)) for name in policy.rules]
        self._run(dict(start), last_applied)

    # -- the scan -------------------------------------------------------------------------------------

    def _run(self, live: dict[str, float], last_applied: datetime | None) -> None:
        import numpy as np

        n, p, ahead = len(self.runs), self.first, 16
        while p < n:
            stop = self._segment_end(p, min(n, p + ahead))
            evaluated = self._evaluate(p, stop, live, last_applied)
            passed = evaluated.passed
            if self.policy.require_approval:  # a person decides: the live values never move here
                self._settle(p, stop, live, last_applied, evaluated, passed)
                p = stop
                continue
            hits = np.flatnonzero(passed)
            if not len(hits):
                self._settle(p, stop, live, last_applied, evaluated, passed)
                p, ahead = stop, ahead * 2
                continue
            k = int(hits[0])
            self._settle(p, p + k + 1, live, last_applied, evaluated, passed)
            live = {**live, **self.values[p + k]}
            last_applied = self.runs[p + k].timestamp
            p, ahead = p + k + 1, max(8, 2 * (k + 1))

    def _segment_end(self, p: int, stop: int) -> int:
        """The runs from ``p`` that share its scopes (one array per scope), at most up to ``stop``."""
        return min(stop, int(self.prepared.stretch_end[p]))

    def _evaluate(self, p: int, stop: int, live: dict[str, float], last_applied: datetime | None) -> Evaluated:
        prepared = self.prepared
        proposed = {scope: prepared.columns[scope][p:stop] for scope in self.smoothed[p]}
        evidence: dict[str, Any] = {"sample_size": prepared.sample[p:stop], "vega_sum": prepared.vega[p:stop]}
        if self.evidence_keys:
            evidence["run_time"] = prepared.times[p:stop].view("datetime64[ns]")
            evidence["last_applied_at"] = last_applied
            evidence["recent_smoothed"] = [_Recent(prepared.recent, self.first, j) for j in range(p, stop)]

        def per_run(k: int) -> dict[str, Any]:
            return self._evidence(p + k, last_applied)

        return evaluate(self._rules, self.policy, live, proposed, evidence, self.runs[p:stop], per_run, self._memo)

    def _settle(self, p, stop, live, last_applied, evaluated: Evaluated, passed) -> None:
        """Record the runs ``p`` … ``stop - 1`` as decided with the live values ``live``."""
        import numpy as np

        self.live_before[p:stop] = [live] * (stop - p)
        self.last_applied[p:stop] = [last_applied] * (stop - p)
        self._chunks.append((p, stop, evaluated.per_rule))
        for k in np.flatnonzero(passed[: stop - p]).tolist():
            self.route[p + k] = PROPOSE if self.policy.require_approval else APPLY
            proposed = {scope: float(v[k]) for scope, v in evaluated.proposed.items()}
            self.values[p + k] = written(live, proposed, self.policy)

    def _passes(self, j: int) -> dict[str, bool]:
        """Each rule's batch verdict on run ``j``, in the policy's order."""
        import bisect

        p, _, per_rule = self._chunks[bisect.bisect_right(self._chunks, j, key=lambda chunk: chunk[0]) - 1]
        return {name: bool(ok[j - p]) for name, ok in per_rule.items()}

    def _evidence(self, j: int, last_applied: datetime | None) -> dict[str, Any]:
        run = self.runs[j]
        found: dict[str, Any] = {"sample_size": run.sample_size, "vega_sum": run.vega_sum}
        if self.evidence_keys:
            found["run_time"] = run.timestamp
            found["last_applied_at"] = last_applied
            found["recent_smoothed"] = _Recent(self.prepared.recent, self.first, j)
        return found

    # -- reading --------------------------------------------------------------------------------------

    def live_after(self, j: int) -> dict[str, float]:
        return {**self.live_before[j], **self.values[j]} if self.route[j] == APPLY else self.live_before[j]

    def decision(self, j: int) -> Decision:
        """Run ``j``'s decision with every rule's verdict and reason, built now (and kept)."""
        found = self._decisions.get(j)
        if found is None:
            found = self._decisions[j] = self._build(j)
        return found

    def _build(self, j: int) -> Decision:
        decision = should_apply_update(
            self.live_before[j], self.smoothed[j], self.policy, self._evidence(j, self.last_applied[j])
        )
        agree(decision, self._passes(j), self.values.get(j), self.runs[j])
        return decision


def written(live: Mapping[str, float], proposed: dict[str, float], policy: CalibrationUpdatePolicy) -> dict[str, float]:
    """What an applying run writes: every scope, or (``apply_scopes = "changed"``) those that moved enough."""
    if policy.apply_scopes != "changed":
        return proposed
    return {
        scope: new
        for scope, new in proposed.items()
        if scope not in live or reaches(new - live[scope], policy.threshold_for(scope))
    }


def agree(decision: Decision, passes: Mapping[str, bool], values: Mapping[str, float] | None, run) -> None:
    """Stop unless the rules' per-run forms (``decision``) say what their batch forms said
    (``passes``: each rule's verdict, in the policy's order)."""
    for verdict, (name, batch) in zip(decision.verdicts, passes.items()):
        if batch != verdict.passed:
            raise EngineError(
                f"Rule {name!r} {'passed' if batch else 'failed'} run {_run_named(run)} in its batch form but "
                f"{'passed' if verdict.passed else 'failed'} it in its per-run form; the two must agree."
            )
    if decision.apply != (values is not None) or (values is not None and not _same(decision.values, values)):
        raise EngineError(
            f"The rules' batch forms and per-run forms would write different values for run {_run_named(run)} "
            f"({values} against {decision.values if decision.apply else None}); the two must agree."
        )


def _same(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return set(a) == set(b) and all(a[k] == b[k] for k in a)
