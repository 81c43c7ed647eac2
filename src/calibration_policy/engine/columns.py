"""The scan kept as columns: every underlying's state in numpy arrays, moved forward together.

:func:`.scan.scan_together` asks the rules about the runs ahead of every underlying in one batch;
what it carries from round to round (each underlying's live values, where it got to, when its live
values last changed) and what it finds (each run's route, what each applying run writes) are kept
here as arrays over every underlying at once — the live values one column per scope, one row per
underlying; the routes and the written values one row per run of every underlying, end to end. A
round is a fixed number of numpy operations whatever the number of underlyings: the rules' batch
forms over the next runs of each underlying still open, then each underlying's first apply taken
with one ``argmax``. Nothing is built per run: a run's live values, what it writes and its
:class:`~calibration_policy.models.Decision` are read off the columns when someone asks
(:class:`LiveBefore`, :class:`Writes`).

It runs when every run of every underlying has the same scopes (in the same order), every
underlying's live values have the same scopes and hold those, every rule has a batch form, no rule
reads ``recent_smoothed`` and no person approves (``require_approval``): the policies ``tune``
explores. Otherwise the scan keeps one dictionary per underlying (:mod:`.scan`); both decide alike
(``tests/calibration_policy/engine/test_scan_columns.py``).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..policy import CalibrationUpdatePolicy
from .rules import evaluate, moments, reaching

if TYPE_CHECKING:
    from .scan import Prepared, Scan

SETTLE, APPLY = 0, 1
# How many runs a round asks about for each underlying still open: about twice the runs between two
# applies so far (a run asked after its underlying's first apply in the round is asked again in the next),
# at least ``_LEAST``, and no more than ``_BUDGET`` over all the underlyings still open.
_BUDGET, _LEAST = 4096, 2


class Stacked:
    """Every prepared underlying's arrays end to end (the smoothed values by scope, the evidence, the
    times): what the scan reads whatever the policy's thresholds, so ``tune`` builds it once."""

    def __init__(self, prepared: Sequence[Prepared]) -> None:
        import numpy as np

        sizes = [len(p.runs) for p in prepared]
        self.prepared = list(prepared)
        self.base = np.array([0, *np.cumsum(sizes).tolist()], dtype=np.int64)
        self.size = int(self.base[-1])
        self.firsts = np.array([p.first for p in prepared], dtype=np.int64)
        # the scopes every decided run has, in order (None: they differ, so the scan keeps dictionaries)
        found = {tuple(p.smoothed[p.first]) for p in prepared if p.first < len(p.runs)}
        one_stretch = all(p.first >= len(p.runs) or int(p.stretch_end[p.first]) == len(p.runs) for p in prepared)
        self.scopes: tuple[str, ...] | None = found.pop() if len(found) == 1 and one_stretch else None
        scopes = self.scopes or ()
        self.columns = {
            scope: np.concatenate([p.columns.get(scope, np.full(len(p.runs), np.nan)) for p in prepared])
            for scope in scopes
        }
        self.sample = np.concatenate([p.sample for p in prepared]) if prepared else np.zeros(0)
        self.vega = np.concatenate([p.vega for p in prepared]) if prepared else np.zeros(0)
        self.times = np.concatenate([p.times for p in prepared]) if prepared else np.zeros(0, dtype=np.int64)
        decided = np.zeros(self.size + 1, dtype=np.int64)  # +1 at each underlying's first run, −1 at its end
        np.add.at(decided, self.base[:-1] + self.firsts, 1)
        np.add.at(decided, self.base[1:], -1)
        self.decided = np.flatnonzero(np.cumsum(decided[:-1]) > 0)  # the runs a replay decides, every underlying

    @functools.cached_property
    def owners(self) -> Any:
        """The underlying (its position) of every run, end to end."""
        import numpy as np

        return np.repeat(np.arange(len(self.prepared)), np.diff(self.base))

    @functools.cached_property
    def carried(self) -> Any:
        """For every run, end to end, its underlying's first decided run: where a value carried forward
        over that underlying's runs starts (for the figures' lag)."""
        import numpy as np

        return np.repeat(np.minimum(self.base[:-1] + self.firsts, max(self.size - 1, 0)), np.diff(self.base))

    @functools.cached_property
    def recommended(self) -> dict[str, Any]:
        """Every run's recommended values by scope (NaN: the run has none), end to end: for the figures."""
        import numpy as np

        scopes = dict.fromkeys(scope for p in self.prepared for scope in p.recommended)
        return {
            scope: np.concatenate([p.recommended.get(scope, np.full(len(p.runs), np.nan)) for p in self.prepared])
            for scope in scopes
        }

    def owner(self, rows: Any) -> Any:
        """The underlying (its position) of each of the flat ``rows``."""
        import numpy as np

        return np.searchsorted(self.base, rows, side="right") - 1

    def run(self, row: int):
        u = int(self.owner(row))
        return self.prepared[u].runs[row - int(self.base[u])]


