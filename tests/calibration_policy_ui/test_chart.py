"""The SVG chart geometry: scales, gaps, the threshold band, and the words that describe it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from calibration_policy_ui.chart import HEIGHT, LEFT, TOP, WIDTH, ChartPoint, build_chart

T0 = datetime(2025, 12, 1, 21, tzinfo=UTC)


def points(*rows):
    return [ChartPoint(T0 + timedelta(days=i), *row) for i, row in enumerate(rows)]


def test_nothing_to_draw_is_none():
    assert build_chart([], "Global", 0.03) is None
    assert build_chart(points((None, None, None)), "Global", 0.03) is None


def test_series_span_the_plot_and_the_band_follows_the_live_value():
    chart = build_chart(points((1.02, 1.01, 1.0), (1.06, 1.03, 1.0), (1.08, 1.05, 1.05)), "Global", 0.03)
    assert chart.recommended_path.startswith(f"M{LEFT:.1f} ")
    assert chart.smoothed_path.count("L") == 2
    assert chart.live_path.count("M") == 1 and chart.band_path.endswith("Z")
    ys = [float(t.label) for t in chart.y_ticks]
    assert min(ys) <= 0.97 + 0.03 and max(ys) >= 1.05
    assert all(TOP <= t.pos <= HEIGHT for t in chart.y_ticks)
    assert [t.label for t in chart.x_ticks] == ["Dec 01", "Dec 02", "Dec 03"]
    assert chart.description == (
        "Global multiplier over 3 runs from 2025-12-01 to 2025-12-03. Recommended values ranged from 1.02 to 1.08. "
        "The smoothed value ended at 1.05. The live value ended at 1.05; the shaded band is ± 0.03, "
        "the smallest change the policy applies."
    )


def test_unknown_values_break_the_lines():
    chart = build_chart(points((1.0, 1.0, 1.0), (None, None, None), (1.1, 1.05, 1.05)), "Weekly (3–10d)", 0.03)
    assert chart.recommended_path.count("M") == 2
    assert chart.live_path.count("M") == 2
    assert chart.band_path.count("Z") == 2


def test_one_run_is_centred_and_still_shows_its_band():
    chart = build_chart(points((1.05, 1.05, 1.0)), "Global", 0.03)
    assert chart.recommended_dots == [(LEFT + (WIDTH - LEFT - 16) / 2, chart.recommended_dots[0][1])]
    assert chart.band_path.count("Z") == 1
    assert "over 1 run from" in chart.description


def test_flat_values_still_get_a_visible_scale():
    chart = build_chart(points((1.0, 1.0, None), (1.0, 1.0, None)), "Global", 0.0)
    assert len(chart.y_ticks) >= 2


# -- extremes (issue 11, D5): every number a run file or the policy can hold draws ---------------------

import math  # noqa: E402
import re  # noqa: E402
from decimal import Decimal  # noqa: E402

import pytest  # noqa: E402
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from calibration_policy_ui.chart import MAX_TICKS, RIGHT  # noqa: E402

EXTREMES = [
    1.7e308,
    -1.7e308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e308,
    -0.0,
    0.0,
    1e-320,
    -1e-320,
    5e-324,
    2.2250738585072014e-308,
    1e15,
    1.0,
    1.05,
]
VALUES = st.one_of(st.none(), st.sampled_from(EXTREMES), st.floats(allow_nan=False, allow_infinity=False))
JUNK = st.one_of(VALUES, st.sampled_from([math.nan, math.inf, -math.inf, True, "1.05", 10**400]))
THRESHOLDS = st.one_of(
    st.sampled_from([0.0, 1e-320, 0.03, 1e308, 1.7976931348623157e308]),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False),
)
NUMBER = r"-?\d+\.\d"


def _coordinates(path: str) -> list[tuple[float, float]]:
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path)]
    return list(zip(numbers[::2], numbers[1::2], strict=True))


def check_geometry(chart, points_in) -> None:
    """Everything is inside the plot, every label reads as a number, higher values are higher up."""
    assert chart is not None
    for path in (chart.recommended_path, chart.smoothed_path, chart.live_path, chart.band_path):
        assert len(path) < 40 * 60, "a coordinate was printed with hundreds of digits"
        for x, y in _coordinates(path):
            assert LEFT - 4.5 <= x <= WIDTH - RIGHT + 4.5 and chart.top <= y <= chart.bottom, path
    assert 1 <= len(chart.y_ticks) <= MAX_TICKS
    tick_values = [Decimal(t.label) for t in chart.y_ticks]  # a padded axis may pass 1.8e308: a label, not a float
    assert all(v.is_finite() for v in tick_values) and all(len(t.label) < 16 for t in chart.y_ticks)
    assert tick_values == sorted(tick_values) and len(set(t.label for t in chart.y_ticks)) == len(chart.y_ticks)
    assert all(chart.top <= t.pos <= chart.bottom for t in chart.y_ticks)
    assert [t.pos for t in chart.y_ticks] == sorted((t.pos for t in chart.y_ticks), reverse=True)
    dots = chart.recommended_dots
    values = [p.recommended for p in points_in if isinstance(p.recommended, float) and math.isfinite(p.recommended)]
    assert len(dots) == len(values)
    for (_, y1), v1 in zip(dots, values):
        for (_, y2), v2 in zip(dots, values):
            if v1 < v2:
                assert y1 >= y2 - 1e-6, (v1, v2, y1, y2)
    assert "nan" not in chart.description and "inf" not in chart.description
    assert len(chart.description) < 600


@pytest.mark.parametrize("value", EXTREMES)
@pytest.mark.parametrize("threshold", [0.0, 0.03, 1e-320, 1e308, 1.7976931348623157e308])
def test_any_single_value_and_threshold_draws(value, threshold):
    pts = points((value, value, value), (1.0, 1.0, 1.0), (value, None, 1.0))
    check_geometry(build_chart(pts, "Global", threshold), pts)


def test_opposite_extremes_draw_with_scaled_labels():
    """1.7e308 and −1.7e308 differ by more than the largest float: plotted as mantissas of 10^308."""
    pts = points((1.7e308, 1.7e308, 1.0), (-1.7e308, 0.0, 1.0))
    chart = build_chart(pts, "Global", 1e308)
    check_geometry(chart, pts)
    assert all(t.label == "0" or t.label.endswith("e+308") for t in chart.y_ticks)
    assert "Recommended values ranged from -1.7e+308 to 1.7e+308." in chart.description


def test_negative_zero_and_denormals_read_as_zero():
    pts = points((-0.0, -0.0, -0.0), (1e-320, 5e-324, 0.0))
    chart = build_chart(pts, "Global", 0.0)
    check_geometry(chart, pts)
    assert "-0.00" not in [t.label for t in chart.y_ticks] and "0.00" in [t.label for t in chart.y_ticks]
    assert "ranged from 0.00 to 0.00" in chart.description and "-0.00" not in chart.description


def test_a_band_far_wider_than_the_values_fills_the_plot_without_flattening_them():
    pts = points((1.02, 1.01, 1.0), (1.08, 1.05, 1.05))
    chart = build_chart(pts, "Global", 1e308)
    check_geometry(chart, pts)
    ys = [y for _, y in chart.recommended_dots]
    assert abs(ys[0] - ys[1]) > 5, "the values were squashed into one line by the band"
    assert {y for _, y in _coordinates(chart.band_path)} == {float(chart.top), float(chart.bottom)}
    assert "the shaded band is ± 1e+308" in chart.description


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(JUNK, JUNK, JUNK), min_size=1, max_size=12), threshold=THRESHOLDS)
@example(rows=[(1.7e308, None, 1.0)], threshold=1e308)
@example(rows=[(1.7e308, -1.7e308, 1.7976931348623157e308)], threshold=1.7976931348623157e308)
@example(rows=[(-1.7976931348623157e308, None, None), (1.7976931348623157e308, None, None)], threshold=0.0)
@example(rows=[(0.0, 2e-9, None)], threshold=0.0)
@example(rows=[(math.nan, math.inf, True)], threshold=0.03)
def test_chart_scaling_never_overflows(rows, threshold):
    pts = points(*rows)
    finite = [v for row in rows for v in row if isinstance(v, float) and math.isfinite(v)]
    chart = build_chart(pts, "Global", threshold)
    if not finite:
        assert chart is None
        return
    check_geometry(chart, pts)
