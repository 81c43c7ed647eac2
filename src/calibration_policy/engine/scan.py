"""The one explicit scan for state: the simulated live values, when they last changed, and the
route of each run (apply, propose for approval, settle).

Nothing a rule reads changes between two applies, so the scan asks the rules (over arrays, see
:mod:`.rules`) about the runs ahead with the live values held fixed, takes the first run that
applies, moves the live values, and asks again from the run after it. Underlyings do not share
live values, so :func:`scan_together` asks about the runs ahead of every underlying in one batch
(each run against its own underlying's live values): a replay of 200 underlyings costs about as
many batches as its busiest underlying has applies, not the 200 underlyings' sum. The reasons are not
written during the scan: :meth:`Scan.decision` builds a run's :class:`~calibration_policy.models.Decision`
(every rule's verdict and text, from the rule's own ``fn``) only when someone reads it, and checks
that it says what the scan did.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..decide import reaches, should_apply_update
from ..models import CalibrationRun, Decision
from ..policy import CalibrationUpdatePolicy
from .clock import times_ns
from .errors import EngineError, run_named
from .rules import Evaluated, evaluate, moments
from .smooth import Smoothed

SETTLE, APPLY, PROPOSE = 0, 1, 2
ROUTES = ("settle", "apply", "propose")
# One piece's answer: the batch's (see :func:`_asked`), where the piece starts in it, and which of its runs passed.
Asked = tuple[Evaluated, int, Any]


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


class _Rows(Sequence):
    """The smoothed values of each run as a dictionary (``{}`` before ``first``), built when read."""

    def __init__(self, smoothed: Smoothed, first: int, n: int) -> None:
        self._smoothed, self._first, self._n = smoothed, first, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(self._n))]
        j = j + self._n if j < 0 else j
        if not 0 <= j < self._n:
            raise IndexError(j)
        return {} if j < self._first else self._smoothed.row(j - self._first)


class Prepared:
    """What a scan reads of one underlying's runs whatever the policy's thresholds, as arrays: built
    once and shared by every candidate that smooths alike (``tune``)."""

    def __init__(
        self,
        runs: Sequence[CalibrationRun],
        smoothed: Sequence[dict[str, float]] | Smoothed,
        first: int = 0,
        times: Any = None,
    ) -> None:
        import numpy as np

        n = len(runs)
        self.runs, self.first = runs, first
        self.times = times_ns([run.timestamp for run in runs]) if times is None else times
        self.sample = np.array([run.sample_size for run in runs], dtype=np.float64)
        self.vega = np.array([math.nan if run.vega_sum is None else run.vega_sum for run in runs], dtype=np.float64)
        self.recorded = [j for j in range(first, n) if "apply" in (runs[j].decision or {})]
        if isinstance(smoothed, Smoothed):  # columns from the smoothing: no dictionary per run
            self._from_columns(smoothed)
            return
        self.smoothed: Sequence[dict[str, float]] = smoothed
        scopes = dict.fromkeys(scope for values in smoothed[first:] for scope in values)
        self.columns = {
            scope: np.array([values.get(scope, math.nan) for values in smoothed], dtype=np.float64) for scope in scopes
        }
        recommended = dict.fromkeys(scope for run in runs[first:] for scope in run.recommended)
        self.recommended = {
            scope: np.array([run.recommended.get(scope, math.nan) for run in runs], dtype=np.float64)
            for scope in recommended
        }
        # the end of each run's stretch of runs with the same scopes, in the same order (one array per scope)
        self.stretch_end = np.empty(n, dtype=np.int64)
        end = n
        for j in range(n - 1, -1, -1):
            if j + 1 < n and list(smoothed[j]) != list(smoothed[j + 1]):
                end = j + 1
            self.stretch_end[j] = end

    def _from_columns(self, smoothed: Smoothed) -> None:
        """The same from the smoothing's columns (of the runs from ``first`` on): a run's scopes are
        those it has a value for, in the order the smoothing names them."""
        import numpy as np

        n, first = len(self.runs), self.first
        self.smoothed = _Rows(smoothed, first, n)
        self.columns = {}
        present = np.zeros(n, dtype=object)  # each run's scopes, as a number with one bit per scope
        present[:] = 0
        for bit, (scope, values) in enumerate(smoothed.values.items()):
            column = self.columns[scope] = np.full(n, math.nan)
            column[first:] = values
            present = present + np.where(np.isnan(column), 0, 1 << bit).astype(object)
        self.recommended = dict(smoothed.recommended)
        starts = np.flatnonzero(present[:-1] != present[1:]) + 1  # where a stretch of the same scopes starts
        self.stretch_end = np.append(starts, n)[np.searchsorted(starts, np.arange(n), side="right")].astype(np.int64)

    @functools.cached_property
    def recent(self) -> list[tuple[datetime, dict[str, float]]]:
        """Each run's time and smoothed values: ``recent_smoothed``, built only for a rule that reads it."""
        return [(run.timestamp, values) for run, values in zip(self.runs, self.smoothed)]

    def starts(self) -> list[int]:
        """The first run of each stretch, from ``first`` on."""
        found, p = [], self.first
        while p < len(self.runs):
            found.append(p)
            p = int(self.stretch_end[p])
        return found


