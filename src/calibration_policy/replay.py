"""Replay a policy over the recorded runs: what would have gone live, and how the live value would have moved.

Per underlying, in time order, a simulated live config starts from what was live at the first run
(the archive's as-of, else the first run's recorded "before" values, or ``start_values``) and each
run goes through the same steps as the live path — :func:`pipeline.smooth_over` (the window holds
only runs up to that run, thin runs skipped as the policy says, the domain's ``normalize``),
:func:`pipeline.decide` (every rule, plugins included, with the evidence the rules declare) and
:func:`pipeline.route`. Replaying the policy that actually ran gives the recorded decisions.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .errors import CalibrationPolicyError, HistoryError
from .humanize import fmt_value_set
from .models import CalibrationRun, Decision
from .policy import CalibrationUpdatePolicy

VALUE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SimulatedDecision:
    """One run under the replayed policy; its :class:`Decision` (every verdict's text) is built when read."""

    run_id: str
    underlying: str
    timestamp: datetime
    recommended: dict[str, float]
    smoothed: dict[str, float]
    live_before: dict[str, float]
    live_after: dict[str, float]
    route: str  # apply, propose (waits for a person; the simulated live value does not move) or settle
    recorded_apply: bool | None
    recorded_reason: str | None
    _scan: Any = field(repr=False, compare=False, default=None)
    _index: int = field(repr=False, compare=False, default=0)

    @property
    def decision(self) -> Decision:
        return self._scan.decision(self._index)

    @property
    def applied(self) -> bool:
        return self.route == "apply"

    @property
    def reason(self) -> str:
        return self.decision.reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "underlying": self.underlying,
            "timestamp": self.timestamp.isoformat(),
            "recommended": self.recommended,
            "smoothed": self.smoothed,
            "live_before": self.live_before,
            "live_after": self.live_after,
            "applied": self.applied,
            "route": self.route,
            "reason": self.reason,
            "recorded_apply": self.recorded_apply,
            "recorded_reason": self.recorded_reason,
        }


@dataclass(frozen=True)
class Difference:
    """A run whose simulated decision is not the recorded one."""

    underlying: str
    run_id: str
    timestamp: datetime
    recorded: str
    simulated: str
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "underlying": self.underlying,
            "run_id": self.run_id,
            "date": self.timestamp.date().isoformat(),
            "timestamp": self.timestamp.isoformat(),
            "recorded": self.recorded,
            "simulated": self.simulated,
            "why": self.why,
        }

    def text(self) -> str:
        return f"{self.timestamp.date()} {self.underlying}: {self.why}"


@dataclass(frozen=True)
class Figures:
    runs: int
    applies: int
    movement: float  # sum of |change| of the live values
    flip_flops: int  # direction reversals of a scope's applied changes
    mean_lag: float | None  # mean |live − recommended| over runs and scopes

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "applies": self.applies,
            "movement": self.movement,
            "flip_flops": self.flip_flops,
            "mean_lag": self.mean_lag,
        }


def _scan_figures(scan: Any) -> Figures:
    """Applies, movement, flip-flops and lag, read off the scan's arrays (no per-run objects)."""
    import numpy as np

    from .engine import APPLY

    first, n = scan.first, len(scan.runs)
    applied = scan.route == APPLY
    start = scan.live_before[first] if first < n else {}
    movement, flips = 0.0, 0
    lag_sum, lag_n = 0.0, 0
    positions = np.arange(n)
    for scope in dict.fromkeys([*scan.written, *scan.prepared.recommended]):
        written = scan.written.get(scope, np.full(n, np.nan))
        marks = np.where(applied, written, np.nan)  # the live value where it is set: at the start, then at each apply
        moves = np.diff(marks[~np.isnan(marks)], prepend=start.get(scope, np.nan))
        moves = moves[~np.isnan(moves) & (moves != 0)]  # a scope's first value moved nothing; nor did an equal one
        movement += _in_order(np.abs(moves))
        flips += int((np.diff(np.sign(moves)) != 0).sum())  # direction reversals of the scope's changes
        recommended = scan.prepared.recommended.get(scope)
        if recommended is None:
            continue
        if first < n and np.isnan(marks[first]):
            marks[first] = start.get(scope, np.nan)
        live = marks[np.maximum.accumulate(np.where(np.isnan(marks), first, positions))]  # carried forward
        both = ~np.isnan(live[first:]) & ~np.isnan(recommended[first:])
        lag_sum += _in_order(np.abs(live[first:] - recommended[first:])[both])
        lag_n += int(both.sum())
    return Figures(n - first, int(applied[first:].sum()), movement, flips, lag_sum / lag_n if lag_n else None)


