"""The policy lab: compare policies side by side and tune thresholds, on top of :func:`replay.replay`.

``compare`` replays each policy over the same history (table + an SVG of the live value over time
under each policy); ``tune`` searches thresholds within bounds (grid or seeded random), keeps the
Pareto front of movement (how much the live value jumps around) against lag (mean |live −
recommended|), picks the front's knee and can write it as a policy TOML. With a watch after apply,
each candidate also says how many changes the watch would have rolled back and how many of those
wrongly, and ``objective="watch_wrong"`` (or ``"watch_rolled_back"``) makes that a third objective
on the front; the watch's own settings can be tuned like any threshold.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from .errors import CalibrationPolicyError, PolicyError
from .models import CalibrationRun
from .policy import CalibrationUpdatePolicy
from .replay import Figures, ReplayResult, SmoothingCache, _group, replay

# -- compare ----------------------------------------------------------------------------------------------


@dataclass
class Comparison:
    results: dict[str, ReplayResult]

    def rows(self) -> list[dict[str, Any]]:
        """One row per policy: its figures, how many decisions differ from the recorded ones and, for a policy
        with a watch after apply, how many changes the watch would have rolled back and how many wrongly."""
        return [
            {"policy": name, **r.figures.to_dict(), "differences": len(r.differences), **_watch_fields(r.watch)}
            for name, r in self.results.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "policies": {name: r.to_dict(decisions=False) for name, r in self.results.items()},
            "table": self.rows(),
        }

    def series(self, underlying: str, scope: str = "global") -> dict[str, list[tuple[Any, float]]]:
        """Live value after each run, per policy; plus the recommended values under "recommended"."""
        out: dict[str, list[tuple[Any, float]]] = {}
        for name, result in self.results.items():
            replayed = result.underlyings.get(underlying)
            if replayed is None:
                continue
            out[name] = [(d.timestamp, d.live_after[scope]) for d in replayed.decisions if scope in d.live_after]
            out.setdefault(
                "recommended",
                [(d.timestamp, d.recommended[scope]) for d in replayed.decisions if scope in d.recommended],
            )
        return out

    def svg(self, underlying: str, scope: str = "global") -> str:
        return series_svg(self.series(underlying, scope), title=f"{underlying} {scope}: live value under each policy")


def compare(
    history: Iterable[CalibrationRun] | str | os.PathLike[str],
    policies: Mapping[str, CalibrationUpdatePolicy],
    **replay_args: Any,
) -> Comparison:
    """Replay every policy over the same history (smoothing shared where the policies smooth alike)."""
    if len(policies) < 1:
        raise CalibrationPolicyError("compare needs at least one policy.")
    if isinstance(history, (str, os.PathLike)):
        from .replay import load_history

        history = load_history(history)
    history = list(history)
    cache = replay_args.pop("cache", None) or SmoothingCache()
    return Comparison({name: replay(history, policy, cache=cache, **replay_args) for name, policy in policies.items()})


COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def series_svg(
    series: Mapping[str, Sequence[tuple[Any, float]]], title: str = "", width: int = 720, height: int = 260
) -> str:
    """A small server-side line chart: one step line per series, recommended as dots."""
    points = [p for s in series.values() for p in s]
    if not points:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="40" role="img"><text x="8" y="24">No data</text></svg>'
    t0, t1 = min(p[0] for p in points), max(p[0] for p in points)
    v0, v1 = min(p[1] for p in points), max(p[1] for p in points)
    if v1 - v0 < 1e-9:
        v0, v1 = v0 - 0.01, v1 + 0.01
    span = (t1 - t0).total_seconds() or 1.0
    left, right, top, bottom = 50, 130, 24, 24

    def x(t) -> float:
        return left + (width - left - right) * (t - t0).total_seconds() / span

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - v0) / (v1 - v0))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" class="cp-lab-chart">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="14" font-size="12">{escape(title)}</text>',
    ]
    for v in (v0, (v0 + v1) / 2, v1):
        parts.append(
            f'<text x="4" y="{y(v) + 4:.1f}" font-size="10">{v:.3f}</text>'
            f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
        )
    parts.append(
        f'<text x="{left}" y="{height - 6}" font-size="10">{t0.date()}</text>'
        f'<text x="{width - right}" y="{height - 6}" font-size="10" text-anchor="end">{t1.date()}</text>'
    )
    legend = 0
    for i, (name, data) in enumerate(series.items()):
        if not data:
            continue
        if name == "recommended":
            parts += [f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="1.6" fill="#999"/>' for t, v in data]
            color = "#999"
        else:
            color = COLORS[i % len(COLORS)]
            path = [f"M{x(data[0][0]):.1f},{y(data[0][1]):.1f}"]
            for (t, v), (_, prev) in zip(data[1:], data[:-1]):
                path.append(f"H{x(t):.1f}V{y(v):.1f}" if v != prev else f"H{x(t):.1f}")
            parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1.8"/>')
        parts.append(
            f'<rect x="{width - right + 10}" y="{top + legend * 16}" width="10" height="10" fill="{color}"/>'
            f'<text x="{width - right + 24}" y="{top + legend * 16 + 9}" font-size="11">{escape(name)}</text>'
        )
        legend += 1
    parts.append("</svg>")
    return "\n".join(parts)


def _watch_fields(watch: tuple[int, int] | None) -> dict[str, int]:
    """``watch_rolled_back`` and ``watch_wrong`` of a replay with a watch; nothing without one."""
    return {} if watch is None else {"watch_rolled_back": watch[0], "watch_wrong": watch[1]}


# -- tune -------------------------------------------------------------------------------------------------

TUNABLE = (
    "min_delta_global",
    "min_delta_band",
    "min_sample_size",
    "min_vega_sum",
    "max_step",
    "smoothing_window_days",
    "watch_runs",
    "watch_alpha",
    "watch_tolerance",
)
# The watch's hard limit, tuned by its parts: watch_hard_limit.runs, watch_hard_limit.worse_by.
HARD_LIMIT = ("runs", "worse_by")
WHOLE = frozenset({"min_sample_size", "watch_runs", "watch_hard_limit.runs"})
# What tune minimises besides movement: the lag, and optionally what the watch after apply would do.
OBJECTIVES = ("lag", "watch_wrong", "watch_rolled_back")


@dataclass(frozen=True)
class Candidate:
    params: dict[str, float]
    policy: CalibrationUpdatePolicy
    figures: Figures
    watch: tuple[int, int] | None = None  # (roll backs the watch would make, how many wrongly); None: no watch

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, **self.figures.to_dict(), **_watch_fields(self.watch)}


@dataclass
class TuneResult:
    candidates: list[Candidate]
    front: list[Candidate]
    chosen: Candidate
    skipped: list[tuple[dict[str, float], str]] = field(default_factory=list)
    seed: int | None = None
    method: str = "grid"
    objective: str = "lag"

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seed": self.seed,
            "objective": self.objective,
            "candidates": len(self.candidates),
            "skipped": [{"params": p, "why": why} for p, why in self.skipped],
            "front": [c.to_dict() for c in self.front],
            "chosen": self.chosen.to_dict(),
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the chosen candidate as a policy TOML (atomically)."""
        from .durable import atomic_replace
        from .policy_versions import policy_to_toml

        f = self.chosen.figures
        header = (
            f"Tuned candidate ({self.method}{'' if self.seed is None else f', seed {self.seed}'}): "
            + ", ".join(f"{k} = {v:g}" for k, v in self.chosen.params.items())
            + f"\nReplayed: {f.applies} applies, movement {f.movement:.4f}, mean lag {f.mean_lag or 0:.4f}"
            + (
                ""
                if self.chosen.watch is None
                else f"; the watch would roll back {self.chosen.watch[0]} changes, {self.chosen.watch[1]} wrongly"
            )
        )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_replace(path, policy_to_toml(self.chosen.policy, header).encode())
        return path