class Scan:
    """Every run of one underlying under one policy: the route and live values of each, and its
    decision on demand. Built empty; :func:`scan_together` runs it (with the other underlyings' scans)."""

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
        self.prepared = prepared if prepared is not None else Prepared(runs, smoothed, first)
        self.runs, self.smoothed, self.policy, self.first = runs, smoothed, policy, first
        self.evidence_keys = evidence_keys
        self._decisions: dict[int, Decision] = {}
        # what the scan carries from run to run: the live values, when they last changed, how far it got
        self._live, self._last, self._done = dict(start), last_applied, first
        self._lead: dict[str, Any] = {}
        self._rest: list[str] = []
        self._part: Any = None  # this underlying's part of the columns, when the scan ran as columns

    def _dictionaries(self) -> None:
        """The state of a scan that keeps one dictionary per underlying (not kept as columns)."""
        import numpy as np

        n = len(self.runs)
        self.route = np.zeros(n, dtype=np.int8)
        self._before: list[dict[str, float]] = [{}] * n
        self._writes: dict[int, dict[str, float]] = {}  # what each applied (or proposed) run writes
        self.live_before: Sequence[dict[str, float]] = self._before
        self.values: Mapping[int, dict[str, float]] = self._writes
        # the same by scope, one value per run (NaN: not written), for figures over every run at once
        self.written = {scope: np.full(n, np.nan) for scope in self.prepared.columns}
        self._lasts: list[datetime | None] = [None] * n
        self.last_applied: Sequence[datetime | None] = self._lasts
        # (runs asked, each rule's verdicts, where they start in those): for the check
        self._chunks: list[tuple[Any, dict[str, Any], int]] = []
        self._columns = dict(self.prepared.columns)  # the smoothed values, as the leading rules adjusted them
        self._candidates = np.zeros(0, dtype=np.int64)  # the runs the leading rules passed
        self._at, self._ahead = 0, 16  # candidates[at:] are not decided; how many to ask about next

    def _columns_state(self, state: Any, u: int) -> None:
        """Read this scan's state off ``state`` (:class:`.columns.Columns`, the scan of every underlying)."""
        from .columns import LastApplied, LiveBefore, Part, Writes

        part = self._part = Part(state, u, len(self.runs), self.first)
        self.route, self.written = part.route, part.written
        self.live_before, self.last_applied, self.values = LiveBefore(part), LastApplied(part), Writes(part)

    # -- the scan (driven by :func:`scan_together`) ---------------------------------------------------

    def _led(self, lead: Sequence[str], rest: Sequence[str], pieces: Sequence[tuple[Any, Asked]]) -> None:
        """Keep what the leading rules said about every run (``pieces``: one per stretch)."""
        import numpy as np

        n = len(self.runs)
        self._lead = {name: np.ones(n, dtype=bool) for name in lead}
        self._rest = list(rest)
        alive = np.zeros(n, dtype=bool)
        for rows, (answer, a, _) in pieces:
            cut = slice(a, a + len(rows))
            alive[rows] = answer.passed[cut]
            for name, ok in answer.per_rule.items():
                self._lead[name][rows] = ok[cut]
            for scope in answer.adjusted:  # a leading rule adjusted it: later rules see the adjusted values
                if self._columns[scope] is self.prepared.columns[scope]:
                    self._columns[scope] = self._columns[scope].copy()
                self._columns[scope][rows] = answer.proposed[scope][cut]
        self._candidates = np.flatnonzero(alive)
        self._stretch = self.prepared.stretch_end[self._candidates]

    def _open(self) -> bool:
        return self._at < len(self._candidates)

    def _ahead_rows(self):
        """The next runs to ask about: up to ``ahead`` candidates, within one stretch (one array per scope)."""
        at = self._at
        rows = self._candidates[at : at + self._ahead]
        return rows[self._stretch[at : at + len(rows)] == self._stretch[at]]

    def _step(self, rows, asked: Asked) -> None:
        """Take the first of ``rows`` that applies (if any), move the live values, and go on after it."""
        hits = asked[2]
        if self.policy.require_approval:  # a person decides: the live values never move here
            self._record(rows, asked, hits.tolist())
            self._at += len(rows)
            return
        if not len(hits):
            self._chunks.append((rows, asked[0].per_rule, asked[1]))
            self._at, self._ahead = self._at + len(rows), self._ahead * 2
            return
        k = int(hits[0])
        self._record(rows[: k + 1], asked, [k])
        j = int(rows[k])
        self._hold(j + 1)
        self._live, self._last = {**self._live, **self.values[j]}, self.runs[j].timestamp
        self._at, self._ahead = self._at + k + 1, max(8, 2 * (k + 1))

    def _hold(self, stop: int) -> None:
        """Runs from the last apply up to ``stop`` saw the live values the scan carries now."""
        self._before[self._done : stop] = [self._live] * (stop - self._done)
        self._lasts[self._done : stop] = [self._last] * (stop - self._done)
        self._done = stop

    def _record(self, rows, asked: Asked, hits: list[int]) -> None:
        """Keep the batch verdicts of ``rows`` and what each of the runs at ``hits`` would write."""
        answer, a, _ = asked
        self._chunks.append((rows, answer.per_rule, a))
        for k in hits:
            j = int(rows[k])
            self.route[j] = PROPOSE if self.policy.require_approval else APPLY
            proposed = {scope: float(v[a + k]) for scope, v in answer.proposed.items()}
            self._writes[j] = written(self._live, proposed, self.policy)
            for scope, value in self._writes[j].items():
                self.written[scope][j] = value

    def _passes(self, j: int) -> dict[str, bool | None]:
        """Each rule's batch verdict on run ``j`` in the policy's order (None: not asked, as an earlier
        stateless rule already failed the run)."""
        import bisect

        import numpy as np

        if self._part is not None:
            from .columns import passes_at

            return passes_at(self._part, j)
        found: dict[str, bool | None] = {name: bool(ok[j]) for name, ok in self._lead.items()}
        found.update(dict.fromkeys(self._rest, None))
        i = bisect.bisect_right(self._chunks, j, key=lambda chunk: int(chunk[0][0])) - 1
        if i >= 0:
            rows, per_rule, a = self._chunks[i]
            k = int(np.searchsorted(rows, j))
            if k < len(rows) and rows[k] == j:
                found.update({name: bool(ok[a + k]) for name, ok in per_rule.items()})
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