class _Runs(Sequence):
    """The runs at flat ``rows`` (read only to name one in an error)."""

    def __init__(self, stacked: Stacked, rows: Any) -> None:
        self._stacked, self._rows = stacked, rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, k):
        return self._stacked.run(int(self._rows[k]))


def usable(scans: Sequence[Scan], rules: Sequence[tuple[str, Any, Any]], policy: CalibrationUpdatePolicy) -> bool:
    """Whether the policy and the live values let the scans run as columns (the runs' scopes aside,
    which :attr:`Stacked.scopes` says)."""
    if policy.require_approval or not scans or "recent_smoothed" in scans[0].evidence_keys:
        return False
    return all(spec.batch is not None for _, spec, _ in rules) and len({frozenset(s._live) for s in scans}) == 1


class Columns:
    """The state of every underlying's scan under one policy, as arrays (see the module's note)."""

    def __init__(
        self, scans: Sequence[Scan], stacked: Stacked, policy: CalibrationUpdatePolicy, rest: Sequence[Any]
    ) -> None:
        import numpy as np

        self.stacked, self.policy, self.rest = stacked, policy, list(rest)
        self.bases: list[int] = stacked.base.tolist()
        self.keys: set[str] = scans[0].evidence_keys
        self.scopes: tuple[str, ...] = stacked.scopes or ()
        self.starts = [dict(s._live) for s in scans]
        self.start_last = [s._last for s in scans]
        self.route = np.zeros(stacked.size, dtype=np.int8)
        self.written = {scope: np.full(stacked.size, np.nan) for scope in self.scopes}
        self.lead: dict[str, Any] = {}
        self.proposed = dict(stacked.columns)  # the smoothed values as the leading rules adjusted them
        self.alive = np.zeros(stacked.size, dtype=bool)  # the runs the leading rules passed

    def evidence(self, rows: Any, last: Any) -> dict[str, Any]:
        found: dict[str, Any] = {"sample_size": self.stacked.sample[rows], "vega_sum": self.stacked.vega[rows]}
        if self.keys:
            found["run_time"] = self.stacked.times[rows].view("datetime64[ns]")
            found["last_applied_at"] = last
        return found


def scan_columns(
    scans: Sequence[Scan],
    rules: Sequence[tuple[str, Any, Any]],
    lead: int,
    policy: CalibrationUpdatePolicy,
    memo: dict[str, Any],
    stacked: Stacked,
) -> None:
    """Run every scan to its end, its state kept in one :class:`Columns` (``usable`` must hold, and
    ``stacked`` have one set of scopes that the live values hold)."""
    import numpy as np

    state = Columns(scans, stacked, policy, rules[lead:])

    def unasked(k: int) -> dict[str, Any]:  # every rule here has a batch form: never called
        raise AssertionError(k)

    # the leading stateless rules, once over every decided run of every underlying
    rows = stacked.decided
    nat = moments([None] * len(rows)) if state.keys else None
    answer = evaluate(
        rules[:lead],
        policy,
        {},
        {scope: stacked.columns[scope][rows] for scope in state.scopes},
        state.evidence(rows, nat),
        _Runs(stacked, rows),
        unasked,
        memo,
    )
    state.alive[rows] = answer.passed
    for name, ok in answer.per_rule.items():
        state.lead[name] = np.ones(stacked.size, dtype=bool)
        state.lead[name][rows] = ok
    for scope in answer.adjusted:
        state.proposed[scope] = state.proposed[scope].copy()
        state.proposed[scope][rows] = answer.proposed[scope]
    _rounds(state, memo)
    for u, s in enumerate(scans):
        s._columns_state(state, u)