def _parse_param(name: str) -> tuple[str, ...]:
    parts = tuple(name.split("."))
    if parts[0] in TUNABLE and len(parts) == 1:
        return parts
    if parts[0] == "rule_options" and len(parts) == 3:
        return parts
    if parts[0] == "watch_hard_limit" and len(parts) == 2 and parts[1] in HARD_LIMIT:
        return parts
    raise PolicyError(
        f"Cannot tune {name!r:.60}: use one of {', '.join(TUNABLE)}, watch_hard_limit.runs, "
        "watch_hard_limit.worse_by or rule_options.<rule>.<option>."
    )


def _check_bounds(space: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, float]]:
    if not space:
        raise PolicyError("tune needs at least one threshold with bounds, e.g. min_delta_global=0.01:0.06.")
    checked = {}
    for name, pair in space.items():
        _parse_param(name)
        try:
            low, high = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise PolicyError(f"The bounds of {name} must be two numbers (low, high).") from None
        if not (math.isfinite(low) and math.isfinite(high)) or low < 0 or high < low:
            raise PolicyError(f"The bounds of {name} must be finite numbers with 0 ≤ low ≤ high, not {low:g}:{high:g}.")
        checked[name] = (low, high)
    return checked


def _candidate_policy(base: CalibrationUpdatePolicy, params: Mapping[str, float]) -> CalibrationUpdatePolicy:
    data = base.model_dump()
    data["rule_options"] = {k: dict(v) for k, v in data["rule_options"].items()}
    limit = dict(data.get("watch_hard_limit") or {})
    for name, value in params.items():
        parts = _parse_param(name)
        if name in WHOLE:
            value = int(round(value))
        if len(parts) == 1:
            data[parts[0]] = value
        elif parts[0] == "watch_hard_limit":
            limit[parts[1]] = value
        else:
            data["rule_options"].setdefault(parts[1], {})[parts[2]] = value
    if limit:
        missing = [part for part in HARD_LIMIT if part not in limit]
        if missing:
            raise PolicyError(
                f"The base policy has no watch_hard_limit, so tuning one needs its {' and '.join(missing)} too "
                f"(watch_hard_limit.{missing[0]}=LOW:HIGH), or a watch_hard_limit in the base policy."
            )
        data["watch_hard_limit"] = limit
    return CalibrationUpdatePolicy(**data)


