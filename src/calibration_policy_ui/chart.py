"""The history chart as server-rendered SVG geometry: no JavaScript, no chart library, no CDN.

This module only computes coordinates and words; the markup lives in a template so it is
escaped like everything else. The shaded band is the live value ± the policy's threshold:
a smoothed line that stays inside it cannot trigger an update.

Any finite number a run file or the policy can hold must draw, from 1e-320 to ±1.7e308: values
of a huge magnitude are scaled by a power of ten first (the axis labels carry it, ``1.50e+308``),
so no difference or padding overflows to infinity; a band far wider than the values is clipped
to the plot instead of stretching the scale; anything not a finite number is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from calibration_policy.humanize import fmt_num

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 14, 34
SCALE_FROM = 1e9  # values this large are plotted as mantissas of a power of ten
MAX_TICKS = 50


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
    for places in range(2, 13):
        if abs(round(step, places) - step) <= step * 1e-6:
            return places
    return 12


def _finite(value: object) -> float | None:
    """A plottable number, or None: never a bool, NaN, ±inf or a number too big for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number + 0.0 if math.isfinite(number) else None  # + 0.0: -0.0 is drawn and labelled as 0


def _clean(point: ChartPoint) -> ChartPoint:
    return ChartPoint(point.at, _finite(point.recommended), _finite(point.smoothed), _finite(point.live))


def _tick_label(value: float, places: int, exponent: int) -> str:
    value = value + 0.0
    if exponent == 0:
        return f"{value:.{places}f}"
    return "0" if value == 0 else f"{value:.{places}f}e{exponent:+d}"


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
    points = [_clean(p) for p in points]
    threshold = abs(_finite(threshold) or 0.0)
    data = [v for p in points for v in (p.recommended, p.smoothed, p.live) if v is not None]
    if not points or not data:
        return None
    # Huge values are plotted as mantissas of 10**exponent, so no span or padding can overflow.
    biggest = max(abs(v) for v in data)
    exponent = math.floor(math.log10(biggest)) if biggest >= SCALE_FROM else 0
    scale = 10.0**exponent

    band = threshold / scale
    low, high = min(data) / scale, max(data) / scale
    # The band shows where the live value may move without an update; it widens the scale, but a
    # threshold far larger than the values (1e308) would flatten them into one line: past a few
    # times their own spread, the band just fills the plot.
    reach = min(band, max(4 * (high - low), 0.5 * max(abs(low), abs(high)), 0.1))
    lives = [p.live / scale for p in points if p.live is not None]
    if lives:
        low, high = min(low, min(lives) - reach), max(high, max(lives) + reach)
    if high - low < 1e-9:
        low, high = low - 0.05, high + 0.05
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y_at(value: float) -> float:
        """The y of a scaled value; a band edge beyond the plot is clipped to its edge."""
        y = TOP + (high - value) / (high - low) * plot_h
        return min(max(y, float(TOP)), float(HEIGHT - BOTTOM))

    def y_of(value: float | None) -> float | None:
        return None if value is None else y_at(value / scale)

    first, last = points[0].at, points[-1].at
    span = (last - first).total_seconds()
    xs = [LEFT + (plot_w / 2 if span == 0 else (p.at - first).total_seconds() / span * plot_w) for p in points]

    step = _nice_step(high - low)
    places = _decimals(step)
    y_ticks: list[Tick] = []
    tick = math.ceil(low / step) * step
    while tick <= high + 1e-12 and len(y_ticks) < MAX_TICKS:
        y_ticks.append(Tick(y_at(tick), _tick_label(tick, places, exponent)))
        tick += step
    picks = sorted({round(i * (len(points) - 1) / 4) for i in range(5)}) if len(points) > 1 else [0]
    x_ticks = [Tick(xs[i], points[i].at.strftime("%b %d")) for i in picks]

    live_segments = _steps(xs, [p.live for p in points])
    live_path = " ".join("M" + " L".join(f"{x:.1f} {y_of(v):.1f}" for x, v in seg) for seg in live_segments)

    def band_y(value: float, sign: int) -> float:
        return y_at(value / scale + sign * band)

    bands = []
    for seg in live_segments:
        upper = [f"{x:.1f} {band_y(v, 1):.1f}" for x, v in seg]
        lower = [f"{x:.1f} {band_y(v, -1):.1f}" for x, v in reversed(seg)]
        if len(seg) == 1:  # a single run: a short bar so the band is visible
            x, v = seg[0]
            upper = [f"{x - 4:.1f} {band_y(v, 1):.1f}", f"{x + 4:.1f} {band_y(v, 1):.1f}"]
            lower = [f"{x + 4:.1f} {band_y(v, -1):.1f}", f"{x - 4:.1f} {band_y(v, -1):.1f}"]
        bands.append("M" + " L".join(upper + lower) + " Z")

    recommended = [p.recommended for p in points if p.recommended is not None]
    smoothed = [p.smoothed for p in points if p.smoothed is not None]
    live = [p.live for p in points if p.live is not None]
    sentences = [
        f"{scope_label} multiplier over {len(points)} run{'s' if len(points) != 1 else ''} "
        f"from {first:%Y-%m-%d} to {last:%Y-%m-%d}."
    ]
    if recommended:
        sentences.append(
            f"Recommended values ranged from {fmt_num(min(recommended), 3)} to {fmt_num(max(recommended), 3)}."
        )
    if smoothed:
        sentences.append(f"The smoothed value ended at {fmt_num(smoothed[-1], 3)}.")
    if live:
        sentences.append(
            f"The live value ended at {fmt_num(live[-1], 3)}; the shaded band is ± {fmt_num(threshold, 3)}, "
            "the smallest change the policy applies."
        )
    return Chart(
        scope_label=scope_label,
        threshold=threshold,
        points=points,
        recommended_path=_line(xs, [y_of(p.recommended) for p in points]),
        recommended_dots=[
            (x, y_at(p.recommended / scale)) for x, p in zip(xs, points, strict=True) if p.recommended is not None
        ],
        smoothed_path=_line(xs, [y_of(p.smoothed) for p in points]),
        live_path=live_path,
        band_path=" ".join(bands),
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        title=f"{scope_label} multiplier: recommended, smoothed and live",
        description=" ".join(sentences),
    )
