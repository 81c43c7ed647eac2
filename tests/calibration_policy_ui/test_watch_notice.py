"""The first screen says when the watch after apply rolled a change back and why, and links to a proposed roll
back waiting for a person."""

from __future__ import annotations

import re
from html import unescape

from calibration_policy import CalibrationUpdatePolicy
from calibration_policy.stores import open_archive


def _watched_change_then_contradicting_runs(host, action: str):
    host.policy = CalibrationUpdatePolicy(
        min_delta_global=0.5, min_delta_band=0.5, watch_runs=5, watch_action=action
    )  # only the forced change moves the live values
    host.record(day=0, force=True, global_m=1.08, weekly=1.08, monthly=1.08)
    for day in range(1, 6):  # the next five days recommend the old values again: the change fits worse
        host.record(day=day, global_m=1.0, weekly=1.0, monthly=1.0)
    return open_archive(host.archive_dir, host.target_for("SPY").name).entries()


def _notice(client) -> str | None:
    page = client.get("/calibration/", params={"underlying": "SPY"})
    assert page.status_code == 200
    found = re.search(r'<div[^>]*id="cp-watch-notice"[^>]*>(.*?)</div>', page.text, re.S)
    return unescape(re.sub(r"<[^>]+>", "", found[1])).strip() if found else None


def test_the_first_screen_says_the_watch_rolled_the_change_back_and_why(host, client):
    _, undo = _watched_change_then_contradicting_runs(host, "roll_back")
    assert _notice(client) == (
        "The watch rolled back the change of 1 Dec at 21:00 UTC: the new values fit worse on 5 of 5 runs after it (p = 0.031), "
        f"so the values before it are live again (change {undo.change_id})."
    )


def test_a_proposed_roll_back_waiting_is_linked_from_the_notice(host, client):
    _watched_change_then_contradicting_runs(host, "propose_roll_back")
    page = client.get("/calibration/", params={"underlying": "SPY"}).text
    [suggestion_id] = re.findall(r'id="cp-suggestion-([^"]+)"', page)
    assert f'href="#cp-suggestion-{suggestion_id}">Review the proposed roll back</a>' in page
    assert _notice(client) == (
        "The watch found that the change of 1 Dec at 21:00 UTC fits worse: the "
        "new values fit worse on 5 of 5 runs after it (p = 0.031). A roll back to the values before it waits for "
        "approval. Review the proposed roll back"
    )


def test_no_notice_while_the_watch_is_still_watching(host, client):
    host.policy = CalibrationUpdatePolicy(watch_runs=5, watch_action="roll_back")
    host.record(day=0)  # goes live (1.05 against 1.00)
    host.record(day=1)
    assert _notice(client) is None
