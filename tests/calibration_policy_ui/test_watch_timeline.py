"""The panel's changes timeline says how each change's watch after apply stands, in words."""

from __future__ import annotations

from calibration_policy import CalibrationUpdatePolicy

from .conftest import Host, text_of


def test_the_timeline_says_what_the_watch_saw_and_that_it_rolled_back(host: Host, client):
    # Thresholds no daily run reaches: only the forced change moves the live values.
    host.policy = CalibrationUpdatePolicy(
        min_delta_global=0.5, min_delta_band=0.5, watch_runs=5, watch_action="roll_back"
    )
    host.record(day=0, force=True, actor="ana", global_m=1.08, weekly=1.08, monthly=1.08)
    for day in (1, 2):
        host.record(day=day, global_m=1.0, weekly=1.0, monthly=1.0)
    timeline = text_of(client.get("/calibration/").text.split('class="cp-timeline"', 1)[1].split("</ol>", 1)[0])
    assert "Watch after apply: Watching: 2 of 5 runs; the new values fit better in 0 of 2." in timeline

    for day in (3, 4, 5):
        host.record(day=day, global_m=1.0, weekly=1.0, monthly=1.0)
    assert host.config("SPY") == {"global": 1.0, "monthly": 1.0, "weekly": 1.0}
    timeline = text_of(client.get("/calibration/").text.split('class="cp-timeline"', 1)[1].split("</ol>", 1)[0])
    assert "Watch after apply: Failed: 5 of 5 runs; the new values fit better in 0 of 5" in timeline
    assert "Rolled back by the watch (" in timeline
    assert timeline.index("rolled back to the IV multipliers before") < timeline.index("Watch after apply: Failed")
