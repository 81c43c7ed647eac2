"""Issue 12: the panel and /api/runs page by keyset cursors (before=/after=), never by reading and
skipping every newer run; following the links visits every run once."""

from __future__ import annotations

import html
import re

from .conftest import Host, text_of


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr><td class="cp-nowrap">(.*?)</td>', page)


def _link(page: str, rel: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
    return html.unescape(match.group(1)) if match else None


def test_panel_older_and_newer_links_visit_every_run_once(host: Host, client):
    for day in range(23):
        host.record(day=day, global_m=1.0 + day / 1000)
    first = client.get("/calibration/", params={"underlying": "SPY"}).text
    seen, pages, current = _rows(first), [first], first
    while (older := _link(current, "next")) is not None:
        assert "before=" in older and "page=" not in older
        current = client.get(older).text
        pages.append(current)
        seen += _rows(current)
    assert len(seen) == 23 and len(pages) == 3
    assert "page 3 of 3" in text_of(pages[-1]) and "page 2 of 3" in text_of(pages[1])
    newer = _link(pages[-1], "prev")
    assert "after=" in newer
    assert _rows(client.get(newer).text) == _rows(pages[1])
    oldest = re.search(r'<a href="([^"]+)">Oldest runs', first)
    assert _rows(client.get(html.unescape(oldest.group(1))).text) == _rows(pages[-1])


def test_api_runs_next_before_visits_every_run_once(host: Host, client):
    for day in range(12):
        host.record(day=day, global_m=1.0 + day / 100)
    seen, before = [], None
    while True:
        params = {"underlying": "SPY", "limit": 5, **({"before": before} if before else {})}
        body = client.get("/calibration/api/runs", params=params).json()
        seen += [r["run_id"] for r in body["runs"]]
        before = body["next_before"]
        if before is None:
            break
    assert len(seen) == 12 == len(set(seen))
    bad = client.get("/calibration/api/runs", params={"underlying": "SPY", "before": "nonsense"})
    assert bad.status_code == 400 and "cursor" in bad.json()["detail"]