def scan_together(scans: Sequence[Scan], stacked: Any = None, *, columns: bool = True) -> None:
    """Run the scans (one underlying's each, all under one policy) to their ends, together.

    The stateless rules that lead the policy are asked once about every run of every underlying;
    then each round asks the other rules about the runs ahead of every underlying still open, in
    one batch (the live values one per run), and each underlying takes its own first apply. The
    rounds number about as many as the busiest underlying has applies, whatever the number of
    underlyings. When the policy allows, the scans' state is kept as columns over every underlying
    (:mod:`.columns`; ``stacked``: the scans' :class:`.columns.Stacked`, or a function that gives it,
    when the caller keeps one;
    ``columns=False`` keeps one dictionary per underlying whatever the policy, as the tests compare).
    """
    import numpy as np

    from ..plugins import get_rule
    from .columns import Stacked, scan_columns, usable

    if not scans:
        return
    policy = scans[0].policy
    rules = [(name, get_rule(name), policy.validated_rule_options(name)) for name in policy.rules]
    lead = 0
    while lead < len(rules) and rules[lead][1].stateless and rules[lead][1].batch is not None:
        lead += 1
    lead_names, rest_names = [name for name, _, _ in rules[:lead]], [name for name, _, _ in rules[lead:]]
    memo: dict[str, Any] = {}  # what a batch form computes once per policy (thresholds, bounds)
    if columns and usable(scans, rules, policy):
        stacked = Stacked([s.prepared for s in scans]) if stacked is None else stacked
        stacked = stacked() if callable(stacked) else stacked
        if stacked.scopes is not None and set(stacked.scopes) <= set(scans[0]._live):
            scan_columns(scans, rules, lead, policy, memo, stacked)
            return
    for s in scans:
        s._dictionaries()
    pieces: list[tuple[Scan, Any, Mapping[str, float], datetime | None]] = [
        (s, np.arange(p, int(s.prepared.stretch_end[p])), {}, None) for s in scans for p in s.prepared.starts()
    ]
    led: dict[int, list[tuple[Any, Asked]]] = {id(s): [] for s in scans}
    for (s, rows, _, _), answer in zip(pieces, _asked(pieces, rules[:lead], policy, memo, _Flat(scans))):
        led[id(s)].append((rows, answer))
    for s in scans:
        s._led(lead_names, rest_names, led[id(s)])
    flat = _Flat(scans)  # again: the leading rules may have adjusted the smoothed values
    open_ = [s for s in scans if s._open()]
    while open_:
        pieces = [(s, s._ahead_rows(), s._live, s._last) for s in open_]
        for (s, rows, _, _), answer in zip(pieces, _asked(pieces, rules[lead:], policy, memo, flat)):
            s._step(rows, answer)
        open_ = [s for s in open_ if s._open()]
    for s in scans:
        s._hold(len(s.runs))