def _in_order(values: Any) -> float:
    """The sum of ``values`` added one after the other, as :func:`_columns_figures` adds them (numpy's
    ``sum`` adds in pairs, which can differ in the last bit)."""
    return float(values.cumsum()[-1]) if len(values) else 0.0


def _columns_figures(state: Any) -> list[Figures]:
    """:func:`_scan_figures` of every underlying of a scan kept as columns (:mod:`.engine.columns`), in
    a few numpy operations over all of them at once: the same figures, to the last bit."""
    import numpy as np

    from .engine import APPLY

    stacked = state.stacked
    count, owner = len(stacked.prepared), stacked.owners
    decided = slice(None) if len(stacked.decided) == stacked.size else stacked.decided  # every run, mostly
    decided_owner = owner[decided]
    applied = state.route == APPLY
    applied_at = np.flatnonzero(applied)
    movement, flips = np.zeros(count), np.zeros(count, dtype=np.int64)
    lag_sum, lag_n = np.zeros(count), np.zeros(count, dtype=np.int64)
    has_first = stacked.firsts < np.diff(stacked.base)
    firsts = (stacked.base[:-1] + stacked.firsts)[has_first]  # each underlying's first decided run, end to end
    recommended = stacked.recommended
    for scope in dict.fromkeys([*state.written, *recommended]):
        start = np.array([s.get(scope, np.nan) for s in state.starts], dtype=np.float64)
        written = state.written.get(scope)
        where = applied_at if written is not None else np.zeros(0, dtype=np.int64)
        values = written[where] if written is not None else np.zeros(0)
        where, values = where[~np.isnan(values)], values[~np.isnan(values)]
        # the moves: each written value against the one before it (the start, for an underlying's first)
        who = owner[where]
        before = np.empty(len(where))
        before[1:] = values[:-1]
        fresh = np.ones(len(where), dtype=bool)
        fresh[1:] = who[1:] != who[:-1]
        before[fresh] = start[who[fresh]]
        moves = values - before
        kept = ~np.isnan(moves) & (moves != 0)
        moves, who = moves[kept], who[kept]
        movement += np.bincount(who, weights=np.abs(moves), minlength=count)
        turns = (np.diff(np.sign(moves)) != 0) & (who[1:] == who[:-1])
        flips += np.bincount(who[1:][turns], minlength=count)
        if scope not in recommended:
            continue
        marks = np.full(stacked.size, np.nan)  # the live value where it is set: at the start, then at each write
        marks[firsts] = start[has_first]
        marks[where] = values
        set_at = stacked.carried.copy()  # where each run's live value was last set: its first run, or a write
        set_at[where] = where
        live = marks[np.maximum.accumulate(set_at, out=set_at)[decided]]
        gap = np.abs(live - recommended[scope][decided])
        both = ~np.isnan(gap)
        if both.all():
            lag_sum += np.bincount(decided_owner, weights=gap, minlength=count)
            lag_n += np.bincount(decided_owner, minlength=count)
        else:
            lag_sum += np.bincount(decided_owner[both], weights=gap[both], minlength=count)
            lag_n += np.bincount(decided_owner[both], minlength=count)
    runs = np.diff(stacked.base) - stacked.firsts
    applies = np.bincount(owner[applied], minlength=count)
    return [
        Figures(
            int(runs[u]),
            int(applies[u]),
            float(movement[u]),
            int(flips[u]),
            float(lag_sum[u] / lag_n[u]) if lag_n[u] else None,
        )
        for u in range(count)
    ]


def _simulated(scan: Any, j: int) -> SimulatedDecision:
    from .engine import ROUTES

    run = scan.runs[j]
    recorded = run.decision or None
    return SimulatedDecision(
        run.run_id,
        run.underlying,
        run.timestamp,
        run.recommended,
        scan.smoothed[j],
        scan.live_before[j],
        scan.live_after(j),
        ROUTES[scan.route[j]],
        recorded.get("apply") if recorded else None,
        recorded.get("reason") if recorded else run.applied_reason,
        scan,
        j,
    )


