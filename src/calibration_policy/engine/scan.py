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
from typing import Any

from ..decide import reaches, should_apply_update
from ..models import CalibrationRun, Decision
from ..policy import CalibrationUpdatePolicy
from .errors import EngineError, run_named
from .rules import Evaluated, evaluate
from .smooth import times_ns

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
        self._chunks: list[tuple[Any, dict[str, Any]]] = []  # (runs asked, each rule's verdicts): for the check
        self._decisions: dict[int, Decision] = {}
        self._memo: dict[str, Any] = {}
        self._rules = [(name, get_rule(name), policy.validated_rule_options(name)) for name in policy.rules]
        self._run(dict(start), last_applied)

    # -- the scan -------------------------------------------------------------------------------------

    def _run(self, live: dict[str, float], last_applied: datetime | None) -> None:
        """The stateless rules that lead the policy once over every run; then the scan, which asks the
        other rules only about the runs those passed, up to the next apply, and moves the live values."""
        import numpy as np

        lead = 0
        while lead < len(self._rules) and self._rules[lead][1].stateless and self._rules[lead][1].batch is not None:
            lead += 1
        self._lead_names = [name for name, _, _ in self._rules[:lead]]
        self._rest = self._rules[lead:]
        n, first = len(self.runs), self.first
        self._lead = {name: np.ones(n, dtype=bool) for name in self._lead_names}
        self._columns = dict(self.prepared.columns)
        alive = np.zeros(n, dtype=bool)
        p = first
        while p < n:  # one stretch of runs with the same scopes at a time
            stop = int(self.prepared.stretch_end[p])
            evaluated = self._evaluate(np.arange(p, stop), self._rules[:lead], {}, None)
            alive[p:stop] = evaluated.passed
            for name, ok in evaluated.per_rule.items():
                self._lead[name][p:stop] = ok
            for scope in evaluated.adjusted:  # a leading rule adjusted it: later rules see the adjusted values
                if self._columns[scope] is self.prepared.columns[scope]:
                    self._columns[scope] = self._columns[scope].copy()
                self._columns[scope][p:stop] = evaluated.proposed[scope]
            p = stop
        candidates = np.flatnonzero(alive)
        stretch = self.prepared.stretch_end[candidates]
        done, at, ahead = first, 0, 16  # every run before `done` is decided; candidates[at:] are not
        while at < len(candidates):
            rows = candidates[at : at + ahead]
            rows = rows[stretch[at : at + len(rows)] == stretch[at]]  # one stretch: one array per scope
            evaluated = self._evaluate(rows, self._rest, live, last_applied)
            hits = np.flatnonzero(evaluated.passed)
            if self.policy.require_approval:  # a person decides: the live values never move here
                self._record(rows, evaluated, hits, live)
                at += len(rows)
                continue
            if not len(hits):
                self._chunks.append((rows, evaluated.per_rule))
                at, ahead = at + len(rows), ahead * 2
                continue
            k = int(hits[0])
            self._record(rows[: k + 1], evaluated, hits[:1], live)
            j = int(rows[k])
            self.live_before[done : j + 1] = [live] * (j + 1 - done)
            self.last_applied[done : j + 1] = [last_applied] * (j + 1 - done)
            live, last_applied, done = {**live, **self.values[j]}, self.runs[j].timestamp, j + 1
            at, ahead = at + k + 1, max(8, 2 * (k + 1))
        self.live_before[done:n] = [live] * (n - done)
        self.last_applied[done:n] = [last_applied] * (n - done)

    def _evaluate(self, rows, rules, live: dict[str, float], last_applied: datetime | None) -> Evaluated:
        """``rules`` over the runs ``rows`` (indices of runs with the same scopes), the live values held fixed."""
        prepared = self.prepared
        proposed = {scope: self._columns[scope][rows] for scope in self.smoothed[int(rows[0])]}
        evidence: dict[str, Any] = {"sample_size": prepared.sample[rows], "vega_sum": prepared.vega[rows]}
        if self.evidence_keys:
            evidence["run_time"] = prepared.times[rows].view("datetime64[ns]")
            evidence["last_applied_at"] = last_applied
            evidence["recent_smoothed"] = [_Recent(prepared.recent, self.first, j) for j in rows.tolist()]

        def per_run(k: int) -> dict[str, Any]:
            return self._evidence(int(rows[k]), last_applied)

        runs = [self.runs[j] for j in rows.tolist()]
        return evaluate(rules, self.policy, live, proposed, evidence, runs, per_run, self._memo)

    def _record(self, rows, evaluated: Evaluated, hits, live: dict[str, float]) -> None:
        """Keep the batch verdicts of ``rows`` and what each of the runs at ``hits`` would write."""
        self._chunks.append((rows, evaluated.per_rule))
        for k in hits.tolist():
            j = int(rows[k])
            self.route[j] = PROPOSE if self.policy.require_approval else APPLY
            proposed = {scope: float(v[k]) for scope, v in evaluated.proposed.items()}
            self.values[j] = written(live, proposed, self.policy)

    def _passes(self, j: int) -> dict[str, bool | None]:
        """Each rule's batch verdict on run ``j`` in the policy's order (None: not asked, as an earlier
        stateless rule already failed the run)."""
        import bisect

        import numpy as np

        found: dict[str, bool | None] = {name: bool(ok[j]) for name, ok in self._lead.items()}
        found.update(dict.fromkeys((name for name, _, _ in self._rest), None))
        i = bisect.bisect_right(self._chunks, j, key=lambda chunk: int(chunk[0][0])) - 1
        if i >= 0:
            rows, per_rule = self._chunks[i]
            k = int(np.searchsorted(rows, j))
            if k < len(rows) and rows[k] == j:
                found.update({name: bool(ok[k]) for name, ok in per_rule.items()})
        return found

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


def agree(decision: Decision, passes: Mapping[str, bool | None], values: Mapping[str, float] | None, run) -> None:
    """Stop unless the rules' per-run forms (``decision``) say what their batch forms said
    (``passes``: each rule's verdict, in the policy's order)."""
    for verdict, (name, batch) in zip(decision.verdicts, passes.items()):
        if batch is not None and batch != verdict.passed:
            raise EngineError(
                f"Rule {name!r} {'passed' if batch else 'failed'} run {run_named(run)} in its batch form but "
                f"{'passed' if verdict.passed else 'failed'} it in its per-run form; the two must agree."
            )
    if decision.apply != (values is not None) or (values is not None and not _same(decision.values, values)):
        raise EngineError(
            f"The rules' batch forms and per-run forms would write different values for run {run_named(run)} "
            f"({values} against {decision.values if decision.apply else None}); the two must agree."
        )


def _same(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return set(a) == set(b) and all(a[k] == b[k] for k in a)