def _rounds(state: Columns, memo: dict[str, Any]) -> None:
    """The scan proper: each round asks the rules about the next runs of every underlying still open
    (each against its own live values), and each takes its first apply."""
    import numpy as np

    stacked, scopes, policy = state.stacked, state.scopes, state.policy
    candidates = np.flatnonzero(state.alive)
    bounds = np.searchsorted(candidates, stacked.base)  # underlying u's candidates: [bounds[u], bounds[u + 1])
    at, end = bounds[:-1].copy(), bounds[1:]
    live_scopes = list(state.starts[0]) if state.starts else []
    live = {scope: np.array([start[scope] for start in state.starts], dtype=np.float64) for scope in live_scopes}
    last = moments(state.start_last)
    changed_only = policy.apply_scopes == "changed"
    thresholds = {scope: policy.threshold_for(scope) for scope in scopes}
    open_ = np.flatnonzero(at < end)
    passed, applies = 8, 0  # runs the rounds went past, and of them applied: the first round asks 16 each
    while len(open_):
        ahead = int(max(_LEAST, min(2 * passed / (applies + 1), _BUDGET // len(open_))))
        position = at[open_][:, None] + np.arange(ahead)
        valid = position < end[open_][:, None]
        rows = candidates[np.minimum(position, end[open_][:, None] - 1)].ravel()  # the last run repeated past the end
        owners = np.repeat(open_, ahead)
        answer = evaluate(
            state.rest,
            policy,
            {scope: values[owners] for scope, values in live.items()},
            {scope: state.proposed[scope][rows] for scope in scopes},
            state.evidence(rows, last[owners]),
            _Runs(stacked, rows),
            lambda k: {},
            memo,
        )
        hit = answer.passed.reshape(-1, ahead) & valid
        has = hit.any(axis=1)
        first = hit.argmax(axis=1)
        step = np.where(has, first + 1, valid.sum(axis=1))
        at[open_] += step
        passed, applies = passed + int(step.sum()), applies + int(has.sum())
        if has.any():
            who, k = open_[has], first[has]
            picked = np.flatnonzero(has) * ahead + k  # in the batch
            applied = rows[picked]
            state.route[applied] = APPLY
            for scope in scopes:
                new = answer.proposed[scope][picked]
                if changed_only:
                    old = live[scope][who]
                    new = np.where(reaching(new - old, thresholds[scope]), new, np.nan)
                    live[scope][who] = np.where(np.isnan(new), old, new)
                else:
                    live[scope][who] = new
                state.written[scope][applied] = new
            last[who] = stacked.times[applied].view("datetime64[ns]")
        open_ = open_[at[open_] < end[open_]]


# -- reading one underlying's runs off the columns ---------------------------------------------------------


class Part:
    """Underlying ``u``'s part of the columns: its applies, and its live values after each run (built on
    the first read)."""

    def __init__(self, state: Columns, u: int, n: int, first: int) -> None:
        self.state, self.u, self.n, self.first = state, u, n, first
        self.base = state.bases[u]
        self.route = state.route[self.base : self.base + n]
        self.written = {scope: values[self.base : self.base + n] for scope, values in state.written.items()}
        self._after: dict[str, Any] | None = None

    @functools.cached_property
    def applies(self) -> list[int]:
        import numpy as np

        return np.flatnonzero(self.route == APPLY).tolist()

    def after(self) -> dict[str, Any]:
        """Each live scope's value after each run (from ``first`` on), carried forward from the last write."""
        import numpy as np

        if self._after is None:
            start = self.state.starts[self.u]
            positions = np.arange(self.n)
            found = {}
            for scope, value in start.items():
                marks = self.written.get(scope, np.full(self.n, np.nan)).copy()
                marks[self.route != APPLY] = np.nan
                if self.first < self.n and np.isnan(marks[self.first]):
                    marks[self.first] = value
                found[scope] = marks[np.maximum.accumulate(np.where(np.isnan(marks), self.first, positions))]
            self._after = found
        return self._after

    def live_before(self, j: int) -> dict[str, float]:
        if j < self.first:
            return {}
        start = self.state.starts[self.u]
        if j == self.first or not self.applies or self.applies[0] >= j:
            return start
        after = self.after()
        return {scope: float(after[scope][j - 1]) for scope in start}

    def writes(self, j: int) -> dict[str, float] | None:
        if self.route[j] != APPLY:
            return None
        import math

        return {scope: v for scope in self.state.scopes if not math.isnan(v := float(self.written[scope][j]))}

    def last_applied(self, j: int) -> datetime | None:
        i = bisect.bisect_left(self.applies, j) - 1
        if i < 0:
            return self.state.start_last[self.u]
        return self.state.stacked.prepared[self.u].runs[self.applies[i]].timestamp


class LiveBefore(Sequence):
    """``live_before`` of a scan kept as columns: run ``j``'s live values, built when read."""

    def __init__(self, part: Part) -> None:
        self._part = part

    def __len__(self) -> int:
        return self._part.n

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self._part.live_before(i) for i in range(*j.indices(self._part.n))]
        return self._part.live_before(j if j >= 0 else j + self._part.n)


class LastApplied(LiveBefore):
    """``last_applied`` of a scan kept as columns: when the live values last changed before run ``j``."""

    def __getitem__(self, j):
        if isinstance(j, slice):
            return [self._part.last_applied(i) for i in range(*j.indices(self._part.n))]
        return self._part.last_applied(j if j >= 0 else j + self._part.n)


class Writes(Mapping):
    """``values`` of a scan kept as columns: what each applying run writes, by run, built when read."""

    def __init__(self, part: Part) -> None:
        self._part = part

    def __getitem__(self, j: int) -> dict[str, float]:
        found = self._part.writes(j) if isinstance(j, int) and 0 <= j < self._part.n else None
        if found is None:
            raise KeyError(j)
        return found

    def __iter__(self):
        return iter(self._part.applies)

    def __len__(self) -> int:
        return len(self._part.applies)


def passes_at(part: Part, j: int) -> dict[str, bool | None]:
    """Each rule's batch verdict on run ``j`` in the policy's order: the leading rules' from their batch
    over every run; the later rules' asked again in a batch of one, against the run's live values, as the
    scan's round asked them when it decided ``j`` (None: not asked, as a leading rule failed the run)."""
    import numpy as np

    state = part.state
    row = part.base + j
    found: dict[str, bool | None] = {name: bool(ok[row]) for name, ok in state.lead.items()}
    found.update(dict.fromkeys((name for name, _, _ in state.rest), None))
    if not state.alive[row]:
        return found
    rows = np.array([row], dtype=np.int64)
    live = part.live_before(j)
    answer = evaluate(
        state.rest,
        state.policy,
        {scope: np.array([value], dtype=np.float64) for scope, value in live.items()},
        {scope: state.proposed[scope][rows] for scope in state.scopes},
        state.evidence(rows, moments([part.last_applied(j)])),
        _Runs(state.stacked, rows),
        lambda k: {},
    )
    found.update({name: bool(ok[0]) for name, ok in answer.per_rule.items()})
    return found
