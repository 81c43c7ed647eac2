"""The history chart as server-rendered SVG geometry: no JavaScript, no chart library, no CDN.

This module only computes coordinates and words; the markup lives in a template so it is
escaped like everything else. The shaded band is the live value ± the policy's threshold:
a smoothed line that stays inside it cannot trigger an update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from calibration_policy.humanize import fmt_num

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 14, 34


@dataclass(frozen=True)
class ChartPoint:
    """One run: what it recommended, the smoothed value, and what was live after its decision."""

    at: datetime
    recommended: float | None
    smoothed: float | None
    live: float | None


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Chart:
    scope_label: str
    threshold: float
    points: list[ChartPoint]
    recommended_path: str
    recommended_dots: list[tuple[float, float]]
    smoothed_path: str
    live_path: str
    band_path: str
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    title: str
    description: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def _nice_step(span: float) -> float:
    raw = span / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _decimals(step: float) -> int:
    """Enough decimals to tell neighbouring ticks apart (0.025 needs three), at least two."""
    return max(2, len(f"{step:.6f}".rstrip("0").split(".")[1]))


def _line(xs: list[float], ys: list[float | None]) -> str:
    """An SVG path through the known values; an unknown value breaks the line."""
    parts, pen_down = [], False
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{x:.1f} {y:.1f}")
        pen_down = True
    return " ".join(parts)


def _steps(xs: list[float], ys: list[float | None]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive known values as step corners: a live value holds until the next run."""
    segments: list[list[tuple[float, float]]] = []
    current: list[tuple[float, float]] = []
    for x, y in zip(xs, ys, strict=True):
        if y is None:
            if current:
                segments.append(current)
            current = []
            continue
        if current:
            current.append((x, current[-1][1]))
        current.append((x, y))
    if current:
        segments.append(current)
    return segments


def build_chart(points: list[ChartPoint], scope_label: str, threshold: float) -> Chart | None:
    """The chart of ``points`` (oldest first); None when there is nothing to draw."""
    values = [v for p in points for v in (p.recommended, p.smoothed) if v is not None]
    values += [p.live + s * threshold for p in points if p.live is not None for s in (-1, 1)]
    if not points or not values:
        return None
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.05, high + 0.05
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y_of(value: float | None) -> float | None:
        return None if value is None else TOP + (high - value) / (high - low) * plot_h

    first, last = points[0].at, points[-1].at
    span = (last - first).total_seconds()
    xs = [LEFT + (plot_w / 2 if span == 0 else (p.at - first).total_seconds() / span * plot_w) for p in points]

    step = _nice_step(high - low)
    places = _decimals(step)
    y_ticks, tick = [], math.ceil(low / step) * step
    while tick <= high + 1e-12:
        y_ticks.append(Tick(y_of(tick), f"{tick:.{places}f}"))  # type: ignore[arg-type]
        tick += step
    picks = sorted({round(i * (len(points) - 1) / 4) for i in range(5)}) if len(points) > 1 else [0]
    x_ticks = [Tick(xs[i], points[i].at.strftime("%b %d")) for i in picks]

    live_segments = _steps(xs, [p.live for p in points])
    live_path = " ".join("M" + " L".join(f"{x:.1f} {y_of(v):.1f}" for x, v in seg) for seg in live_segments)
    bands = []
    for seg in live_segments:
        upper = [f"{x:.1f} {y_of(v + threshold):.1f}" for x, v in seg]
        lower = [f"{x:.1f} {y_of(v - threshold):.1f}" for x, v in reversed(seg)]
        if len(seg) == 1:  # a single run: a short bar so the band is visible
            x, v = seg[0]
            upper = [f"{x - 4:.1f} {y_of(v + threshold):.1f}", f"{x + 4:.1f} {y_of(v + threshold):.1f}"]
            lower = [f"{x + 4:.1f} {y_of(v - threshold):.1f}", f"{x - 4:.1f} {y_of(v - threshold):.1f}"]
        bands.append("M" + " L".join(upper + lower) + " Z")

    recommended = [p.recommended for p in points if p.recommended is not None]
    smoothed = [p.smoothed for p in points if p.smoothed is not None]
    live = [p.live for p in points if p.live is not None]
    sentences = [f"{scope_label} multiplier over {len(points)} run{'s' if len(points) != 1 else ''} "
                 f"from {first:%Y-%m-%d} to {last:%Y-%m-%d}."]
    if recommended:
        sentences.append(f"Recommended values ranged from {fmt_num(min(recommended), 3)} to {fmt_num(max(recommended), 3)}.")
    if smoothed:
        sentences.append(f"The smoothed value ended at {fmt_num(smoothed[-1], 3)}.")
    if live:
        sentences.append(f"The live value ended at {fmt_num(live[-1], 3)}; the shaded band is ± {fmt_num(threshold, 3)}, "
                         "the smallest change the policy applies.")
    return Chart(
        scope_label=scope_label,
        threshold=threshold,
        points=points,
        recommended_path=_line(xs, [y_of(p.recommended) for p in points]),
        recommended_dots=[(x, y_of(p.recommended)) for x, p in zip(xs, points, strict=True) if p.recommended is not None],  # type: ignore[misc]
        smoothed_path=_line(xs, [y_of(p.smoothed) for p in points]),
        live_path=live_path,
        band_path=" ".join(bands),
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        title=f"{scope_label} multiplier: recommended, smoothed and live",
        description=" ".join(sentences),
    )
