"""The SVG chart geometry: scales, gaps, the threshold band, and the words that describe it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from calibration_policy_ui.chart import HEIGHT, LEFT, TOP, WIDTH, ChartPoint, build_chart

T0 = datetime(2025, 12, 1, 21, tzinfo=timezone.utc)


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