def _grid(bounds: Mapping[str, tuple[float, float]], n: int) -> list[dict[str, float]]:
    k = max(2, int(math.floor(n ** (1 / len(bounds)) + 1e-9)))
    axes = {name: sorted({low + (high - low) * i / (k - 1) for i in range(k)}) for name, (low, high) in bounds.items()}
    points: list[dict[str, float]] = [{}]
    for name, values in axes.items():
        points = [{**p, name: round(v, 10)} for p in points for v in values]
    return points[:n] if len(points) > n else points


def _random(bounds: Mapping[str, tuple[float, float]], n: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    return [{name: round(rng.uniform(low, high), 6) for name, (low, high) in bounds.items()} for _ in range(n)]


def _objectives(candidate: Candidate, objective: str = "lag") -> tuple[float, ...] | None:
    """What tune minimises for ``candidate``: (movement, lag), plus the watch's wrong roll backs (or all its roll
    backs) for a watch objective (a candidate without a watch rolls nothing back). None: no lag was measured."""
    lag = candidate.figures.mean_lag
    if lag is None:
        return None
    if objective == "lag":
        return (candidate.figures.movement, lag)
    rolled_back, wrong = candidate.watch or (0, 0)
    return (candidate.figures.movement, lag, float(wrong if objective == "watch_wrong" else rolled_back))


def _scored(candidates: Sequence[Candidate], objective: str = "lag") -> list[tuple[Candidate, tuple[float, ...]]]:
    """``(candidate, objectives)`` for the candidates that have a lag (a replay with no live value has none)."""
    return [(c, found) for c in candidates if (found := _objectives(c, objective)) is not None]


def pareto_front(candidates: Sequence[Candidate], objective: str = "lag") -> list[Candidate]:
    """The candidates no other beats on every objective (movement and lag, plus the watch's wrong roll backs or
    roll backs for a watch ``objective``; lower is better), by movement then lag."""
    scored = _scored(candidates, objective)

    def beaten(mine: tuple[float, ...]) -> bool:
        return any(all(o <= m for o, m in zip(other, mine)) and other != mine for _, other in scored)

    front = [(c, found) for c, found in scored if not beaten(found)]
    unique: dict[tuple[float, ...], Candidate] = {}
    for c, found in sorted(front, key=lambda item: item[1]):
        unique.setdefault(tuple(round(x, 12) for x in found), c)
    return list(unique.values())


def _knee(front: Sequence[Candidate], objective: str = "lag") -> Candidate:
    """The front's point closest to the ideal (no movement, no lag, no wrong roll back), each axis scaled to the
    front's range."""
    scored = _scored(front, objective)
    axes = list(zip(*(found for _, found in scored)))
    low = [min(axis) for axis in axes]
    span = [(max(axis) - min(axis)) or 1.0 for axis in axes]
    return min(scored, key=lambda item: math.hypot(*((x - lo) / d for x, lo, d in zip(item[1], low, span))))[0]


def tune(
    history: Iterable[CalibrationRun] | str | os.PathLike[str],
    base: CalibrationUpdatePolicy,
    space: Mapping[str, Sequence[float]],
    *,
    method: str = "grid",
    n: int = 100,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    objective: str = "lag",
    **replay_args: Any,
) -> TuneResult:
    """Replay ``n`` candidate policies (``base`` with thresholds drawn from ``space``) and pick one.

    ``space``: ``{"min_delta_global": (0.01, 0.06), "rule_options.cooldown.days": (1, 5)}``; the watch's
    settings too (``watch_runs``, ``watch_alpha``, ``watch_tolerance``, ``watch_hard_limit.runs``,
    ``watch_hard_limit.worse_by``). Grid or seeded random; the same inputs give the same result. Candidates the
    policy model refuses (e.g. max_step below a threshold) are skipped and listed. Each candidate with a watch
    says what the watch would do (roll backs, wrong ones); ``objective``: ``"lag"`` (the front is movement
    against lag), ``"watch_wrong"`` or ``"watch_rolled_back"`` (that count of the watch is a third objective).
    """
    if method not in ("grid", "random"):
        raise PolicyError(f"method must be 'grid' or 'random', not {method!r:.40}.")
    if objective not in OBJECTIVES:
        raise PolicyError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r:.40}.")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100_000:
        raise PolicyError(f"n must be a whole number from 1 to 100,000, not {n!r:.40}.")
    bounds = _check_bounds(space)
    if objective != "lag" and not base.watch_runs and "watch_runs" not in bounds:
        raise PolicyError(f"objective {objective} needs a watch: give the base policy watch_runs, or tune watch_runs.")
    if isinstance(history, (str, os.PathLike)):
        from .replay import load_history

        history = load_history(history)
    history = list(history)
    cache = replay_args.pop("cache", None) or SmoothingCache()
    if not cache.get(("groups", id(history)), lambda: _group(history)):  # grouped once, for every candidate
        raise CalibrationPolicyError("The history is empty: there are no calibration runs to tune on.")
    points = _grid(bounds, n) if method == "grid" else _random(bounds, n, seed)
    candidates, skipped = [], []
    for params in points:
        try:
            policy = _candidate_policy(base, params)
        except PolicyError as error:
            skipped.append((params, str(error)))
            if progress:
                progress(1)
            continue
        result = replay(history, policy, cache=cache, **replay_args)
        candidates.append(Candidate(params, policy, result.figures, result.watch))
        if progress:
            progress(1)
    front = pareto_front(candidates, objective)
    if not front:
        raise PolicyError(
            "No candidate could be replayed: " + (skipped[0][1] if skipped else "no lag could be measured.")
        )
    chosen = _knee(front, objective)
    return TuneResult(candidates, front, chosen, skipped, seed if method == "random" else None, method, objective)