def _difference_at(scan: Any) -> Callable[[int], Difference | None]:
    from .engine import SETTLE

    def compare(j: int) -> Difference | None:
        run, recorded = scan.runs[j], scan.runs[j].decision
        sim_apply = scan.route[j] != SETTLE
        if bool(recorded["apply"]) == sim_apply and (
            not sim_apply or _same_values(recorded.get("values") or {}, scan.values[j])
        ):
            return None  # agrees: no decision built
        return _difference(run, _simulated(scan, j))

    return compare


class UnderlyingReplay:
    """One underlying's replay: its figures at once (``figures``, when the replay computed every
    underlying's together), its differences, watch and per-run decisions when asked for."""

    def __init__(
        self,
        underlying: str,
        start_values: dict[str, float],
        start_from: str,
        scan: Any,
        figures: Figures | None = None,
    ) -> None:
        self.underlying, self.start_values, self.start_from = underlying, start_values, start_from
        self.scan = scan
        self._decisions: list[SimulatedDecision] | None = None
        self.figures = _scan_figures(scan) if figures is None else figures

    @functools.cached_property
    def differences(self) -> list[Difference]:
        return [d for d in map(_difference_at(self.scan), self.scan.prepared.recorded) if d is not None]

    @functools.cached_property
    def watch(self) -> tuple[int, int] | None:
        """(roll backs the watch after apply would make, of which wrong); None: no watch."""
        return _watched(self.scan)

    @property
    def decisions(self) -> list[SimulatedDecision]:
        if self._decisions is None:
            self._decisions = [_simulated(self.scan, j) for j in range(self.scan.first, len(self.scan.runs))]
        return self._decisions

    def to_dict(self, decisions: bool = True) -> dict[str, Any]:
        data = {
            "underlying": self.underlying,
            "start_values": self.start_values,
            "start_from": self.start_from,
            **self.figures.to_dict(),
            "differences": [d.to_dict() for d in self.differences],
        }
        if self.watch is not None:
            data["watch_rolled_back"], data["watch_wrong"] = self.watch
        if decisions:
            data["decisions"] = [d.to_dict() for d in self.decisions]
        return data


def _watched(scan: Any) -> tuple[int, int] | None:
    """What the watch after apply would do over the scan: each simulated apply watched on the runs after it. The
    roll backs are counted, not replayed (the simulated live values stay the policy's own decisions)."""
    if not scan.policy.watch_runs:
        return None
    from .engine import APPLY
    from .watch import ReplayedWatch

    watch = ReplayedWatch(scan.policy)
    for j in range(scan.first, len(scan.runs)):
        watch.run(scan.runs[j])
        if scan.route[j] == APPLY:
            watch.applied(scan.runs[j], scan.live_before[j], scan.live_after(j))
    return watch.finish()


@dataclass
class ReplayResult:
    """Every simulated decision, the figures, and the runs decided otherwise than recorded."""

    policy: CalibrationUpdatePolicy
    underlyings: dict[str, UnderlyingReplay]

    @property
    def decisions(self) -> list[SimulatedDecision]:
        return [d for u in self.underlyings.values() for d in u.decisions]

    @property
    def differences(self) -> list[Difference]:
        return [d for u in self.underlyings.values() for d in u.differences]

    @property
    def figures(self) -> Figures:
        parts = [u.figures for u in self.underlyings.values()]
        lags = [(f.mean_lag, f.runs) for f in parts if f.mean_lag is not None]
        weight = sum(n for _, n in lags)
        return Figures(
            sum(f.runs for f in parts),
            sum(f.applies for f in parts),
            sum(f.movement for f in parts),
            sum(f.flip_flops for f in parts),
            sum(lag * n for lag, n in lags) / weight if weight else None,
        )

    @property
    def watch(self) -> tuple[int, int] | None:
        """(changes the watch after apply would roll back, how many of those wrongly); None when it is off."""
        if not self.policy.watch_runs:
            return None
        parts = [u.watch for u in self.underlyings.values() if u.watch is not None]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    @property
    def applies(self) -> int:
        return self.figures.applies

    @property
    def movement(self) -> float:
        return self.figures.movement

    @property
    def flip_flops(self) -> int:
        return self.figures.flip_flops

    @property
    def mean_lag(self) -> float | None:
        return self.figures.mean_lag

    def to_dict(self, decisions: bool = True) -> dict[str, Any]:
        return {
            "policy": self.policy.model_dump(mode="json"),
            **self.figures.to_dict(),
            "differences": [d.to_dict() for d in self.differences],
            "underlyings": {name: u.to_dict(decisions) for name, u in self.underlyings.items()},
            **({"watch_rolled_back": self.watch[0], "watch_wrong": self.watch[1]} if self.watch else {}),
        }

    def summary(self) -> str:
        f = self.figures
        lag = "–" if f.mean_lag is None else f"{f.mean_lag:.4f}"
        return (
            f"{f.runs} runs replayed: {f.applies} applied, total movement {f.movement:.4f}, "
            f"{f.flip_flops} flip-flops, mean |live − recommended| {lag}; "
            f"{len(self.differences)} decided otherwise than recorded."
        ) + (
            f" The watch after apply would roll back {self.watch[0]} changes, {self.watch[1]} of them wrongly "
            "(the old values then fit worse)."
            if self.watch
            else ""
        )