class _Flat:
    """Every scan's arrays end to end, so that a batch gathers the runs of many underlyings with one
    index per array rather than one per underlying."""

    def __init__(self, scans: Sequence[Scan]) -> None:
        import numpy as np

        sizes = [len(s.runs) for s in scans]
        self.base = dict(zip(map(id, scans), [0, *np.cumsum(sizes).tolist()]))
        scopes = dict.fromkeys(scope for s in scans for scope in s._columns)
        self.columns = {
            scope: np.concatenate([s._columns.get(scope, np.full(len(s.runs), np.nan)) for s in scans])
            for scope in scopes
        }
        self.sample = np.concatenate([s.prepared.sample for s in scans])
        self.vega = np.concatenate([s.prepared.vega for s in scans])
        self.times = np.concatenate([s.prepared.times for s in scans]).view("datetime64[ns]")
        self.runs = [run for s in scans for run in s.runs]


class _Picked(Sequence):
    """The runs of a batch (read only to name one in an error), without a list per batch."""

    def __init__(self, runs: list[CalibrationRun], index: Any) -> None:
        self._runs, self._index = runs, index

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, k):
        return self._runs[int(self._index[k])]


def _asked(pieces, rules, policy: CalibrationUpdatePolicy, memo: dict[str, Any], flat: _Flat) -> list[Asked]:
    """``rules`` over each piece ``(scan, rows, live values, last applied)``: the pieces whose runs have
    the same scopes (and live scopes) asked in one batch. A piece's answer is that batch's, where the
    piece starts in it, and which of its runs passed every rule (not cut out: most are never read)."""
    import bisect

    import numpy as np

    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
    for i, (s, rows, live, _) in enumerate(pieces):
        groups.setdefault((tuple(s.smoothed[int(rows[0])]), tuple(live)), []).append(i)
    out: list[Asked] = [None] * len(pieces)  # type: ignore[list-item]
    for (scopes, live_scopes), members in groups.items():
        parts = [pieces[i] for i in members]
        sizes = [len(rows) for _, rows, _, _ in parts]
        bounds = [0, *np.cumsum(sizes).tolist()]
        index = np.concatenate([rows + flat.base[id(s)] for s, rows, _, _ in parts])
        proposed = {scope: flat.columns[scope][index] for scope in scopes}
        current = {
            scope: np.repeat(np.array([live[scope] for _, _, live, _ in parts], dtype=np.float64), sizes)
            for scope in live_scopes
        }
        evidence: dict[str, Any] = {"sample_size": flat.sample[index], "vega_sum": flat.vega[index]}
        if parts[0][0].evidence_keys:
            evidence["run_time"] = flat.times[index]
            evidence["last_applied_at"] = np.repeat(moments([last for _, _, _, last in parts]), sizes)
            evidence["recent_smoothed"] = [
                _Recent(s.prepared.recent, s.first, j) for s, rows, _, _ in parts for j in rows.tolist()
            ]

        def per_run(k: int) -> dict[str, Any]:
            i = bisect.bisect_right(bounds, k) - 1
            s, rows, _, last = parts[i]
            return s._evidence(int(rows[k - bounds[i]]), last)

        answer = evaluate(rules, policy, current, proposed, evidence, _Picked(flat.runs, index), per_run, memo)
        hits = np.flatnonzero(answer.passed)
        cuts = np.searchsorted(hits, bounds).tolist()
        for i, member in enumerate(members):
            out[member] = (answer, bounds[i], hits[cuts[i] : cuts[i + 1]] - bounds[i])
    return out


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