# -- input ------------------------------------------------------------------------------------------------


def load_history(
    history_dir: str | os.PathLike[str] | None = None,
    underlying: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[CalibrationRun]:
    """Every readable run in the history folder (of one underlying, within [since, until])."""
    from .models import RUN_EARLIEST, RUN_LATEST
    from .stores import open_store

    store = open_store(history_dir)
    names = [underlying] if underlying else store.underlyings()
    runs: list[CalibrationRun] = []
    for name in names:
        runs += store.between(name, since or RUN_EARLIEST, until or (RUN_LATEST - timedelta(days=1)))
    return runs


def _group(history: Iterable[CalibrationRun]) -> dict[str, list[CalibrationRun]]:
    from .naming import sequence_key

    if isinstance(history, (str, bytes, dict)) or not isinstance(history, Iterable):
        raise CalibrationPolicyError(f"history must be a list of CalibrationRun, not {type(history).__name__}.")
    groups: dict[str, list[CalibrationRun]] = {}
    for run in history:
        if not isinstance(run, CalibrationRun):
            raise CalibrationPolicyError(f"history must hold only CalibrationRun records, not {type(run).__name__}.")
        groups.setdefault(run.underlying, []).append(_in_recorded_order(run))
    for runs in groups.values():
        runs.sort(key=lambda r: (r.timestamp, sequence_key(r.run_id) if r.run_id else ("", 0)))
    return groups


def _recorded_before(run: CalibrationRun) -> dict[str, float]:
    """What was live when ``run`` was decided, as its recorded decision says."""
    scopes = (run.decision or {}).get("scopes") or []
    return {
        s["scope"]: float(s["old"]) for s in scopes if isinstance(s, dict) and isinstance(s.get("old"), (int, float))
    }


def _start(
    underlying: str, first: CalibrationRun, start_values, archive_dir, target_name
) -> tuple[dict[str, float], str, datetime | None]:
    if start_values is not None:
        given = start_values.get(underlying, start_values) if isinstance(start_values, Mapping) else None
        if isinstance(given, Mapping) and given and all(isinstance(v, Mapping) for v in given.values()):
            given = None  # a table of other underlyings' values
        if isinstance(given, Mapping):
            return {str(k): float(v) for k, v in given.items()}, "given", None
    if archive_dir is not None:
        from .stores import active_store, open_archive

        name = target_name(underlying) if target_name else None
        if name and name not in active_store().targets(archive_dir):
            name = _factory_target_name(first.domain, underlying)
        if name:
            # as of the run's time, each change counted from the calibration it came from (a replayed
            # or backfilled day is applied long after its market date)
            live = None
            for period in open_archive(archive_dir, name).periods():
                since = period.change.live_from if period.change else period.since
                if period.change is None or (since is not None and since < first.timestamp):
                    live = (dict(period.values), "archive", since if period.change else None)
            if live is not None:
                return live
    before = _recorded_before(first)
    return (before, "record", None) if before else ({}, "nothing", None)


# -- the replay -------------------------------------------------------------------------------------------


def smoothing_key(policy: CalibrationUpdatePolicy) -> str:
    """What the smoothed values depend on besides which runs the evidence gates keep (that is part of the
    cache's key as the gates' answer itself, so candidates whose gates keep the same runs share them)."""
    return json.dumps(
        [policy.smoothing, policy.smoothing_options, policy.smoothing_window_days, policy.domain],
        sort_keys=True,
        default=str,
    )


class SmoothingCache:
    """Smoothed values (and the arrays the scan reads) per (smoothing key, underlying, runs), and the
    history grouped by underlying: candidates that smooth alike share them, so ``tune`` smooths once
    and runs only the rules and the scan per candidate."""

    def __init__(self) -> None:
        self._values: dict[tuple[Any, ...], Any] = {}

    def get(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        found = self._values.get(key)
        if found is None:
            found = self._values[key] = compute()
        return found


def smoothed_runs(
    runs: list[CalibrationRun],
    policy: CalibrationUpdatePolicy,
    first: int = 0,
    keep: Any = None,
    times: Any = None,
) -> list[dict[str, float]]:
    """Every run's smoothed values from ``first`` on (the engine's batch smoothing, then the domain's
    ``normalize``, as :func:`pipeline.smooth_over` does for one run); ``{}`` before ``first``. ``keep``:
    the runs the evidence gates keep, when the caller has them."""
    from .domain import Domain
    from .engine import smooth_series
    from .plugins import get_domain

    values = smooth_series(runs, policy, range(first, len(runs)), keep=keep, times=times)
    domains: dict[str, Domain] = {}
    for j, run in enumerate(runs[first:]):
        domain = domains.get(run.domain) or domains.setdefault(run.domain, get_domain(run.domain))
        if type(domain).normalize is not Domain.normalize:
            values[j] = domain.normalize(values[j])
    return [{}] * first + values


def _scan_of(
    underlying: str,
    runs: list[CalibrationRun],
    policy: CalibrationUpdatePolicy,
    start: dict[str, float],
    last_applied: datetime | None,
    cache: SmoothingCache | None,
    evidence_keys: set[str],
    first: int,
    keep: Any,
    smoothing: str,
) -> Any:
    """One underlying's scan, not yet run, on its smoothed runs (from the cache when another
    candidate smoothed them alike: same ``smoothing`` key, same runs ``keep``-t by the evidence gates)."""
    from .engine import Prepared, Scan, times_ns

    key = (smoothing, keep.tobytes(), underlying, first, len(runs), id(runs[0]), id(runs[-1]))

    def compute() -> Prepared:
        from .domain import Domain
        from .engine import smooth_series
        from .plugins import get_domain

        times = times_ns([run.timestamp for run in runs])  # counted once, for the smoothing and the scan
        domains = {run.domain for run in runs[first:]}
        if all(type(get_domain(domain)).normalize is Domain.normalize for domain in domains):  # as smoothed
            columns = smooth_series(runs, policy, range(first, len(runs)), keep=keep, times=times, columns=True)
            return Prepared(runs, columns, first, times)
        return Prepared(runs, smoothed_runs(runs, policy, first, keep, times), first, times)

    prepared = cache.get(key, compute) if cache is not None else compute()
    return Scan(runs, prepared.smoothed, policy, start, last_applied, evidence_keys, first, prepared)


def _same_values(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return set(a) == set(b) and all(
        abs(float(a[k]) - float(b[k])) <= VALUE_TOLERANCE * max(1.0, abs(float(a[k]))) for k in a
    )


def _difference(run: CalibrationRun, sim: SimulatedDecision) -> Difference | None:
    from .plugins import get_domain
    from .steps import _waiting

    recorded = run.decision
    if not recorded or "apply" not in recorded:
        return None  # never decided (or decided before decisions were recorded): nothing to compare
    rec_apply, sim_apply = bool(recorded["apply"]), sim.decision.apply
    rec_reason = recorded.get("reason") or run.applied_reason or ""
    if rec_apply == sim_apply and (not sim_apply or _same_values(recorded.get("values") or {}, sim.decision.values)):
        return None
    # Under require_approval the rules' "Applied" is a suggestion: the run would wait for a person, and the
    # replay's figures count it as no apply, so its words must not say it applies.
    waits = sim.route == "propose"
    simulated = _waiting(sim.decision) if waits else sim.reason
    if recorded.get("forced"):
        why = f"a person forced this change at the time; the policy alone says: {simulated}"
    elif rec_apply and not sim_apply:
        why = f"recorded applied, the replayed policy would not — {simulated}"
    elif sim_apply and not rec_apply:
        would = "would wait for a person to approve it" if waits else "would apply"
        why = f"recorded not applied, the replayed policy {would} — {simulated}"
    elif waits:
        why = f"recorded applied, the replayed policy would suggest other values and wait for approval — {simulated}"
    else:
        why = f"both apply, with other values — {simulated}"
    before = _recorded_before(run)
    if before and not _same_values(
        {k: before[k] for k in before if k in sim.live_before},
        {k: sim.live_before[k] for k in before if k in sim.live_before},
    ):
        domain, details = get_domain(run.domain), {"bands": run.bands}
        simulated_live = fmt_value_set(sim.live_before, 3, sums_to_one=domain.sums_to_one)
        recorded_live = fmt_value_set(before, 3, sums_to_one=domain.sums_to_one)
        shown = ", ".join(
            f"{domain.scope_label(k, details)} {simulated_live[k]} (recorded {recorded_live[k]})"
            for k in before
            if k in sim.live_before
        )
        why += f" (the simulated live value differed by then: {shown})"
    return Difference(run.underlying, run.run_id, run.timestamp, rec_reason, simulated, why)


def _selected(
    groups: dict[str, list[CalibrationRun]],
    domain: str,
    underlying: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, list[CalibrationRun]]:
    """The runs a replay decides, by underlying: of ``underlying`` (all when None), up to ``until``, of
    the policy's domain; runs before ``since`` stay, for the smoothing windows of the first replayed runs."""
    if not groups:
        raise HistoryError("The history is empty: there are no calibration runs to replay.")
    if underlying is not None:
        if underlying not in groups:
            raise HistoryError(f"The history has no runs of {underlying} (it has {', '.join(sorted(groups))}).")
        groups = {underlying: groups[underlying]}
    if since is not None or until is not None:
        groups = {u: [r for r in runs if until is None or r.timestamp <= until] for u, runs in groups.items()}
        groups = {u: runs for u, runs in groups.items() if runs and (since is None or runs[-1].timestamp >= since)}
        if not groups:
            span = " to ".join(str(d.date()) for d in (since, until) if d is not None)
            raise HistoryError(f"No calibration runs in the range {span}.")
    every = groups
    groups = {u: [r for r in runs if r.domain == domain] for u, runs in groups.items()}
    groups = {u: runs for u, runs in groups.items() if runs}  # another domain's runs are another policy's
    if not groups:
        domains = {r.domain for runs in every.values() for r in runs}
        raise HistoryError(
            f"The history holds no {domain} runs (only {', '.join(sorted(domains))}); the policy governs {domain}."
        )
    return groups


def replay(
    history: Iterable[CalibrationRun] | str | os.PathLike[str],
    policy: CalibrationUpdatePolicy,
    start_values: Mapping[str, Any] | None = None,
    *,
    archive_dir: str | os.PathLike[str] | None = None,
    target_name: Callable[[str], str] | None = None,
    underlying: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cache: SmoothingCache | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay ``policy`` over ``history`` (runs, or a history folder) per underlying, in time order.

    ``start_values``: ``{scope: value}`` for every underlying, or ``{underlying: {scope: value}}``;
    without it the replay starts from what the archive (``archive_dir``; the target of each
    underlying named by ``target_name``, default the domain's target) says was live at the first
    run, else from the first run's recorded "before" values. Nothing is written.
    """
    from .naming import check_underlying

    if not isinstance(policy, CalibrationUpdatePolicy):
        raise CalibrationPolicyError("policy must be a CalibrationUpdatePolicy.")
    if underlying is not None:
        underlying = check_underlying(underlying)
    evidence_key = None
    if isinstance(history, (str, os.PathLike)):
        groups = _selected(_group(load_history(history)), policy.domain, underlying, since, until)
    elif cache is not None:  # the caller's list, replayed once per candidate: grouped, sorted and picked once
        every = cache.get(("groups", id(history)), lambda: _group(history))
        evidence_key = ("selected", id(history), policy.domain, underlying, since, until)
        groups = cache.get(evidence_key, lambda: _selected(every, policy.domain, underlying, since, until))
    else:
        groups = _selected(_group(history), policy.domain, underlying, since, until)
    if target_name is None and archive_dir is not None:
        target_name = _default_target_name(policy.domain)
    from .engine import scan_together
    from .plugins import frozen_registry
    from .rule_evidence import needed

    evidence_keys = needed(policy)
    smoothing = smoothing_key(policy)
    scans, starts = {}, {}
    with frozen_registry():  # the plugins cannot change during one replay: look each rule up once
        keeps = _kept(groups, policy, cache, evidence_key)
        for name, runs in groups.items():
            first = 0 if since is None else bisect.bisect_left([r.timestamp for r in runs], since)
            start, start_from, last_applied = _start(name, runs[first], start_values, archive_dir, target_name)
            scans[name] = _scan_of(
                name, runs, policy, start, last_applied, cache, evidence_keys, first, keeps[name], smoothing
            )
            starts[name] = (dict(start), start_from)
            if progress is not None:
                progress(len(runs))
        every = list(scans.values())
        scan_together(every, _stacked(every, cache))  # every underlying together: one batch of rules per round
    state = every[0]._part.state if every and every[0]._part is not None else None
    figures = _columns_figures(state) if state is not None else [None] * len(every)
    return ReplayResult(
        policy, {name: UnderlyingReplay(name, *starts[name], s, f) for (name, s), f in zip(scans.items(), figures)}
    )


def _kept(
    groups: dict[str, list[CalibrationRun]], policy: CalibrationUpdatePolicy, cache: Any, key: tuple[Any, ...] | None
) -> dict[str, Any]:
    """The runs the evidence gates keep, by underlying: every underlying's runs judged in one batch (their
    evidence laid out once per history when a cache holds the grouped history under ``key``)."""
    import numpy as np

    from .engine.gates import passing

    def stack() -> tuple[list[CalibrationRun], dict[str, Any], list[int]]:
        runs = [run for group in groups.values() for run in group]
        evidence = {
            "sample_size": np.array([run.sample_size for run in runs], dtype=np.float64),
            "vega_sum": np.array([np.nan if run.vega_sum is None else run.vega_sum for run in runs], dtype=np.float64),
        }
        return runs, evidence, np.cumsum([0, *map(len, groups.values())]).tolist()

    runs, evidence, bounds = cache.get(("evidence", *key), stack) if cache is not None and key else stack()
    keep = passing(runs, policy, evidence)
    return {name: keep[bounds[i] : bounds[i + 1]] for i, name in enumerate(groups)}


def _stacked(scans: list[Any], cache: SmoothingCache | None) -> Any:
    """The scans' arrays end to end (:class:`.engine.columns.Stacked`), built when the scan asks for them;
    kept in the cache for the next candidate that shares the same prepared underlyings."""
    from .engine.columns import Stacked

    if cache is None:
        return None
    key = ("stacked", *(id(s.prepared) for s in scans))  # the cache holds them: their ids stay theirs
    return lambda: cache.get(key, lambda: Stacked([s.prepared for s in scans]))


def _default_target_name(domain: str) -> Callable[[str], str]:
    """``<domain>_<UNDERLYING>``, the per-underlying target the demo and most hosts use; when no such
    archive folder exists the domain's own target factory is asked (see :func:`_start`)."""
    return lambda underlying: f"{domain}_{underlying}"


def _factory_target_name(domain: str, underlying: str) -> str | None:
    from .plugins import get_target_factory

    try:
        return get_target_factory(domain)(underlying, None).name
    except (ValueError, OSError):
        return None


def _in_recorded_order(run: CalibrationRun) -> CalibrationRun:
    """The run with its scopes in the order the live decision saw them (a stored run's are sorted by name),
    so a replayed reason lists the scopes as the recorded one does."""
    scopes = [s.get("scope") for s in (run.decision or {}).get("scopes") or () if isinstance(s, dict)]
    recommended = run.recommended_iv_multiplier
    if not scopes or list(recommended) == scopes[: len(recommended)]:
        return run
    ordered = {scope: recommended[scope] for scope in scopes if scope in recommended}
    ordered.update((scope, value) for scope, value in recommended.items() if scope not in ordered)
    return run.model_copy(update={"recommended_iv_multiplier": ordered})


class _CallableModule(types.ModuleType):
    """``calibration_policy.replay`` is both this module and the function: importing the module (as
    ``calibration_policy.lab`` does) makes the package attribute the module, so the module calls through."""

    def __call__(self, *args: Any, **kwargs: Any) -> ReplayResult:
        return replay(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
